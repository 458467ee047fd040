// End-to-end with the official MCP Python SDK client (python_client.py, run
// with the project venv's python): same story as the TypeScript suite, Clerk
// shape. The Python SDK is known not to register again on invalid_client; this
// records what it does and asserts that the filter still sends it the standard
// signal (401 invalid_client from the token endpoint).

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

import { startHarness, shortId, VENV_PYTHON } from './lib/harness.mjs';
import { SHAPES } from './lib/shapes.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const SCRIPT = path.join(here, 'python_client.py');
const SHAPE = 'clerk';
const ACCESS_TOKEN_TTL = Number(process.env.E2E_ACCESS_TOKEN_TTL ?? 3);

function checkPython() {
  if (!fs.existsSync(VENV_PYTHON)) return `no Python at ${VENV_PYTHON} (run scripts/bootstrap.sh)`;
  const r = spawnSync(VENV_PYTHON, ['-c', 'import importlib.metadata as m; print(m.version("mcp"))'], { encoding: 'utf8' });
  if (r.status !== 0) return `the MCP Python SDK (mcp) is not installed in ${path.dirname(path.dirname(VENV_PYTHON))}: ${r.stderr.trim().split('\n').at(-1)}`;
  return { version: r.stdout.trim() };
}

/** Runs python_client.py against a stack; deletes the client when it is ready. */
function runPythonClient(stack, { timeoutMs = 90_000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(VENV_PYTHON, [SCRIPT, stack.serverUrl], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    let ready;
    let result;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`python client timed out\n${stderr}`));
    }, timeoutMs);
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    readline.createInterface({ input: child.stdout }).on('line', async (line) => {
      let msg;
      try {
        msg = JSON.parse(line);
      } catch {
        return;
      }
      if (msg.event === 'ready') {
        ready = msg;
        try {
          stack.deleteClient(msg.client_id);
          // The Python SDK refreshes only once its own clock (receipt + expires_in)
          // says the token expired; before that it sends the expired token, gets
          // 401 from the MCP server and starts a new authorization without
          // refreshing. Wait past both so the refresh path is exercised.
          const until = Math.max(msg.exp * 1000, (msg.sdk_expiry ?? 0) * 1000);
          const wait = until + 150 - Date.now();
          if (wait > 0) await new Promise((r) => setTimeout(r, wait));
          child.stdin.write('go\n');
        } catch (err) {
          child.kill('SIGKILL');
          reject(err);
        }
      } else if (msg.event === 'result') {
        result = msg;
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (!ready || !result) reject(new Error(`python client exited ${code} before reporting\n${stderr}`));
      else resolve({ ready, result, code, stderr });
    });
  });
}

describe('official MCP Python SDK client', { concurrency: true }, () => {
  const py = checkPython();
  let harness;

  before(async () => {
    if (typeof py === 'string') return;
    harness = await startHarness({
      listeners: [
        ...(process.env.E2E_ONLY === 'plain' ? [] : [{ name: 'py-guard', deployment: 'path', shape: SHAPE, guard: SHAPES[SHAPE].preset }]),
        ...(process.env.E2E_ONLY === 'guard' ? [] : [{ name: 'py-plain', deployment: 'path', shape: SHAPE, guard: null }]),
      ],
      accessTokenTTL: ACCESS_TOKEN_TTL,
      log: (m) => console.error(m),
    });
  });

  after(async () => {
    await harness?.stop();
  });

  async function run(t, name) {
    assert.equal(typeof py, 'object', py);
    const stack = harness.stacks[name];
    try {
      const r = await runPythonClient(stack);
      t.diagnostic(`mcp ${py.version}: registered ${shortId(r.ready.client_id)}; after deletion: ${r.result.ok ? `tool call OK (${r.result.text})` : r.result.error}`);
      t.diagnostic(`registrations after deletion: ${r.result.registrations.length - 1}; client_id now ${shortId(r.result.client_id)}`);
      t.diagnostic(`token endpoint answers after deletion: ${JSON.stringify(r.result.token_answers.map((a) => ({ ...a, body: a.body.slice(0, 160) })))}`);
      t.diagnostic(`authorization attempts after deletion: ${JSON.stringify(r.result.authorizations.map((a) => ({ ...a, client_id: shortId(a.client_id) })))}`);
      assert.equal(r.ready.first, 'echo: hello');
      return r;
    } catch (err) {
      console.error(`\n===== diagnostics for "${t.name}" =====\n${await harness.diagnostics()}\n===== end =====`);
      throw err;
    }
  }

  test('WITH the filter: the Python SDK gets the standard signal (401 invalid_client) on refresh', { skip: process.env.E2E_ONLY === 'plain' && 'E2E_ONLY=plain' }, async (t) => {
    const r = await run(t, 'py-guard');
    const refresh = r.result.token_answers.find((a) => a.grant_type === 'refresh_token');
    assert.ok(refresh, 'the Python SDK tried to refresh');
    assert.equal(refresh.status, 401, `status through the filter: ${JSON.stringify(refresh)}`);
    assert.match(refresh.content_type, /application\/json/);
    assert.equal(JSON.parse(refresh.body).error, 'invalid_client');
    // The Python SDK then (as of mcp 2.3.0) keeps its client and sends the user to
    // /authorize with the dead client_id. Clerk answers that with JSON; the filter
    // must show its own page instead (never a redirect, never the provider's JSON).
    for (const a of r.result.authorizations.filter((x) => x.client_id === r.ready.client_id && x.outcome !== 'code')) {
      assert.equal(a.outcome.status, 400, JSON.stringify(a.outcome));
      assert.match(a.outcome.content_type, /text\/html/, `the browser gets the filter's page: ${JSON.stringify(a.outcome)}`);
    }
  });

  test('WITHOUT the filter (control): the Python SDK gets the raw Clerk answer', { skip: process.env.E2E_ONLY === 'guard' && 'E2E_ONLY=guard' }, async (t) => {
    const r = await run(t, 'py-plain');
    const refresh = r.result.token_answers.find((a) => a.grant_type === 'refresh_token');
    assert.ok(refresh, 'the Python SDK tried to refresh');
    assert.equal(refresh.status, 400);
    assert.equal(refresh.error, 'invalid_request');
    assert.equal(r.result.ok, false, 'without the filter the Python client cannot recover');
    assert.equal(r.result.client_id, r.ready.client_id, 'and keeps the dead client_id');
    for (const a of r.result.authorizations.filter((x) => x.client_id === r.ready.client_id && x.outcome !== 'code')) {
      assert.match(a.outcome.content_type ?? '', /application\/json/, `without the filter the browser gets Clerk's JSON: ${JSON.stringify(a.outcome)}`);
    }
  });
});
