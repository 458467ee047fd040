// Provider answer shapes the token-endpoint shim turns oidc-provider's own
// answers into, modelled on shared/fixtures/providers/*.json.
//
// Each shape says what a provider answers on its token endpoint when
//  - clientGone: the client does not exist (oidc-provider: 401 invalid_client)
//  - revokedRefresh: the refresh token was revoked (oidc-provider: 400 invalid_grant)
// and, optionally, at its authorization endpoint for a client that does not exist
//  - authorizeGone (oidc-provider renders an HTML error page there)
// and which filter preset matches that provider. `null` leaves oidc-provider's
// answer as it is.
//
// `sdkRecoversUnfiltered` records what the official TypeScript SDK does when it
// gets the shape's clientGone answer directly (no filter in front): true when it
// drops the dead client and registers again by itself (brief, section 2).

const JSON_UTF8 = 'application/json;charset=UTF-8';
const noStore = { 'cache-control': 'no-store', pragma: 'no-cache' };

function json(status, body, contentType = JSON_UTF8, extra = noStore) {
  return { status, headers: { 'content-type': contentType, ...extra }, body: JSON.stringify(body) };
}

function form(status, fields) {
  return {
    status,
    headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' },
    body: new URLSearchParams(fields).toString(),
  };
}

const GITHUB_ERROR_URI =
  'https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#incorrect-client-credentials';

export const SHAPES = {
  // node-oidc-provider's own answer, already standard (401 invalid_client).
  standard: {
    label: 'node-oidc-provider (already 401 invalid_client)',
    preset: 'node-oidc-provider',
    sdkRecoversUnfiltered: true,
    clientGone: null,
    revokedRefresh: null,
  },
  // Clerk (fosite/Hydra wording): 400 invalid_request, "... The requested OAuth 2.0 Client does not exist."
  clerk: {
    label: 'Clerk (400 invalid_request, "The requested OAuth 2.0 Client does not exist.")',
    preset: 'clerk',
    sdkRecoversUnfiltered: false,
    clientGone: () =>
      json(400, {
        error: 'invalid_request',
        error_description:
          'The request is missing a required parameter, includes an invalid parameter value, includes a parameter more than once, or is otherwise malformed. The requested OAuth 2.0 Client does not exist.',
      }),
    // clerk__authorize__unknown_client.json: JSON at the authorization endpoint (status not captured; 400 here).
    authorizeGone: () =>
      json(
        400,
        {
          error: 'invalid_client',
          error_description:
            'Client authentication failed (e.g., unknown client, no client authentication included, or unsupported client authentication method). The requested OAuth 2.0 Client does not exist.',
        },
        'application/json',
        {},
      ),
    revokedRefresh: () =>
      json(400, {
        error: 'invalid_grant',
        error_description:
          'The provided authorization grant (e.g., authorization code, resource owner credentials) or refresh token is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client. The refresh token is malformed or not valid.',
      }),
  },
  // Microsoft Entra ID: 400 unauthorized_client, AADSTS700016.
  entra: {
    label: 'Microsoft Entra (400 unauthorized_client, AADSTS700016)',
    preset: 'entra',
    sdkRecoversUnfiltered: true,
    clientGone: (clientId) =>
      json(
        400,
        {
          error: 'unauthorized_client',
          error_description: `AADSTS700016: Application with identifier '${clientId}' was not found in the directory 'e2e-tenant'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.\r\nTrace ID: 00000000-0000-0000-0000-000000000000\r\nCorrelation ID: 00000000-0000-0000-0000-000000000000\r\nTimestamp: 2026-01-01 00:00:00Z`,
          error_codes: [700016],
          timestamp: '2026-01-01 00:00:00Z',
          trace_id: '00000000-0000-0000-0000-000000000000',
          correlation_id: '00000000-0000-0000-0000-000000000000',
          error_uri: 'https://login.microsoftonline.com/error?code=700016',
        },
        'application/json; charset=utf-8',
        { 'cache-control': 'no-store, no-cache', pragma: 'no-cache' },
      ),
    revokedRefresh: () =>
      json(
        400,
        {
          error: 'invalid_grant',
          error_description:
            "AADSTS50173: The provided grant has expired due to it being revoked, a fresh auth token is needed.\r\nTrace ID: 00000000-0000-0000-0000-000000000000\r\nCorrelation ID: 00000000-0000-0000-0000-000000000000\r\nTimestamp: 2026-01-01 00:00:00Z",
          error_codes: [50173],
          error_uri: 'https://login.microsoftonline.com/error?code=50173',
          suberror: 'bad_token',
        },
        'application/json; charset=utf-8',
        { 'cache-control': 'no-store, no-cache', pragma: 'no-cache' },
      ),
  },
  // Okta: 400 in Okta's own envelope, no `error` key.
  okta: {
    label: 'Okta (400 {"errorCode":"invalid_client",...} envelope)',
    preset: 'okta',
    sdkRecoversUnfiltered: false,
    clientGone: () =>
      json(
        400,
        {
          errorCode: 'invalid_client',
          errorSummary: "Invalid value for 'client_id' parameter.",
          errorLink: 'invalid_client',
          errorId: 'oaeE2EEXAMPLEERRORID',
          errorCauses: [],
        },
        'application/json',
        {},
      ),
    revokedRefresh: () =>
      json(400, { error: 'invalid_grant', error_description: 'The refresh token is invalid or expired.' }, 'application/json', {}),
  },
  // GitHub: 200 with an error body, form-encoded (its default without Accept: application/json).
  'github-form': {
    label: 'GitHub (200, form-encoded error=incorrect_client_credentials)',
    preset: 'github',
    sdkRecoversUnfiltered: false,
    clientGone: () =>
      form(200, {
        error: 'incorrect_client_credentials',
        error_description: 'The client_id and/or client_secret passed are incorrect.',
        error_uri: GITHUB_ERROR_URI,
      }),
    revokedRefresh: () =>
      form(200, { error: 'bad_refresh_token', error_description: 'The refresh token passed is incorrect or expired.' }),
  },
  // GitHub: 200 with a JSON error body.
  'github-json': {
    label: 'GitHub (200, JSON {"error":"incorrect_client_credentials"})',
    preset: 'github',
    sdkRecoversUnfiltered: false,
    clientGone: () =>
      json(
        200,
        {
          error: 'incorrect_client_credentials',
          error_description: 'The client_id and/or client_secret passed are incorrect.',
          error_uri: GITHUB_ERROR_URI,
        },
        'application/json; charset=utf-8',
        {},
      ),
    revokedRefresh: () =>
      json(
        200,
        { error: 'bad_refresh_token', error_description: 'The refresh token passed is incorrect or expired.' },
        'application/json; charset=utf-8',
        {},
      ),
  },
};

export const OIDC_ENDPOINTS = {
  token: ['/token'],
  revocation: ['/token/revocation'],
  registration: ['/reg'],
  authorization: ['/auth'],
};

/** The filter policy (docs/policy-draft.md) for one provider preset. */
export function policyFor(preset, { name = `e2e-${preset}`, staleClientPage } = {}) {
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
    'limits:',
    '  max_body_bytes: 65536',
    ...(staleClientPage === undefined ? [] : ['authorization:', `  stale_client_page: ${staleClientPage}`]),
    '',
  ].join('\n');
}

export const TOKEN_PATH = '/token';
export const AUTHORIZATION_PATH = '/auth';

/** The OAuth error code of a token-endpoint answer, whatever its envelope. */
export function errorCodeOf(contentType, body) {
  const ct = String(contentType ?? '').toLowerCase();
  if (ct.includes('x-www-form-urlencoded')) return new URLSearchParams(body).get('error') ?? undefined;
  let parsed;
  try {
    parsed = JSON.parse(body);
  } catch {
    return undefined;
  }
  if (!parsed || typeof parsed !== 'object') return undefined;
  return parsed.error ?? parsed.errorCode ?? parsed.error_code ?? undefined;
}

