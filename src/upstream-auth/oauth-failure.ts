/**
 * What went wrong in an upstream OAuth exchange, reduced to what the gateway decides on and
 * may say. SDK error messages can quote response bodies (an authorization server's
 * `error_description`, raw HTML), so none of them is kept: only a short typed reason (an RFC
 * 6749 error code, a fetch-rule name, an error class), which is what the vault's `lastError`,
 * the logs and the thrown errors carry. Tokens and secrets never reach a reason.
 */
import {
  AuthorizationServerMismatchError,
  InsecureTokenEndpointError,
  IssuerMismatchError,
  OAuthError,
  RegistrationRejectedError,
} from '@modelcontextprotocol/client';
import { GatehouseError } from '../protocol/errors.ts';
import { DiscoveryFetchError } from './discovery-fetch.ts';
import type { AuthorizationRequiredData } from './upstream-credential.ts';

/**
 * `consent`: the grant is gone (invalid_grant): only a new authorization helps.
 * `transient`: network, timeout, 5xx, server_error: try again later (backoff).
 * `refused`: the server or a rule refused the request for good (invalid_client, a refused
 * address, an issuer mismatch): retrying the same thing will not help.
 */
export type FailureKind = 'consent' | 'transient' | 'refused';

export interface OAuthFailure {
  kind: FailureKind;
  /** Short and typed: `invalid_grant`, `network`, `address_not_allowed`, `issuer_mismatch`, … */
  reason: string;
}

const REASON = /^[a-z0-9_:.-]{1,64}$/i;

export function classifyFailure(err: unknown): OAuthFailure {
  if (err instanceof GatehouseError) return { kind: err.code === 'UPSTREAM_AUTHORIZATION_REQUIRED' ? 'consent' : 'refused', reason: err.spec.type };
  if (OAuthError.isInstance(err)) {
    const code = REASON.test(err.code) ? err.code : 'oauth_error';
    if (code === 'server_error' || code === 'temporarily_unavailable') return { kind: 'transient', reason: code };
    if (code === 'invalid_grant') return { kind: 'consent', reason: code };
    return { kind: 'refused', reason: code };
  }
  if (err instanceof DiscoveryFetchError) {
    const transient = err.reason === 'network' || err.reason === 'timeout' || err.reason === 'dns_failed';
    return { kind: transient ? 'transient' : 'refused', reason: err.reason };
  }
  if (IssuerMismatchError.isInstance(err) || AuthorizationServerMismatchError.isInstance(err)) return { kind: 'refused', reason: 'issuer_mismatch' };
  if (InsecureTokenEndpointError.isInstance(err)) return { kind: 'refused', reason: 'insecure_token_endpoint' };
  if (RegistrationRejectedError.isInstance(err)) return { kind: 'refused', reason: 'registration_rejected' };
  if (err instanceof Error && err.name === 'ZodError') return { kind: 'refused', reason: 'invalid_metadata' };
  // Anything else (an HTTP status the SDK turned into a plain Error, a fetch TypeError): worth another try later.
  return { kind: 'transient', reason: 'error' };
}

/** `UPSTREAM_AUTHORIZATION_REQUIRED` for `target`: the gateway turns it into a URL elicitation. */
export function authorizationRequired(target: string, reason: AuthorizationRequiredData['reason'], scopes?: readonly string[]): GatehouseError {
  const data: AuthorizationRequiredData = { target, reason, ...(scopes !== undefined && scopes.length > 0 ? { scopes: [...scopes] } : {}) };
  const text = reason === 'step_up' ? 'needs more scope at' : reason === 'reconsent' ? 'must be authorized again at' : 'must be authorized at';
  return new GatehouseError('UPSTREAM_AUTHORIZATION_REQUIRED', `The gateway ${text} the upstream server ${target}`, { data: { ...data } });
}

/**
 * `UPSTREAM_CREDENTIAL_UNAVAILABLE`: an operator must act (or the authorization server is down).
 * The message (logged, never shown to agents: the table hides it) names the typed reason only.
 */
export function credentialUnavailable(target: string, what: string, reason?: string): GatehouseError {
  return new GatehouseError('UPSTREAM_CREDENTIAL_UNAVAILABLE', `${what} for upstream ${target}${reason === undefined ? '' : ` (${reason})`}`);
}
