// One MCP session with the official TypeScript SDK client, started by run.py:
// node sdk-session.mjs <listener port> <server URL as a user types it>
//
// Discovery (RFC 9728, RFC 8414), dynamic registration, authorization code with PKCE,
// initialize and tools/list, then one refresh through the SDK's own auth(), then
// tools/list again. Prints one JSON line: { ok, resource, error }.
//
// Every request goes to 127.0.0.1:<port>: the fetch below connects there whatever the
// URL's host, sends that host in the Host header, and never follows redirects. The public
// example host names of the test therefore never leave this machine.

import http from 'node:http';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { auth, UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';

const [port, serverUrl] = process.argv.slice(2);
const REDIRECT_URL = 'http://127.0.0.1:9/callback';

/** fetch over loopback: the URL names the Host, the socket is always 127.0.0.1:port. */
function loopbackFetch(input, init = {}) {
  const url = new URL(typeof input === 'string' || input instanceof URL ? input : input.url);
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    return Promise.reject(new TypeError(`refusing ${url.protocol}`));
  }
  const headers = new Headers(init.headers ?? {});
  const defaultPort = url.protocol === 'https:' ? '443' : '80';
  headers.set('host', url.port && url.port !== defaultPort ? `${url.hostname}:${url.port}` : url.hostname);
  const body = init.body == null ? undefined : Buffer.from(String(init.body));
  if (body) headers.set('content-length', String(body.length));
  const method = (init.method ?? 'GET').toUpperCase();
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port: Number(port), method, path: url.pathname + url.search, headers: Object.fromEntries(headers) },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const noBody = method === 'HEAD' || [101, 204, 205, 304].includes(res.statusCode);
          const out = new Headers();
          for (const [k, v] of Object.entries(res.headers)) {
            for (const one of Array.isArray(v) ? v : [v]) out.append(k, one);
          }
          resolve(new Response(noBody ? null : Buffer.concat(chunks), { status: res.statusCode, headers: out }));
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (init.signal) init.signal.addEventListener('abort', () => req.destroy(new Error('aborted')));
    req.end(body);
  });
}

class Provider {
  constructor() {
    this.info = undefined;
    this.savedTokens = undefined;
    this.verifier = undefined;
    this.discovery = undefined;
    this.code = undefined;
    this.authorizeError = undefined;
  }
  get redirectUrl() { return REDIRECT_URL; }
  get clientMetadata() {
    return { client_name: 'url-identity e2e', redirect_uris: [REDIRECT_URL], grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], token_endpoint_auth_method: 'none' };
  }
  clientInformation() { return this.info; }
  saveClientInformation(info) { this.info = info; }
  tokens() { return this.savedTokens; }
  saveTokens(tokens) { this.savedTokens = tokens; }
  saveCodeVerifier(v) { this.verifier = v; }
  codeVerifier() { return this.verifier; }
  saveDiscoveryState(s) { this.discovery = s; }
  discoveryState() { return this.discovery; }
  invalidateCredentials(scope) {
    if (scope === 'all' || scope === 'client') this.info = undefined;
    if (scope === 'all' || scope === 'tokens') this.savedTokens = undefined;
  }
  // The "browser": the authorization server answers at once with a redirect carrying the code.
  async redirectToAuthorization(url) {
    const res = await loopbackFetch(url);
    const location = res.headers.get('location');
    this.code = location ? new URL(location).searchParams.get('code') ?? undefined : undefined;
    if (!this.code) this.authorizeError = `authorization answered ${res.status} ${(await res.text()).slice(0, 120)}`;
  }
}

async function connect(provider) {
  const transport = new StreamableHTTPClientTransport(new URL(serverUrl), { authProvider: provider, fetch: loopbackFetch });
  const client = new Client({ name: 'url-identity-e2e', version: '0.0.0' });
  await client.connect(transport);
  return client;
}

async function main() {
  const provider = new Provider();
  let client;
  try {
    client = await connect(provider);
  } catch (error) {
    if (!(error instanceof UnauthorizedError)) throw error;
    if (!provider.code) throw new Error(provider.authorizeError ?? 'no authorization code');
    const transport = new StreamableHTTPClientTransport(new URL(serverUrl), { authProvider: provider, fetch: loopbackFetch });
    await transport.finishAuth(provider.code);
    client = await connect(provider);
  }
  await client.listTools();
  // A refresh, as the SDK does it after a 401 (it reuses the discovery state it saved).
  const refreshed = await auth(provider, { serverUrl, fetchFn: loopbackFetch });
  if (refreshed !== 'AUTHORIZED') throw new Error(`refresh ended in ${refreshed}`);
  await client.listTools();
  await client.close();
  return provider.discovery?.resourceMetadata?.resource;
}

main().then(
  (resource) => { process.stdout.write(JSON.stringify({ ok: true, resource }) + '\n'); },
  (error) => { process.stdout.write(JSON.stringify({ ok: false, error: String(error?.message ?? error).slice(0, 300) }) + '\n'); },
);
