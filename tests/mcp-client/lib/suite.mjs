// Defines, for a list of provider shapes, the end-to-end tests: for each shape
// and each deployment (root URL and /mcp path), one Envoy listener WITH the
// filter (the shape's preset) and one WITHOUT it, in the same Envoy, each in
// front of its own oidc-provider + shim + MCP server.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startHarness, shortId } from './harness.mjs';
import { SHAPES } from './shapes.mjs';
import { clientGoneFlow, revokedRefreshFlow, isStandardInvalidClient, describeAnswer } from './scenarios.mjs';

export const DEPLOYMENTS = ['root', 'path'];
const ACCESS_TOKEN_TTL = Number(process.env.E2E_ACCESS_TOKEN_TTL ?? 3);
// Debugging aid: E2E_ONLY=plain runs only the listeners without the filter
// (the controls), E2E_ONLY=guard only those with it. Default: both.
const ONLY = process.env.E2E_ONLY ?? '';
const runGuard = ONLY !== 'plain';
const runPlain = ONLY !== 'guard';

function listenerName(mode, shape, deployment) {
  return `${mode}-${shape}-${deployment}`;
}

function tail(text, lines = 150) {
  const all = text.split('\n');
  return all.length > lines ? `… (${all.length - lines} earlier lines)\n${all.slice(-lines).join('\n')}` : text;
}

/**
 * shapeNames: keys of SHAPES. Options: deployments (default root and path),
 * presetOverride (use this filter preset instead of each shape's own, e.g. 'auto'),
 * controls (false: no listener without the filter and no control tests).
 */
export function defineShapeSuite(shapeNames, { deployments = DEPLOYMENTS, presetOverride, controls = true } = {}) {
  describe(`provider shapes: ${shapeNames.join(', ')}${presetOverride ? ` (filter preset ${presetOverride})` : ''}`, { concurrency: true }, () => {
    let harness;
    const listeners = [];
    for (const shape of shapeNames) {
      for (const deployment of deployments) {
        if (runGuard) listeners.push({ name: listenerName('guard', shape, deployment), deployment, shape, guard: presetOverride ?? SHAPES[shape].preset });
        if (runPlain && controls) listeners.push({ name: listenerName('plain', shape, deployment), deployment, shape, guard: null });
      }
    }

    before(async () => {
      harness = await startHarness({ listeners, accessTokenTTL: ACCESS_TOKEN_TTL, log: (m) => console.error(m) });
    });

    after(async () => {
      await harness?.stop();
    });

    // On failure: show what Envoy, the filter and the shim saw.
    async function withDiagnostics(t, fn) {
      try {
        await fn();
      } catch (err) {
        const diag = harness ? await harness.diagnostics() : '(harness not started)';
        console.error(`\n===== diagnostics for "${t.name}" =====\n${tail(diag, 250)}\n===== end diagnostics =====\n`);
        throw err;
      }
    }

    for (const shape of shapeNames) {
      const spec = SHAPES[shape];
      const preset = presetOverride ?? spec.preset;
      for (const deployment of deployments) {
        test(`${shape} / ${deployment} URL, WITH the filter (preset ${preset}): client deleted at the provider -> 401 invalid_client -> SDK registers again and the tool call succeeds`, { skip: !runGuard && 'E2E_ONLY=plain' }, async (t) => {
          await withDiagnostics(t, async () => {
            const stack = harness.stacks[listenerName('guard', shape, deployment)];
            const r = await clientGoneFlow(stack, { name: `guard-${shape}-${deployment}` });
            t.diagnostic(`old client ${shortId(r.oldClientId)}, new client ${shortId(r.newClientId)}`);
            t.diagnostic(`token endpoint answer through the filter: ${describeAnswer(r.answer)}`);
            t.diagnostic(`  headers: cache-control=${r.answer?.cacheControl ?? '(none)'}, www-authenticate=${r.answer?.wwwAuthenticate ?? '(none)'}`);
            const shimmed = stack.tokenLog.find((e) => e.clientId === r.oldClientId && e.grantType === 'refresh_token');
            t.diagnostic(`provider's raw answer (shim output): ${shimmed ? `${shimmed.sent.status} ${shimmed.sent.body}` : '(none)'}`);

            assert.deepEqual(r.tools, ['echo']);
            assert.equal(r.first, 'echo: hello');
            assert.ok(shimmed, 'the refresh with the deleted client reached the provider');
            if (spec.clientGone) assert.equal(shimmed.rewritten, 'client_gone', 'the provider answered in its own shape');
            assert.ok(
              isStandardInvalidClient(r.answer),
              `the client must get 401 JSON {"error":"invalid_client"} from the token endpoint; got ${describeAnswer(r.answer)}`,
            );
            assert.ok(r.after.ok, `the tool call after re-registration must succeed; got ${r.after.message}`);
            assert.equal(r.after.value, 'echo: hello again');
            assert.ok(r.invalidations.includes('all'), `SDK invalidated all credentials (saw ${JSON.stringify(r.invalidations)})`);
            assert.equal(r.newRegistrations.length, 1, 'the SDK registered exactly once more');
            assert.notEqual(r.newClientId, r.oldClientId, 'the new client_id differs from the old');
            assert.ok(stack.clientExists(r.newClientId) && !stack.clientExists(r.oldClientId));
            assert.deepEqual(
              r.authorizationsAfter.map((a) => a.clientId),
              [r.newClientId],
              'the only authorization after the deletion used the new client_id',
            );
            assert.equal(stack.toolCalls.at(-1)?.clientId, r.newClientId, 'the MCP server saw the call from the new client');
          });
        });

        const controlTitle = spec.sdkRecoversUnfiltered
          ? `${shape} / ${deployment} URL, WITHOUT the filter (control): the SDK already recovers from this shape by itself`
          : `${shape} / ${deployment} URL, WITHOUT the filter (control): the SDK stays stuck on the dead client_id`;
        if (controls) test(controlTitle, { skip: !runPlain && 'E2E_ONLY=guard' }, async (t) => {
          await withDiagnostics(t, async () => {
            const stack = harness.stacks[listenerName('plain', shape, deployment)];
            const r = await clientGoneFlow(stack, { name: `plain-${shape}-${deployment}` });
            t.diagnostic(`token endpoint answer without the filter: ${describeAnswer(r.answer)}`);
            t.diagnostic(
              `after deletion: ${r.after.ok ? 'tool call OK' : r.after.message}; registrations after deletion: ${r.newRegistrations.length}; authorizations after deletion with client_ids ${JSON.stringify(
                r.authorizationsAfter.map((a) => shortId(a.clientId)),
              )}`,
            );
            assert.equal(r.first, 'echo: hello');
            assert.ok(r.answer, 'the SDK tried to refresh');
            if (spec.sdkRecoversUnfiltered) {
              assert.ok(r.after.ok, `expected the SDK to recover by itself; got ${r.after.message}`);
              assert.notEqual(r.newClientId, r.oldClientId);
              return;
            }
            assert.equal(isStandardInvalidClient(r.answer), false, 'without the filter the provider shape reaches the client');
            const raw = spec.clientGone(r.oldClientId);
            assert.equal(r.answer.status, raw.status, "the client got the provider's status");
            assert.equal(r.after.ok, false, 'the tool call after deletion fails');
            assert.equal(r.retry?.ok, false, 'and keeps failing');
            assert.deepEqual(r.newRegistrations, [], 'no new registration');
            assert.equal(r.newClientId, r.oldClientId, 'the client keeps the dead client_id');
            for (const a of r.authorizationsAfter) {
              assert.equal(a.clientId, r.oldClientId, 'any authorization attempt uses the dead client_id');
              assert.ok(!a.result.code, 'and gets no code');
            }
          });
        });
      }

      // A revoked refresh token is invalid_grant: the filter must not turn it
      // into invalid_client (the client keeps its registration).
      const deployment = deployments.includes('path') ? 'path' : deployments[0];
      test(`${shape} / ${deployment} URL, WITH the filter: revoked refresh token stays a grant error (no re-registration)`, { skip: !runGuard && 'E2E_ONLY=plain' }, async (t) => {
        await withDiagnostics(t, async () => {
          const stack = harness.stacks[listenerName('guard', shape, deployment)];
          const r = await revokedRefreshFlow(stack, { name: `guard-revoked-${shape}` });
          t.diagnostic(`token endpoint answer through the filter: ${describeAnswer(r.answer)}`);
          assert.ok(r.revoked >= 1, 'a refresh token was revoked');
          assert.ok(r.answer, 'the SDK tried to refresh');
          assert.notEqual(r.answer.json?.error, 'invalid_client', `must not become invalid_client: ${describeAnswer(r.answer)}`);
          assert.notEqual(r.answer.json?.error, 'unauthorized_client', `must not become unauthorized_client: ${describeAnswer(r.answer)}`);
          assert.ok(!r.invalidations.includes('all'), `the SDK must keep its client (invalidations ${JSON.stringify(r.invalidations)})`);
          assert.deepEqual(r.registrations, [r.clientId], 'no new registration');
          assert.equal(r.finalClientId, r.clientId);
          assert.ok(r.after.ok, `the tool call after re-authorization must succeed; got ${r.after.message}`);
          if (spec.revokedRefresh && spec.revokedRefresh(r.clientId).status < 300) {
            // A 2xx token response with an error and no access_token is an error
            // response (brief, field case 5) and must reach the client as invalid_grant.
            assert.ok(r.answer.status >= 400, `a 200 error body must reach the client as an error status: ${describeAnswer(r.answer)}`);
            assert.equal(r.answer.json?.error, 'invalid_grant', `expected invalid_grant: ${describeAnswer(r.answer)}`);
          }
        });
      });
    }
  });
}
