#!/usr/bin/env node
// A narrated demo of what mcp-oauth-guard does, for one provider shape
// (default: clerk). Starts a real oidc-provider behind a shim that answers like
// the chosen provider, a real MCP server (official TypeScript SDK) and one
// Envoy with two front doors: one WITH the filter, one WITHOUT. Then, with the
// official TypeScript SDK client on each door:
//   register + authorize + call a tool; the provider deletes the client; the
//   access token expires; call again.
// Without the filter the client replays its dead client_id; with it, it gets
// 401 invalid_client, registers again and the call succeeds. Last, the control:
// a revoked refresh token stays invalid_grant (the client keeps its client_id).
// Stops everything it started. Exit 0 when the story went as told.
//
// Usage: node tests/mcp-client/story.mjs [--shape clerk|entra|okta|github-form|github-json] [--pause]
//   --pause   wait for Enter between acts (only when stdin is a terminal)

import readline from 'node:readline/promises';
import { parseArgs } from 'node:util';

import { startHarness, shortId } from './lib/harness.mjs';
import { SHAPES } from './lib/shapes.mjs';
import { McpSession } from './lib/client.mjs';
import { refreshAnswerAfter, isStandardInvalidClient } from './lib/scenarios.mjs';

const { values: args } = parseArgs({
  options: {
    shape: { type: 'string', default: process.env.STORY_SHAPE ?? 'clerk' },
    pause: { type: 'boolean', default: false },
    ttl: { type: 'string', default: '3' },
  },
});
const shape = args.shape;
if (!SHAPES[shape] || !SHAPES[shape].clientGone) {
  console.error(`unknown or standard shape "${shape}"; pick one of ${Object.keys(SHAPES).filter((k) => SHAPES[k].clientGone).join(', ')}`);
  process.exit(2);
}
const spec = SHAPES[shape];
const tty = process.stdout.isTTY;
const c = (code) => (s) => (tty ? `\x1b[${code}m${s}\x1b[0m` : s);
const bold = c('1');
const dim = c('2');
const green = c('32');
const red = c('31');
const yellow = c('33');
const cyan = c('36');

function say(line = '') {
  console.log(line);
}
function step(n, text) {
  say(`\n${bold(`${n}.`)} ${bold(text)}`);
}
function detail(text) {
  say(`   ${text}`);
}
function answerText(a) {
  if (!a) return '(no token request)';
  const body = a.body.length > 220 ? `${a.body.slice(0, 220)}…` : a.body;
  return `HTTP ${a.status} ${dim(a.contentType || '')} ${body}`;
}

let rl;
async function pause() {
  if (!args.pause || !process.stdin.isTTY) return;
  rl ??= readline.createInterface({ input: process.stdin, output: process.stdout });
  await rl.question(dim('   (Enter to go on) '));
}

let failures = 0;
function check(ok, text) {
  if (ok) detail(`${green('✓')} ${text}`);
  else {
    failures += 1;
    detail(`${red('✗')} ${text}`);
  }
}

async function attempt(fn) {
  try {
    return { ok: true, value: await fn() };
  } catch (err) {
    return { ok: false, message: `${err?.name ?? 'Error'}: ${(err?.message ?? String(err)).split('\n')[0].slice(0, 200)}` };
  }
}

let harness;
let stopping = false;
async function stopAll() {
  if (stopping) return;
  stopping = true;
  rl?.close();
  await harness?.stop();
}
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => {
    stopAll().finally(() => process.exit(130));
  });
}

async function main() {
  say(bold(`mcp-oauth-guard: the deleted-client story, provider shape: ${spec.label}`));
  step(0, 'Starting oidc-provider (+ shim answering like the provider), the MCP server and Envoy');
  harness = await startHarness({
    listeners: [
      { name: 'with-filter', deployment: 'path', shape, guard: spec.preset },
      { name: 'without-filter', deployment: 'path', shape, guard: null },
    ],
    accessTokenTTL: Number(args.ttl),
  });
  const guard = harness.stacks['with-filter'];
  const plain = harness.stacks['without-filter'];
  detail(`MCP server through Envoy WITH the filter (preset ${spec.preset}):  ${cyan(guard.serverUrl)}`);
  detail(`MCP server through Envoy WITHOUT the filter:                  ${cyan(plain.serverUrl)}`);
  detail(dim(`access tokens live ${args.ttl} s; each URL has its own authorization server (issuer = that origin)`));
  await pause();

  step(1, 'An MCP client (official TypeScript SDK) connects through each door');
  const a = new McpSession({ serverUrl: guard.serverUrl, name: 'story-with-filter' });
  const b = new McpSession({ serverUrl: plain.serverUrl, name: 'story-without-filter' });
  for (const [label, s] of [
    ['with filter   ', a],
    ['without filter', b],
  ]) {
    const tools = await s.listTools();
    const out = await s.echo('hello');
    detail(`${label}: registered client ${yellow(shortId(s.provider.clientId))}, authorized, tools/list -> [${tools.tools.map((t) => t.name).join(', ')}], echo -> "${out}"`);
  }
  const oldA = a.provider.clientId;
  const oldB = b.provider.clientId;
  await pause();

  step(2, 'The provider deletes both clients (an operator, a pruning job, a restart)');
  guard.deleteClient(oldA);
  plain.deleteClient(oldB);
  detail(`deleted ${yellow(shortId(oldA))} and ${yellow(shortId(oldB))} at the provider`);
  detail(dim('waiting for the access tokens to expire…'));
  await a.waitForAccessTokenExpiry();
  await b.waitForAccessTokenExpiry();
  await pause();

  step(3, 'WITHOUT the filter: the client calls the tool again');
  let since = Date.now();
  const rb = await attempt(() => b.echo('hello again'));
  const rawAnswer = refreshAnswerAfter(b, since, oldB);
  detail(`MCP server: 401 invalid_token -> the SDK refreshes at the token endpoint`);
  detail(`provider's raw answer: ${red(answerText(rawAnswer))}`);
  if (spec.sdkRecoversUnfiltered) {
    detail(`this SDK happens to recognise "${rawAnswer?.json?.error ?? '?'}" and registers again by itself: ${rb.ok ? `tool call OK, new client ${yellow(shortId(b.provider.clientId))}` : red(rb.message)}`);
    detail(dim('(other clients expect the documented signal, 401 invalid_client: the filter sends that)'));
    check(rb.ok && b.provider.clientId !== oldB, 'without the filter this SDK already recovers from this shape');
  } else {
    detail(`the SDK does not recognise it: ${rb.ok ? 'tool call OK' : red(rb.message)}`);
    const rb2 = await attempt(() => b.echo('hello once more'));
    detail(`and again: ${rb2.ok ? 'tool call OK' : red(rb2.message)}`);
    detail(`the client still holds client_id ${yellow(shortId(b.provider.clientId))} (registrations: ${b.provider.registrations.length})`);
    check(!rb.ok && !rb2.ok && b.provider.clientId === oldB, 'without the filter the client is stuck on its dead client_id');
  }
  await pause();

  step(4, 'WITH the filter: the same call through the other door');
  since = Date.now();
  const ra = await attempt(() => a.echo('hello again'));
  const filtered = refreshAnswerAfter(a, since, oldA);
  const shim = guard.tokenLog.find((e) => e.clientId === oldA && e.grantType === 'refresh_token');
  detail(`provider's raw answer: ${red(shim ? `HTTP ${shim.sent.status} ${shim.sent.body.slice(0, 200)}${shim.sent.body.length > 200 ? '…' : ''}` : '(none)')}`);
  detail(`what the client gets through the filter: ${green(answerText(filtered))}`);
  check(isStandardInvalidClient(filtered), 'the client got 401 {"error":"invalid_client"}');
  const newA = a.provider.clientId;
  if (newA !== oldA) detail(`the SDK dropped its client (invalidateCredentials('${a.provider.invalidations.join("', '")}')) and registered again: new client ${yellow(shortId(newA))}`);
  check(newA && newA !== oldA, `re-registered (${shortId(oldA)} -> ${shortId(newA)})`);
  check(ra.ok, ra.ok ? `tool call OK: "${ra.value}"` : `tool call failed: ${ra.message}`);
  await pause();

  step(5, 'Control: the provider revokes the refresh token (the client itself still exists)');
  const revoked = guard.revokeRefreshTokens(newA);
  detail(`revoked ${revoked} refresh token(s) of ${yellow(shortId(newA))}; waiting for the access token to expire…`);
  await a.waitForAccessTokenExpiry();
  since = Date.now();
  const invalidationsBefore = a.provider.invalidations.length;
  const rc = await attempt(() => a.echo('after revocation'));
  const grantAnswer = refreshAnswerAfter(a, since, newA);
  const shim2 = guard.tokenLog.filter((e) => e.clientId === newA && e.grantType === 'refresh_token').at(-1);
  detail(`provider's raw answer: ${shim2 ? `HTTP ${shim2.sent.status} ${shim2.sent.body.slice(0, 160)}${shim2.sent.body.length > 160 ? '…' : ''}` : '(none)'}`);
  detail(`through the filter: ${answerText(grantAnswer)}`);
  const grantError = (() => {
    try {
      return JSON.parse(grantAnswer?.body ?? '').error;
    } catch {
      return undefined;
    }
  })();
  check(grantError === 'invalid_grant', 'left as invalid_grant (never turned into invalid_client)');
  check(a.provider.clientId === newA && !a.provider.invalidations.slice(invalidationsBefore).includes('all'), `the client kept client_id ${shortId(newA)} and only re-authorized`);
  check(rc.ok, rc.ok ? `tool call OK: "${rc.value}"` : `tool call failed: ${rc.message}`);

  await a.close();
  await b.close();
  say();
  if (failures) {
    say(red(bold(`${failures} check(s) did not go as the story says.`)));
    say(dim((await harness.diagnostics()).split('\n').slice(-120).join('\n')));
    return 1;
  }
  say(
    green(
      bold(
        spec.sdkRecoversUnfiltered
          ? 'The story went as told: with the filter the client gets the standard 401 invalid_client and recovers by itself.'
          : 'The story went as told: with the filter the client recovers by itself; without it, it stays locked out.',
      ),
    ),
  );
  return 0;
}

let code = 1;
try {
  code = await main();
} catch (err) {
  console.error(red(`story failed: ${err?.stack ?? err}`));
  if (harness) console.error(dim((await harness.diagnostics()).split('\n').slice(-150).join('\n')));
} finally {
  await stopAll();
}
process.exit(code);
