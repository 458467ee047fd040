// The MCP client side, built only from the official TypeScript SDK's public
// API: a Client over StreamableHTTPClientTransport with an OAuthClientProvider
// that persists client information, tokens and the PKCE verifier (in memory),
// implements invalidateCredentials like the SDK's examples, and whose
// redirectToAuthorization is a scripted browser: it GETs the authorization URL,
// follows the authorization server's redirects (headless login + consent) up to
// the redirect to the client's redirect_uri and keeps the `code`. The session
// helper then calls transport.finishAuth(code) and reconnects, as an
// application does after its OAuth callback.

import { randomUUID } from 'node:crypto';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';

import { errorCodeOf, TOKEN_PATH } from './shapes.mjs';

export const REDIRECT_URL = 'http://localhost/e2e-callback';

/**
 * Follows the authorization server's redirects like a browser with cookies.
 * Never leaves the origin of the authorization URL: the redirect_uri itself is
 * not requested, only read. Returns { code, state } or { error, ... }.
 */
export async function scriptedBrowser(authorizationUrl, { redirectUrl = REDIRECT_URL, maxHops = 12 } = {}) {
  const start = new URL(authorizationUrl);
  const jar = new Map();
  let current = start;
  for (let hop = 0; hop < maxHops; hop += 1) {
    if (current.origin !== start.origin) return { error: 'left_origin', location: current.origin };
    const res = await fetch(current, {
      redirect: 'manual',
      headers: {
        accept: 'text/html',
        ...(jar.size ? { cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; ') } : {}),
      },
    });
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const expired = attrs.some((a) => {
        const [k, v] = a.split('=').map((x) => x?.trim());
        return (k?.toLowerCase() === 'max-age' && Number(v) <= 0) || (k?.toLowerCase() === 'expires' && Date.parse(v) < Date.now());
      });
      if (expired || value === '') jar.delete(name);
      else jar.set(name, value);
    }
    if (res.status >= 300 && res.status < 400 && res.headers.get('location')) {
      await res.body?.cancel();
      const next = new URL(res.headers.get('location'), current);
      if (next.href.startsWith(redirectUrl)) {
        const p = next.searchParams;
        if (p.get('code')) return { code: p.get('code'), state: p.get('state'), iss: p.get('iss') };
        return { error: p.get('error') ?? 'no_code', error_description: p.get('error_description'), state: p.get('state') };
      }
      current = next;
      continue;
    }
    const text = await res.text();
    const pre = [...text.matchAll(/<strong>([^<]+)<\/strong>:\s*([^<]*)<\/pre>/g)].map((m) => `${m[1]}=${m[2].trim()}`);
    const plain = text.replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').trim().slice(0, 200);
    return { error: 'no_redirect', status: res.status, at: current.pathname, page: pre.length ? pre.join(', ') : plain };
  }
  return { error: 'too_many_redirects' };
}

/** An OAuthClientProvider with in-memory persistence and a scripted browser. */
export class ScriptedOAuthProvider {
  constructor({ clientName = 'mcp-oauth-guard e2e', redirectUrl = REDIRECT_URL } = {}) {
    this._redirectUrl = redirectUrl;
    this._clientName = clientName;
    this._clientInformation = undefined;
    this._tokens = undefined;
    this._codeVerifier = undefined;
    this._state = undefined;
    this._discovery = undefined;
    this.pendingCode = undefined;
    this.registrations = []; // every client_id the SDK saved, in order
    this.authorizations = []; // every authorization attempt: { clientId, result }
    this.invalidations = []; // every invalidateCredentials(scope) call
  }

  get redirectUrl() {
    return this._redirectUrl;
  }

  get clientMetadata() {
    return {
      client_name: this._clientName,
      redirect_uris: [this._redirectUrl],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }

  state() {
    this._state = randomUUID();
    return this._state;
  }

  clientInformation() {
    return this._clientInformation;
  }

  saveClientInformation(info) {
    this._clientInformation = info;
    this.registrations.push(info.client_id);
  }

  get clientId() {
    return this._clientInformation?.client_id;
  }

  tokens() {
    return this._tokens;
  }

  saveTokens(tokens) {
    this._tokens = tokens;
  }

  async redirectToAuthorization(authorizationUrl) {
    const clientId = authorizationUrl.searchParams.get('client_id');
    const result = await scriptedBrowser(authorizationUrl, { redirectUrl: this._redirectUrl });
    if (result.code && result.state !== this._state) {
      result.error = 'state_mismatch';
      delete result.code;
    }
    this.authorizations.push({ clientId, result: { ...result, code: result.code ? '(code)' : undefined } });
    this.pendingCode = result.code;
  }

  takeCode() {
    const code = this.pendingCode;
    this.pendingCode = undefined;
    return code;
  }

  saveCodeVerifier(codeVerifier) {
    this._codeVerifier = codeVerifier;
  }

  codeVerifier() {
    if (!this._codeVerifier) throw new Error('No code verifier saved');
    return this._codeVerifier;
  }

  saveDiscoveryState(state) {
    this._discovery = state;
  }

  discoveryState() {
    return this._discovery;
  }

  invalidateCredentials(scope) {
    this.invalidations.push(scope);
    if (scope === 'all' || scope === 'client') this._clientInformation = undefined;
    if (scope === 'all' || scope === 'tokens') this._tokens = undefined;
    if (scope === 'all' || scope === 'verifier') this._codeVerifier = undefined;
    if (scope === 'all' || scope === 'discovery') this._discovery = undefined;
  }

  /** Seconds-since-epoch expiry of the current access token (a JWT here). */
  accessTokenExp() {
    const at = this._tokens?.access_token;
    if (!at) return undefined;
    try {
      return JSON.parse(Buffer.from(at.split('.')[1], 'base64url').toString('utf8')).exp;
    } catch {
      return undefined;
    }
  }
}

/** A fetch that records the token endpoint's answers (error bodies only; never tokens). */
export function recordingFetch(log) {
  return async (input, init) => {
    const res = await fetch(input, init);
    const url = new URL(typeof input === 'string' || input instanceof URL ? input : input.url);
    if (url.pathname === TOKEN_PATH && (init?.method ?? 'GET').toUpperCase() === 'POST') {
      const params = new URLSearchParams(typeof init.body === 'string' ? init.body : init.body?.toString() ?? '');
      const text = await res.clone().text();
      const contentType = res.headers.get('content-type') ?? '';
      const isTokenSuccess = res.ok && /"access_token"/.test(text);
      log.push({
        at: Date.now(),
        grantType: params.get('grant_type'),
        clientId: params.get('client_id'),
        status: res.status,
        contentType,
        wwwAuthenticate: res.headers.get('www-authenticate') ?? undefined,
        cacheControl: res.headers.get('cache-control') ?? undefined,
        error: isTokenSuccess ? undefined : errorCodeOf(contentType, text) ?? (res.ok ? undefined : '(unparsed)'),
        body: isTokenSuccess ? '(tokens)' : text,
      });
    }
    return res;
  };
}

export class AuthStuckError extends Error {
  constructor(provider, cause) {
    const last = provider.authorizations.at(-1);
    super(
      `authorization did not produce a code${last ? ` (client_id ${last.clientId}: ${JSON.stringify(last.result)})` : ''}: ${cause?.message ?? cause}`,
    );
    this.name = 'AuthStuckError';
    this.cause = cause;
  }
}

/**
 * One MCP client application: the SDK Client + transport + provider, with the
 * application's part of the OAuth dance (finishAuth + reconnect).
 */
export class McpSession {
  constructor({ serverUrl, provider = new ScriptedOAuthProvider(), name = 'e2e-client' }) {
    this.serverUrl = serverUrl;
    this.provider = provider;
    this.name = name;
    this.tokenResponses = [];
    this.fetch = recordingFetch(this.tokenResponses);
    this.client = undefined;
    this.transport = undefined;
  }

  _newTransport() {
    return new StreamableHTTPClientTransport(new URL(this.serverUrl), { authProvider: this.provider, fetch: this.fetch });
  }

  async _finishAuth(transport, err) {
    const code = this.provider.takeCode();
    if (!code) throw new AuthStuckError(this.provider, err);
    await transport.finishAuth(code);
  }

  async connect() {
    let lastErr;
    for (let attempt = 0; attempt < 3; attempt += 1) {
      const transport = this._newTransport();
      const client = new Client({ name: this.name, version: '1.0.0' });
      try {
        await client.connect(transport);
        this.client = client;
        this.transport = transport;
        return;
      } catch (err) {
        lastErr = err;
        await client.close().catch(() => {});
        if (!(err instanceof UnauthorizedError)) throw err;
        await this._finishAuth(transport, err);
      }
    }
    throw lastErr;
  }

  /** Runs op(client); on UnauthorizedError completes the authorization and retries once on a new connection. */
  async run(op) {
    if (!this.client) await this.connect();
    try {
      return await op(this.client);
    } catch (err) {
      if (!(err instanceof UnauthorizedError)) throw err;
      await this._finishAuth(this.transport, err);
      await this.client.close().catch(() => {});
      this.client = undefined;
      await this.connect();
      return await op(this.client);
    }
  }

  listTools() {
    return this.run((c) => c.listTools());
  }

  async echo(text) {
    const result = await this.run((c) => c.callTool({ name: 'echo', arguments: { text } }));
    if (result.isError) throw new Error(`echo tool error: ${JSON.stringify(result.content)}`);
    return result.content?.[0]?.text;
  }

  /** Waits until the current access token has expired (plus a margin). */
  async waitForAccessTokenExpiry(marginMs = 150) {
    const exp = this.provider.accessTokenExp();
    if (!exp) throw new Error('no access token to wait for');
    const ms = exp * 1000 + marginMs - Date.now();
    if (ms > 0) await new Promise((r) => setTimeout(r, ms));
  }

  async close() {
    await this.client?.close().catch(() => {});
    this.client = undefined;
  }
}
