// The story, as reusable steps (used by the tests and by story.mjs).

import { McpSession } from './client.mjs';

function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** What the client got from the token endpoint for its first refresh after `since`. */
export function refreshAnswerAfter(session, since, clientId) {
  const entry = session.tokenResponses.find((e) => e.at >= since && e.grantType === 'refresh_token' && (!clientId || e.clientId === clientId));
  if (!entry) return undefined;
  return { ...entry, json: parseJson(entry.body) };
}

/** Does a token-endpoint answer carry the standard "register again" signal? */
export function isStandardInvalidClient(answer) {
  return Boolean(answer && answer.status === 401 && /application\/json/i.test(answer.contentType) && answer.json?.error === 'invalid_client');
}

export function describeAnswer(answer) {
  if (!answer) return '(no refresh request was made)';
  return `${answer.status} ${answer.contentType || '(no content-type)'} ${answer.body}`;
}

async function attempt(fn) {
  try {
    return { ok: true, value: await fn() };
  } catch (err) {
    return { ok: false, error: err, message: `${err?.name ?? 'Error'}: ${err?.message ?? err}` };
  }
}

/**
 * Register + authorize + tools/list + echo; delete the client at the provider;
 * wait for the access token to expire; echo again (and once more if that
 * failed, to show a stuck client stays stuck).
 */
export async function clientGoneFlow(stack, { name = 'client-gone', onStep = () => {} } = {}) {
  const session = new McpSession({ serverUrl: stack.serverUrl, name });
  try {
    const tools = await session.listTools();
    const first = await session.echo('hello');
    const oldClientId = session.provider.clientId;
    onStep('registered', { clientId: oldClientId, tools: tools.tools.map((t) => t.name), first });

    stack.deleteClient(oldClientId);
    onStep('deleted', { clientId: oldClientId });
    await session.waitForAccessTokenExpiry();
    onStep('expired', {});

    const since = Date.now();
    const registrationsBefore = session.provider.registrations.length;
    const authorizationsBefore = session.provider.authorizations.length;
    const after = await attempt(() => session.echo('hello again'));
    const answer = refreshAnswerAfter(session, since, oldClientId);
    onStep('after', { after, answer });
    let retry;
    if (!after.ok) retry = await attempt(() => session.echo('hello once more'));
    return {
      session,
      tools: tools.tools.map((t) => t.name),
      first,
      oldClientId,
      newClientId: session.provider.clientId,
      after,
      retry,
      answer,
      newRegistrations: session.provider.registrations.slice(registrationsBefore),
      authorizationsAfter: session.provider.authorizations.slice(authorizationsBefore),
      invalidations: [...session.provider.invalidations],
    };
  } finally {
    await session.close();
  }
}

/**
 * Register + authorize + echo; revoke the client's refresh tokens at the
 * provider (the client itself stays); wait for expiry; echo again.
 */
export async function revokedRefreshFlow(stack, { name = 'revoked-refresh', onStep = () => {} } = {}) {
  const session = new McpSession({ serverUrl: stack.serverUrl, name });
  try {
    await session.echo('hello');
    const clientId = session.provider.clientId;
    const revoked = stack.revokeRefreshTokens(clientId);
    onStep('revoked', { clientId, revoked });
    await session.waitForAccessTokenExpiry();
    const since = Date.now();
    const after = await attempt(() => session.echo('hello again'));
    const answer = refreshAnswerAfter(session, since, clientId);
    onStep('after', { after, answer });
    return {
      session,
      clientId,
      revoked,
      finalClientId: session.provider.clientId,
      registrations: [...session.provider.registrations],
      invalidations: [...session.provider.invalidations],
      after,
      answer,
    };
  } finally {
    await session.close();
  }
}
