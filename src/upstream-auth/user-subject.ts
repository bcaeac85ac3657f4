/**
 * Whose credential a per-user upstream token is: the user, or, at token-exchange targets, the
 * user × agent. A token obtained by RFC 8693 carries the agent as actor (`act`), so one agent's
 * token must never serve another agent of the same user: the vault row, the authorizer's
 * in-memory credential and the registry's connection are all keyed by both there. Plain
 * `user-oauth` targets (a browser consent per user) stay per user.
 *
 * Vault subjects: `user:<user>` per user; `user:<user>#agent=<agent, URI-encoded>` per user ×
 * agent. The encoded agent holds no `#`, so the last `#` always separates the two: a user id
 * that itself contains `#agent=` cannot name another user's row. Each target uses one form
 * only, so the two never meet at a target.
 */
import type { TargetCredentials } from '../config/credentials-schema.ts';
import type { CredentialSubject } from '../vault/credential-vault.ts';
import type { UserRef } from './upstream-credential.ts';

const AGENT_SEPARATOR = '#agent=';
const USER_PREFIX = 'user:';

/** Whether a target's per-user tokens are per user × agent (token exchange: the agent is the token's actor). */
export function actsPerAgent(credentials: TargetCredentials): boolean {
  return credentials.mode === 'user-oauth' && credentials.tokenExchange !== undefined;
}

/** `who` as a target of these credentials keys it: the agent kept only where tokens are per agent. */
export function userRefFor(credentials: TargetCredentials, who: { tenant: string; user: string; agent?: string | undefined }): UserRef {
  if (actsPerAgent(credentials) && who.agent !== undefined) return { tenant: who.tenant, user: who.user, agent: who.agent };
  return { tenant: who.tenant, user: who.user };
}

/** The vault subject of `who`'s tokens. */
export function userSubject(who: UserRef): CredentialSubject {
  return who.agent === undefined ? `${USER_PREFIX}${who.user}` : `${USER_PREFIX}${who.user}${AGENT_SEPARATOR}${encodeURIComponent(who.agent)}`;
}

/**
 * The user (and agent, where `perAgent`) a vault subject names; undefined for `service`.
 * Per-user subjects read as before: the whole rest is the user id. At a per-agent target a
 * subject without the agent suffix is the user alone (a caller that named no agent).
 */
export function userOfSubject(tenant: string, subject: string, perAgent: boolean): UserRef | undefined {
  if (!subject.startsWith(USER_PREFIX)) return undefined;
  const rest = subject.slice(USER_PREFIX.length);
  if (rest === '') return undefined;
  const at = rest.lastIndexOf('#');
  if (!perAgent || at <= 0 || !rest.startsWith(AGENT_SEPARATOR, at)) return { tenant, user: rest };
  let agent: string;
  try {
    agent = decodeURIComponent(rest.slice(at + AGENT_SEPARATOR.length));
  } catch {
    return undefined;
  }
  return agent === '' ? undefined : { tenant, user: rest.slice(0, at), agent };
}

/** The in-memory key of `who` (authorizer credentials, registry connections); no two refs share one, whatever their characters. */
export function userKey(who: UserRef): string {
  return JSON.stringify(who.agent === undefined ? [who.tenant, who.user] : [who.tenant, who.user, who.agent]);
}
