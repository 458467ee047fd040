// End-to-end: the filter's client lifecycle (issue 5), registration epoch, with
// the official MCP TypeScript SDK client.
//
// One Envoy, two listeners, each WITH the filter in front of its own
// oidc-provider + shim + MCP server (path deployment, MCP endpoint /mcp), both
// with the same kind of lifecycle policy: signed client_ids (mog1. envelopes),
// registration_epoch one hour in the past, bearer checks at /mcp and
// resource_metadata naming the listener's RFC 9728 metadata URL.
//
//  - "epoch": the SDK registers (its client_id is an envelope), authorizes and
//    calls the tool. The operator then raises registration_epoch to "now" and
//    restarts Envoy on the same port. The next call must get the filter's 401
//    invalid_token at /mcp (the old token's iat is before the epoch), then 401
//    invalid_client at the token endpoint for the refresh (answered by the
//    filter: the provider never sees it), and the SDK must register again by
//    itself (a new, different envelope), authorize and succeed.
//  - "control": the same policy, the same register/authorize/call, the same
//    Envoy restart, but the operator does NOT raise the epoch. The old client
//    keeps working: the call right after the restart and the refresh after the
//    access token expired both go through with the SAME client_id. So the
//    restart, the new filter VM, the signing key being re-read and the token's
//    age are not what retires a client; the epoch is.
//
// Both: the provider (oidc-provider) never sees an envelope: no request that
// reached it carried `mog1.` and every client it stores has its own plain id.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';

import { startHarness, shortId } from './lib/harness.mjs';
import { McpSession } from './lib/client.mjs';
import { refreshAnswerAfter, isStandardInvalidClient, describeAnswer } from './lib/scenarios.mjs';
import {
  nowSeconds,
  rfc3339,
  newSigningKey,
  reservePort,
  lifecyclePolicy,
  parseEnvelope,
  accessTokenClaims,
  bearerParams,
  recordingMcpFetch,
  guardStats,
} from './lib/lifecycle.mjs';

const ACCESS_TOKEN_TTL = Number(process.env.E2E_ACCESS_TOKEN_TTL ?? 3);
const RETIRED_TOKEN_DESCRIPTION = 'The access token belongs to a client registration that has been retired.';
const MCP_PATH = '/mcp';
const PRM_PATH = '/.well-known/oauth-protected-resource/mcp';

function tail(text, lines = 200) {
  const all = text.split('\n');
  return all.length > lines ? `… (${all.length - lines} earlier lines)\n${all.slice(-lines).join('\n')}` : text;
}

async function attempt(fn) {
  try {
    return { ok: true, value: await fn() };
  } catch (err) {
    return { ok: false, error: err, message: `${err?.name ?? 'Error'}: ${err?.message ?? err}` };
  }
}

/** Waits until the Unix second is past `seconds` (so an epoch set "now" is after it). */
async function waitForSecondAfter(seconds) {
  while (nowSeconds() <= seconds) await sleep(50);
}

/** A counter of the filter's lifecycle metrics for one provider name (0 when absent). */
function lifecycleCounter(stats, provider, counter) {
  const suffix = `mcp_oauth_guard.provider.${provider}.lifecycle.${counter}`;
  const key = Object.keys(stats).find((k) => k.endsWith(suffix));
  return key ? stats[key] : 0;
}

describe('client lifecycle: registration_epoch through the filter, official TypeScript SDK client', () => {
  let harness;
  // Per listener: the operator's settings (the key stays the same across restarts).
  const settings = {
    epoch: { provider: 'op-epoch', key: newSigningKey('k1') },
    control: { provider: 'op-control', key: newSigningKey('k1') },
  };
  const initialEpoch = nowSeconds() - 3600;

  function policyFor(name, epochSeconds) {
    const s = settings[name];
    return lifecyclePolicy({
      name: s.provider,
      registrationEpoch: rfc3339(epochSeconds),
      signingKeys: [s.key],
      mcpEndpoints: [MCP_PATH],
      resourceMetadata: `http://127.0.0.1:${s.port}${PRM_PATH}`,
    });
  }

  before(async () => {
    // The policy names the listener's own metadata URL, so the ports are fixed first.
    for (const s of Object.values(settings)) s.port = await reservePort();
    harness = await startHarness({
      listeners: Object.keys(settings).map((name) => ({
        name,
        deployment: 'path',
        shape: 'standard',
        port: settings[name].port,
        guard: { policy: policyFor(name, initialEpoch) },
      })),
      accessTokenTTL: ACCESS_TOKEN_TTL,
      log: (m) => console.error(m),
    });
  });

  after(async () => {
    await harness?.stop();
  });

  // On failure: what Envoy, the filter, the shim and the provider saw (no tokens, no secrets).
  async function withDiagnostics(t, stack, extra, fn) {
    try {
      await fn();
    } catch (err) {
      const diag = harness ? await harness.diagnostics() : '(harness not started)';
      const mine = [
        `----- MCP endpoint answers seen by the client -----\n${extra.mcpLog.map((e) => JSON.stringify(e)).join('\n')}`,
        `----- token endpoint answers seen by the client -----\n${(extra.session?.tokenResponses ?? []).map((e) => JSON.stringify({ ...e, body: e.body?.slice(0, 300) })).join('\n')}`,
        `----- requests that reached the provider at ${stack?.name} -----\n${(stack?.providerRequests ?? []).map((e) => JSON.stringify(e)).join('\n')}`,
        `----- clients stored by the provider at ${stack?.name} -----\n${(stack?.clientIds() ?? []).join('\n')}`,
      ].join('\n');
      console.error(`\n===== diagnostics for "${t.name}" =====\n${tail(diag, 250)}\n${mine}\n===== end diagnostics =====\n`);
      throw err;
    }
  }

  /** The provider never saw an envelope, and stores only plain client ids. */
  function assertProviderNeverSawEnvelope(stack) {
    const withEnvelope = stack.providerRequests.filter((r) => r.envelope);
    assert.deepEqual(withEnvelope, [], 'no request that reached the provider carried a mog1. client_id');
    const ids = stack.clientIds();
    assert.ok(ids.length >= 1, 'the provider stores the registered client(s)');
    for (const id of ids) assert.ok(!id.startsWith('mog1.'), `the provider stores its own plain client_id, not an envelope (${shortId(id)})`);
  }

  test('WITH the filter: operator raises registration_epoch to now and restarts Envoy on the same port -> 401 invalid_token at /mcp, 401 invalid_client at the token endpoint (provider not asked) -> the SDK registers again by itself and the tool call succeeds', async (t) => {
    const stack = harness.stacks.epoch;
    const mcpLog = [];
    const session = new McpSession({ serverUrl: stack.serverUrl, name: 'epoch-client' });
    session.fetch = recordingMcpFetch(session.fetch, stack.serverUrl, mcpLog);
    await withDiagnostics(t, stack, { mcpLog, session }, async () => {
      try {
        assert.equal(stack.resourceMetadataUrl, `http://127.0.0.1:${settings.epoch.port}${PRM_PATH}`);

        // 1. Register, authorize, call: through the filter with signing on and an epoch one hour ago.
        const tools = await session.listTools();
        assert.deepEqual(tools.tools.map((x) => x.name), ['echo']);
        assert.equal(await session.echo('hello'), 'echo: hello');
        const oldId = session.provider.clientId;
        assert.ok(oldId?.startsWith('mog1.'), `the SDK stores the filter's envelope as its client_id (got ${shortId(oldId)})`);
        const oldEnv = parseEnvelope(oldId);
        assert.ok(oldEnv, 'the envelope has the form mog1.<kid>.<iat>.<b64url id>.<tag>');
        assert.equal(oldEnv.kid, 'k1');
        assert.ok(oldEnv.issuedAt >= initialEpoch, 'registered after the initial epoch');
        assert.ok(stack.clientExists(oldEnv.clientId), "the envelope wraps the provider's own client_id");
        assert.equal(stack.toolCalls.at(-1)?.clientId, oldEnv.clientId, 'the MCP server saw the call from that client');
        const oldToken = accessTokenClaims(session.provider.tokens()?.access_token);
        assert.equal(oldToken?.clientId, oldEnv.clientId, 'the access token is a JWT issued to that client');
        t.diagnostic(`registered ${shortId(oldId)} (provider id ${shortId(oldEnv.clientId)}, iat ${oldEnv.issuedAt}); access token iat ${oldToken.iat}`);

        // 2. The operator raises the epoch to "now" (a second after the registration and the
        //    token, so both are strictly before it) and restarts Envoy on the same port.
        await waitForSecondAfter(Math.max(oldEnv.issuedAt, oldToken.iat));
        const raisedEpoch = nowSeconds();
        stack.guard = { policy: policyFor('epoch', raisedEpoch) };
        const envoy = await harness.restartEnvoy();
        assert.equal(envoy.ports.epoch, settings.epoch.port, 'Envoy listens on the same port after the restart');
        const envoyLog = await envoy.logText();
        assert.doesNotMatch(envoyLog, /policy refused/, 'the raised epoch is accepted by the filter');
        t.diagnostic(`registration_epoch raised to ${rfc3339(raisedEpoch)}; Envoy restarted on port ${envoy.ports.epoch}`);

        // 3. Call again right away (the old access token may still be valid; the filter refuses it anyway).
        const since = Date.now();
        const rejectedBefore = stack.rejectedTokens;
        const registrationsBefore = session.provider.registrations.length;
        const authorizationsBefore = session.provider.authorizations.length;
        const providerRequestsBefore = stack.providerRequests.length;
        const after = await attempt(() => session.echo('hello again'));
        const mcpAfter = mcpLog.filter((e) => e.at >= since);
        const answer = refreshAnswerAfter(session, since, oldId);
        const newId = session.provider.clientId;
        const newEnv = parseEnvelope(newId);
        const providerAfter = stack.providerRequests.slice(providerRequestsBefore);
        t.diagnostic(`MCP answers after the raise: ${mcpAfter.map((e) => `${e.method} ${e.status}${e.wwwAuthenticate ? ` [${e.wwwAuthenticate}]` : ''}`).join(' | ')}`);
        t.diagnostic(`token endpoint answer to the refresh with the old client: ${describeAnswer(answer)}`);
        t.diagnostic(`new client ${shortId(newId)} (provider id ${shortId(newEnv?.clientId)}, iat ${newEnv?.issuedAt}); after: ${after.ok ? after.value : after.message}`);
        t.diagnostic(`requests that reached the provider after the raise: ${providerAfter.map((r) => `${r.method} ${r.path.replace(/^(\/(?:interaction|auth)\/).+$/, '$1…')}${r.grantType ? ` ${r.grantType}` : ''}${r.clientId ? ` client=${shortId(r.clientId)}` : ''}`).join(' | ')}`);

        // 3a. The first MCP answer is the filter's invalid_token challenge (not the MCP server's).
        assert.ok(mcpAfter.length >= 1, 'the SDK called the MCP endpoint');
        const challenge = bearerParams(mcpAfter[0].wwwAuthenticate);
        assert.equal(mcpAfter[0].status, 401, 'the old access token gets 401 at /mcp');
        assert.equal(challenge.error, 'invalid_token');
        assert.equal(challenge.error_description, RETIRED_TOKEN_DESCRIPTION, "the filter's challenge, not the MCP server's");
        assert.equal(challenge.resource_metadata, stack.resourceMetadataUrl, 'the challenge names the configured resource_metadata');
        assert.equal(stack.rejectedTokens, rejectedBefore, 'the MCP server did not see (or reject) the old token: the filter answered');

        // 3b. The refresh with the old envelope: 401 invalid_client from the filter; the provider is not asked.
        assert.ok(answer, 'the SDK refreshed with the old client_id');
        assert.equal(answer.grantType, 'refresh_token');
        assert.ok(isStandardInvalidClient(answer), `401 JSON {"error":"invalid_client"} expected; got ${describeAnswer(answer)}`);
        assert.deepEqual(
          providerAfter.filter((r) => r.clientId === oldEnv.clientId),
          [],
          'no request naming the old client reached the provider after the raise',
        );
        assert.ok(stack.clientExists(oldEnv.clientId), 'the provider still holds the old client: retiring it was the filter, by the epoch');

        // 3c. The SDK registered again by itself, with a new, different envelope, and the call succeeded.
        assert.ok(session.provider.invalidations.includes('all'), `the SDK dropped its client (invalidations ${JSON.stringify(session.provider.invalidations)})`);
        assert.equal(session.provider.registrations.length - registrationsBefore, 1, 'the SDK registered exactly once more');
        assert.ok(newId?.startsWith('mog1.'), `the new client_id is an envelope too (got ${shortId(newId)})`);
        assert.ok(newEnv, 'the new envelope parses');
        assert.notEqual(newId, oldId, 'the new client_id differs from the old');
        assert.notEqual(newEnv.clientId, oldEnv.clientId, "the provider's client_id differs too");
        assert.ok(newEnv.issuedAt >= raisedEpoch, 'the new client registered at or after the raised epoch');
        assert.ok(stack.clientExists(newEnv.clientId), "the new envelope wraps the provider's new client_id");
        assert.deepEqual(
          session.provider.authorizations.slice(authorizationsBefore).map((a) => a.clientId),
          [newId],
          'the only authorization after the raise used the new client_id',
        );
        assert.ok(after.ok, `the tool call after re-registration must succeed; got ${after.message}`);
        assert.equal(after.value, 'echo: hello again');
        assert.equal(stack.toolCalls.at(-1)?.clientId, newEnv.clientId, 'the MCP server saw the call from the new client');
        assert.ok(
          providerAfter.some((r) => r.path === '/token' && r.grantType === 'authorization_code' && r.clientId === newEnv.clientId),
          "the code exchange reached the provider with the provider's own new client_id (unwrapped by the filter)",
        );

        // 4. The revocation endpoint refuses the old envelope the same way, without asking the provider.
        const revocationsBefore = stack.providerRequests.filter((r) => r.path === '/token/revocation').length;
        const revoke = await fetch(`${stack.origin}/token/revocation`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ token: 'not-a-real-token', token_type_hint: 'refresh_token', client_id: oldId }).toString(),
        });
        const revokeBody = await revoke.json().catch(() => undefined);
        t.diagnostic(`revocation with the old client_id: ${revoke.status} ${JSON.stringify(revokeBody)}`);
        assert.equal(revoke.status, 401);
        assert.equal(revokeBody?.error, 'invalid_client');
        assert.equal(stack.providerRequests.filter((r) => r.path === '/token/revocation').length, revocationsBefore, 'the revocation did not reach the provider');

        // 4b. So does the authorization endpoint: the filter's "registration has expired" page.
        const authUrl = new URL(`${stack.origin}/auth`);
        authUrl.search = new URLSearchParams({
          response_type: 'code',
          client_id: oldId,
          redirect_uri: session.provider.redirectUrl,
          code_challenge: 'x'.repeat(43),
          code_challenge_method: 'S256',
          scope: 'mcp',
          state: 'epoch-probe',
        }).toString();
        const authorizationsAtProvider = stack.providerRequests.filter((r) => r.path === '/auth').length;
        const page = await fetch(authUrl, { redirect: 'manual', headers: { accept: 'text/html' } });
        const pageText = await page.text();
        t.diagnostic(`authorization request with the old client_id: ${page.status} ${page.headers.get('content-type')}`);
        assert.equal(page.status, 400, 'no redirect back to the client');
        assert.match(pageText, /registration has expired/, "the filter's stale-registration page");
        assert.equal(stack.providerRequests.filter((r) => r.path === '/auth').length, authorizationsAtProvider, 'the authorization request did not reach the provider');

        // 5. The filter's counters (this Envoy, since the restart): one refusal per retired request
        //    (MCP call, refresh, revocation, authorization), and envelopes unwrapped for the new client.
        const stats = await guardStats(envoy);
        const retired = lifecycleCounter(stats, settings.epoch.provider, 'retired_by_epoch');
        const unwrapped = lifecycleCounter(stats, settings.epoch.provider, 'client_id_unwrapped');
        t.diagnostic(`filter counters for ${settings.epoch.provider}: retired_by_epoch=${retired}, client_id_unwrapped=${unwrapped}`);
        assert.equal(retired, 4, 'retired_by_epoch counts the MCP call, the refresh, the revocation and the authorization request');
        assert.ok(unwrapped >= 2, 'the new envelope was unwrapped (authorization, code exchange)');

        // 6. The provider never saw an envelope.
        assertProviderNeverSawEnvelope(stack);
      } finally {
        await session.close();
      }
    });
  });

  test('control, WITH the same filter policy but the epoch NOT raised: after the same Envoy restart the old client keeps working (same client_id, refresh through the envelope)', async (t) => {
    const stack = harness.stacks.control;
    const mcpLog = [];
    const session = new McpSession({ serverUrl: stack.serverUrl, name: 'control-client' });
    session.fetch = recordingMcpFetch(session.fetch, stack.serverUrl, mcpLog);
    await withDiagnostics(t, stack, { mcpLog, session }, async () => {
      try {
        // 1. Register, authorize, call: the same as the epoch listener.
        assert.equal(await session.echo('hello'), 'echo: hello');
        const oldId = session.provider.clientId;
        assert.ok(oldId?.startsWith('mog1.'), `the SDK stores the filter's envelope as its client_id (got ${shortId(oldId)})`);
        const env = parseEnvelope(oldId);
        assert.ok(env && stack.clientExists(env.clientId), "the envelope wraps the provider's own client_id");
        const token = accessTokenClaims(session.provider.tokens()?.access_token);
        t.diagnostic(`registered ${shortId(oldId)} (provider id ${shortId(env.clientId)}, iat ${env.issuedAt}); access token iat ${token?.iat}`);

        // 2. The same operator action minus the raise: restart Envoy, this listener's policy unchanged.
        await waitForSecondAfter(Math.max(env.issuedAt, token.iat));
        const envoy = await harness.restartEnvoy();
        assert.equal(envoy.ports.control, settings.control.port, 'Envoy listens on the same port after the restart');
        assert.doesNotMatch(await envoy.logText(), /policy refused/);

        // 3. Call right away, as in the epoch test: the client keeps working with the same client_id.
        const since = Date.now();
        const registrationsBefore = session.provider.registrations.length;
        const now = await attempt(() => session.echo('right after the restart'));
        t.diagnostic(`right after the restart: ${now.ok ? now.value : now.message}`);
        assert.ok(now.ok, `the call right after the restart must succeed; got ${now.message}`);

        // 4. Let the access token expire: the refresh goes through the filter with the envelope.
        await session.waitForAccessTokenExpiry();
        const sinceExpiry = Date.now();
        const later = await attempt(() => session.echo('after expiry'));
        const refresh = refreshAnswerAfter(session, sinceExpiry, oldId);
        t.diagnostic(`after expiry: ${later.ok ? later.value : later.message}; refresh answer: ${refresh ? `${refresh.status} ${refresh.error ?? '(tokens)'}` : '(none)'}`);
        t.diagnostic(`MCP answers after the restart: ${mcpLog.filter((e) => e.at >= since).map((e) => `${e.method} ${e.status}${e.wwwAuthenticate ? ` [${e.wwwAuthenticate}]` : ''}`).join(' | ')}`);
        assert.ok(later.ok, `the call after expiry must succeed; got ${later.message}`);
        assert.equal(later.value, 'echo: after expiry');
        assert.ok(refresh, 'the SDK refreshed the expired access token');
        assert.equal(refresh.status, 200, `the refresh with the envelope succeeds; got ${describeAnswer(refresh)}`);
        assert.equal(refresh.body, '(tokens)');
        assert.ok(
          stack.providerRequests.some((r) => r.at >= sinceExpiry && r.path === '/token' && r.grantType === 'refresh_token' && r.clientId === env.clientId),
          "the refresh reached the provider with the provider's own client_id (unwrapped by the filter)",
        );

        // The old client was never retired: no filter challenge, no invalid_client, no re-registration.
        for (const e of mcpLog.filter((x) => x.at >= since)) {
          assert.notEqual(bearerParams(e.wwwAuthenticate).error_description, RETIRED_TOKEN_DESCRIPTION, 'the filter never refused the token');
        }
        assert.ok(!session.tokenResponses.some((e) => e.error === 'invalid_client'), 'no invalid_client');
        assert.ok(!session.provider.invalidations.includes('all'), `the SDK kept its client (invalidations ${JSON.stringify(session.provider.invalidations)})`);
        assert.equal(session.provider.registrations.length, registrationsBefore, 'no new registration');
        assert.equal(session.provider.clientId, oldId, 'the same client_id');
        assert.equal(stack.toolCalls.at(-1)?.clientId, env.clientId, 'the MCP server saw the call from the same client');
        const stats = await guardStats(envoy);
        const retired = lifecycleCounter(stats, settings.control.provider, 'retired_by_epoch');
        t.diagnostic(`filter counters for ${settings.control.provider}: retired_by_epoch=${retired}, client_id_unwrapped=${lifecycleCounter(stats, settings.control.provider, 'client_id_unwrapped')}`);
        assert.equal(retired, 0, 'the filter retired nothing at the control listener');

        assertProviderNeverSawEnvelope(stack);
      } finally {
        await session.close();
      }
    });
  });
});
