/**
 * The principal: who is calling, as the gateway authenticated them. Built once per request by
 * authentication, read by authorization, attached to the session (which it then owns) and to
 * the call record (so the audit row carries user, agent and tenant).
 */

/** How the principal proved who it is. */
export type AuthMethod = 'none' | 'oauth' | 'api-key' | 'mtls';

export interface Principal {
  readonly tenant: string;
  /** The human or service account: the token's `sub`, the API key's account, the IdP user. */
  readonly user: string;
  /** The agent acting for the user: the OAuth client id, or the key's / certificate's agent name. */
  readonly agent: string;
  readonly roles: readonly string[];
  /** Scopes the credential carries (empty for credentials without scopes: API keys, mTLS). */
  readonly scopes: readonly string[];
  readonly method: AuthMethod;
  /** The credential's own id (token `jti`, API key id), for audit and revocation; never the secret. */
  readonly credentialId?: string | undefined;
  /** When the credential expires (ms since epoch), if it does. */
  readonly expiresAt?: number | undefined;
}

/** The principal of `auth.mode: none` (loopback only): one anonymous user with every grant. */
export function anonymousPrincipal(agent: string | undefined): Principal {
  return { tenant: 'default', user: 'anonymous', agent: agent ?? 'unknown', roles: ['*'], scopes: [], method: 'none' };
}

/**
 * What a session is bound to: a session created by one principal refuses every other. Roles
 * and scopes may change between tokens of the same principal (a refreshed token, step-up).
 */
export function principalKey(p: Principal): string {
  return `${p.tenant}\u0000${p.user}\u0000${p.agent}`;
}
