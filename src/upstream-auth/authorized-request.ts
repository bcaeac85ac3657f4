/**
 * One upstream HTTP request with the target's credential, for the HTTP transports: the
 * credential's headers on the request, and on a 401 or 403 its `challenge()`, then one retry
 * when it renewed. A rejected challenge fails the request with its typed error (it reaches the
 * agent: UPSTREAM_AUTHORIZATION_REQUIRED carries what the elicitation needs). Agent headers
 * never take part: the transports build every header themselves.
 *
 * The hot path stays synchronous where it can: static secrets and cached tokens answer
 * `headers()` without a promise, and no await happens then.
 */
import type { Dispatcher, Pool } from 'undici';
import { GatehouseError } from '../protocol/errors.ts';
import { discardBody, headerValue } from '../upstream/sse-stream.ts';
import type { UpstreamCredential } from './upstream-credential.ts';

/** No credential headers (the transports compare by identity to skip a copy). */
export const NO_CREDENTIAL_HEADERS: Readonly<Record<string, string>> = Object.freeze({});

function isPromise<T>(value: T | Promise<T>): value is Promise<T> {
  return typeof (value as { then?: unknown } | null)?.then === 'function';
}

/** The credential's headers, awaited only when they are not at hand. */
export function credentialHeaders(credential: UpstreamCredential | undefined): Readonly<Record<string, string>> | Promise<Readonly<Record<string, string>>> {
  return credential === undefined ? NO_CREDENTIAL_HEADERS : credential.headers();
}

/**
 * Send `build(authHeaders)` on `pool`. Resolves with the response the caller handles as before
 * (including a 401/403 the credential had nothing to say about); rejects with the challenge's
 * error, or UPSTREAM_UNAVAILABLE when even a renewed credential was refused.
 */
export async function requestWithCredential(
  pool: Pool,
  credential: UpstreamCredential | undefined,
  build: (auth: Readonly<Record<string, string>>) => Dispatcher.RequestOptions,
): Promise<Dispatcher.ResponseData> {
  if (credential === undefined) return pool.request(build(NO_CREDENTIAL_HEADERS));
  for (let attempt = 0; ; attempt++) {
    const pending = credential.headers();
    const auth = isPromise(pending) ? await pending : pending;
    const res = await pool.request(build(auth));
    const status = res.statusCode;
    if (status !== 401 && status !== 403) return res;
    let renewed: boolean;
    try {
      renewed = await credential.challenge(status, headerValue(res.headers, 'www-authenticate'));
    } catch (err) {
      await discardBody(res.body);
      throw err;
    }
    if (!renewed) return res;
    await discardBody(res.body);
    // One retry per request (the credential guards against loops across requests).
    if (attempt > 0) throw new GatehouseError('UPSTREAM_UNAVAILABLE', `upstream answered HTTP ${status} to a renewed credential`, { data: { status } });
  }
}
