/**
 * The users' ID tokens from the enterprise IdP, kept for cross-app access (SEP-990,
 * `tokenExchange.subjectToken: idp-id-token`): the gateway exchanges a user's ID token at the
 * IdP for an identity assertion grant (ID-JAG) toward an upstream. The IdP login
 * (auth/idp-login.ts) hands each verified ID token here; the upstream authorizer reads it back.
 *
 * Kept in the credential vault (encrypted, like upstream tokens) under the reserved target
 * `@idp` (no configured target can have that name: target names are letters, digits, _ and -),
 * subject `user:<id>`, the account's tenant, expiring with the token. Only while some target
 * needs it: a gateway without cross-app access targets holds no ID tokens at all. A token
 * past its expiry is never handed out, and is deleted when met.
 */
import type { Clock } from '../clock.ts';
import type { GatehouseConfig } from '../config/schema.ts';
import type { GatewayLogger } from '../telemetry/log.ts';
import type { CredentialKey, CredentialVault } from '../vault/credential-vault.ts';

/** The vault target of identity tokens. */
export const IDENTITY_TOKEN_TARGET = '@idp';
/** Handed out only with at least this much life left: the IdP must still accept it in the exchange. */
export const IDENTITY_TOKEN_SKEW_MS = 30_000;

/** One verified ID token, as the IdP login hands it over. */
export interface IdentityTokenEntry {
  readonly tenant: string;
  readonly user: string;
  readonly idToken: string;
  /** Epoch ms: the token's `exp`. */
  readonly expiresAt: number;
}

interface StoredIdentityToken {
  readonly idToken: string;
}

function keyOf(tenant: string, user: string): CredentialKey {
  return { tenant, target: IDENTITY_TOKEN_TARGET, subject: `user:${user}`, kind: 'identity-token' };
}

export class IdentityTokens {
  constructor(
    private readonly vault: CredentialVault,
    private readonly clock: Pick<Clock, 'now'>,
  ) {}

  /** Keep the user's newest ID token (replacing the one before); one that is already expired is not kept. */
  async keep(entry: IdentityTokenEntry): Promise<void> {
    const key = keyOf(entry.tenant, entry.user);
    if (entry.expiresAt <= this.clock.now()) {
      await this.vault.delete(key);
      return;
    }
    const value: StoredIdentityToken = { idToken: entry.idToken };
    // No refreshAt: nothing renews an ID token but the user's next sign-in.
    await this.vault.put(key, value, { expiresAt: entry.expiresAt, refreshAt: null });
  }

  /** The user's ID token while it is valid; undefined when none is kept or it (nearly) expired. */
  async current(who: { tenant: string; user: string }): Promise<string | undefined> {
    const key = keyOf(who.tenant, who.user);
    const row = await this.vault.get<StoredIdentityToken>(key);
    if (row === undefined) return undefined;
    const expiresAt = row.meta.expiresAt;
    if (row.meta.status !== 'active' || expiresAt === null || expiresAt - IDENTITY_TOKEN_SKEW_MS <= this.clock.now()) {
      if (expiresAt !== null && expiresAt <= this.clock.now()) await this.vault.delete(key).catch(() => false);
      return undefined;
    }
    return typeof row.value.idToken === 'string' ? row.value.idToken : undefined;
  }
}

/** Whether any target of `config` exchanges the user's ID token (only then are they kept). */
export function needsIdentityTokens(config: Readonly<GatehouseConfig>): boolean {
  return Object.values(config.targets).some((t) => t.credentials.mode === 'user-oauth' && t.credentials.tokenExchange?.subjectToken === 'idp-id-token');
}

/**
 * What the IdP login calls after each verified login: keeps the ID token while some target of
 * the current config needs it. Never rejects (the login stands either way: the upstream that
 * needs the token then asks the user to sign in again); a failure is logged without the token.
 */
export function identityTokenSink(options: { tokens(): IdentityTokens | undefined; config(): Readonly<GatehouseConfig>; logger: GatewayLogger }): { keep(entry: IdentityTokenEntry): Promise<void> } {
  return {
    async keep(entry) {
      if (!needsIdentityTokens(options.config())) return;
      try {
        // The vault of the moment (keys follow reloads); none without vault keys: nothing is kept.
        await options.tokens()?.keep(entry);
      } catch (err) {
        const type = err instanceof Error ? err.name : 'unknown';
        options.logger.warn({ kind: 'upstream-auth', tenant: entry.tenant, user: entry.user, error: type }, 'keeping the identity token of a login failed');
      }
    },
  };
}
