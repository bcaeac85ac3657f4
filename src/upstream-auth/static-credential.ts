/**
 * `static` credentials: one secret, read at start, sent on every request (a header built
 * once) or placed in a stdio child's environment. Nothing can renew it, so a 401 is final: an
 * operator must change the secret.
 */
import type { TargetConfig } from '../config/schema.ts';
import type { TargetCredentials } from '../config/credentials-schema.ts';
import type { SecretRef } from '../config/auth-schema.ts';
import { GatehouseError } from '../protocol/errors.ts';
import { credentialUnavailable } from './oauth-failure.ts';
import type { UpstreamCredential } from './upstream-credential.ts';

/** A header credential; `value` undefined when the secret could not be read (every request then fails closed). */
export function createStaticCredential(target: string, header: string, value: string | undefined): UpstreamCredential {
  const headers = value === undefined ? undefined : Object.freeze({ [header.toLowerCase()]: value });
  return {
    headers: () => headers ?? Promise.reject(credentialUnavailable(target, 'the static secret is not available', 'secret_unavailable')),
    challenge: async (status) => {
      // A 403 is the upstream's decision about this caller; only a 401 says the secret is wrong.
      if (status === 403) return false;
      throw credentialUnavailable(target, 'the upstream refused the static credential', 'static_refused');
    },
  };
}

/** The header value: `<scheme> <secret>`, or the secret alone for an empty scheme. */
export function staticHeaderValue(scheme: string, secret: string): string {
  // A header value must not carry a line break (it would split the request).
  if (/[\r\n\0]/.test(secret) || /[\r\n\0]/.test(scheme)) throw new GatehouseError('CONFIG_INVALID', 'the static secret contains a line break');
  return scheme === '' ? secret : `${scheme} ${secret}`;
}

/**
 * A `static` target's credential, its secret read now: a header credential for HTTP, or the
 * stdio child's secret environment (a string: why it is unavailable, and the target fails closed).
 */
export function buildStaticCredential(
  name: string,
  target: TargetConfig,
  credentials: Extract<TargetCredentials, { mode: 'static' }>,
  secret: (ref: SecretRef, what: string) => string,
  log: (level: 'warn', message: string, fields: Record<string, unknown>) => void,
): { credential: UpstreamCredential } | { env: Readonly<Record<string, string>> | string } {
  let value: string | undefined;
  let failure: string | undefined;
  try {
    value = secret(credentials.secret, `targets.${name}.credentials.secret`);
  } catch (err) {
    failure = err instanceof Error ? err.message : 'unreadable';
    log('warn', 'static upstream secret unavailable; the target fails closed', { target: name, error: failure });
  }
  if (target.transport === 'stdio') {
    if (credentials.envVar === undefined) return { env: 'static credentials of a stdio target need envVar' };
    return { env: value === undefined ? (failure ?? 'unreadable') : Object.freeze({ [credentials.envVar]: value }) };
  }
  let header: string | undefined;
  try {
    header = value === undefined ? undefined : staticHeaderValue(credentials.scheme, value);
  } catch {
    log('warn', 'static upstream secret is not a valid header value; the target fails closed', { target: name });
  }
  return { credential: createStaticCredential(name, credentials.header, header) };
}
