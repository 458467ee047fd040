// Helpers for the client lifecycle tests (epoch.test.mjs): the filter policy with
// a `lifecycle` section, RFC 3339 times, the signed client_id envelope as the
// client sees it, and a fetch that records the MCP endpoint's answers.

import net from 'node:net';
import { randomBytes } from 'node:crypto';

import { OIDC_ENDPOINTS } from './shapes.mjs';

/** Unix seconds now. */
export function nowSeconds() {
  return Math.floor(Date.now() / 1000);
}

/** Unix seconds as an RFC 3339 UTC timestamp without fraction: 2026-12-04T10:00:00Z. */
export function rfc3339(seconds) {
  return new Date(seconds * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** A fresh HMAC signing key for the policy: 32 random bytes, base64. Never logged. */
export function newSigningKey(id = 'k1') {
  return { id, secret: randomBytes(32).toString('base64') };
}

/**
 * A free TCP port on 127.0.0.1, for an Envoy listener whose policy must name its
 * own origin (resource_metadata) before Envoy starts. The OS picks it; it is
 * released at once for Envoy to bind.
 */
export function reservePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/**
 * The policy (docs/policy-draft.md) for one oidc-provider behind the filter with
 * client lifecycle rules: signed client_ids, a registration epoch, bearer checks
 * at the MCP endpoint(s).
 */
export function lifecyclePolicy({
  name,
  preset = 'node-oidc-provider',
  registrationEpoch,
  clientMaxAge,
  signingKeys,
  retireUnsignedClients = false,
  mcpEndpoints = [],
  resourceMetadata,
}) {
  const list = (xs) => `[${xs.map((x) => JSON.stringify(x)).join(', ')}]`;
  return [
    'version: 1',
    'providers:',
    `  - name: ${name}`,
    `    preset: ${preset}`,
    '    endpoints:',
    `      token: ${list(OIDC_ENDPOINTS.token)}`,
    `      revocation: ${list(OIDC_ENDPOINTS.revocation)}`,
    `      registration: ${list(OIDC_ENDPOINTS.registration)}`,
    `      authorization: ${list(OIDC_ENDPOINTS.authorization)}`,
    '    lifecycle:',
    ...(registrationEpoch ? [`      registration_epoch: ${JSON.stringify(registrationEpoch)}`] : []),
    ...(clientMaxAge ? [`      client_max_age: ${clientMaxAge}`] : []),
    ...(signingKeys?.length
      ? [
          '      sign_client_ids: true',
          '      signing_keys:',
          ...signingKeys.map((k) => `        - {id: ${JSON.stringify(k.id)}, secret: ${JSON.stringify(k.secret)}}`),
        ]
      : []),
    ...(retireUnsignedClients ? ['      retire_unsigned_clients: true'] : []),
    ...(mcpEndpoints.length ? [`      mcp_endpoints: ${list(mcpEndpoints)}`] : []),
    ...(resourceMetadata ? [`      resource_metadata: ${JSON.stringify(resourceMetadata)}`] : []),
    'limits:',
    '  max_body_bytes: 65536',
    '',
  ].join('\n');
}

/**
 * The parts of a signed client_id envelope, `mog1.<kid>.<iat>.<b64url id>.<tag>`,
 * read without verifying the tag (the test only checks what the filter wrote).
 * `undefined` when the id is not in that form.
 */
export function parseEnvelope(clientId) {
  const m = /^mog1\.([A-Za-z0-9_-]{1,16})\.(\d+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)$/.exec(String(clientId ?? ''));
  if (!m) return undefined;
  return { kid: m[1], issuedAt: Number(m[2]), clientId: Buffer.from(m[3], 'base64url').toString('utf8') };
}

/** The `iat` and `client_id` claims of a JWT access token (read, not verified; the token itself is never kept). */
export function accessTokenClaims(accessToken) {
  try {
    const { iat, exp, client_id: clientId } = JSON.parse(Buffer.from(String(accessToken).split('.')[1], 'base64url').toString('utf8'));
    return { iat, exp, clientId };
  } catch {
    return undefined;
  }
}

/** The auth-params of a `WWW-Authenticate: Bearer ...` challenge, e.g. { error, resource_metadata }. */
export function bearerParams(challenge) {
  const out = {};
  if (!/^\s*Bearer\b/i.test(challenge ?? '')) return out;
  for (const m of String(challenge).matchAll(/([A-Za-z_]+)="([^"]*)"/g)) out[m[1]] = m[2];
  return out;
}

/**
 * Wraps a fetch so every answer of the MCP endpoint (`mcpUrl`) is recorded:
 * time, method, status and WWW-Authenticate. No request headers (they carry the
 * access token) and no bodies.
 */
export function recordingMcpFetch(inner, mcpUrl, log) {
  const target = new URL(mcpUrl);
  return async (input, init) => {
    const res = await inner(input, init);
    const url = new URL(typeof input === 'string' || input instanceof URL ? input : input.url);
    if (url.origin === target.origin && url.pathname === target.pathname) {
      log.push({
        at: Date.now(),
        method: (init?.method ?? 'GET').toUpperCase(),
        status: res.status,
        wwwAuthenticate: res.headers.get('www-authenticate') ?? undefined,
      });
    }
    return res;
  };
}

/** The filter's counters (`wasmcustom.mcp_oauth_guard.*`) from an Envoy's admin endpoint, as { name: value }. */
export async function guardStats(envoy) {
  const res = await fetch(`${envoy.admin}/stats?format=json&filter=mcp_oauth_guard`);
  const json = await res.json();
  const out = {};
  for (const s of json.stats ?? []) if (s.name && typeof s.value === 'number') out[s.name] = s.value;
  return out;
}
