/**
 * The credential vault: upstream tokens and client registrations, encrypted at rest
 * (AES-256-GCM, vault-cipher.ts), keyed by tenant × target × subject × kind. The only way
 * secrets reach the database and the only way back out; nothing else decrypts.
 *
 * CONTRACT (shared by the upstream OAuth client, the refresh job, the admin API and the
 * registry): implemented below by `createCredentialVault`.
 */

/** What a row holds. */
export type CredentialKind =
  /** OAuth tokens (access, refresh, expiry, scope, resource) for a user or the service identity. */
  | 'oauth-tokens'
  /** The gateway's client registration at an upstream authorization server (DCR result, CIMD id). */
  | 'oauth-client'
  /** Non-secret discovery state (resource metadata URL, authorization server) kept with the rest. */
  | 'oauth-discovery';

/** `service` for the gateway's own identity at a target; `user:<id>` for a user's. */
export type CredentialSubject = 'service' | `user:${string}`;

export interface CredentialKey {
  readonly tenant: string;
  readonly target: string;
  readonly subject: CredentialSubject;
  readonly kind: CredentialKind;
}

/**
 * `active`: usable. `needs-consent`: refresh was refused (or failed `maxFailures` times); the
 * user must authorize again and calls get `upstream_authorization_required`.
 */
export type CredentialStatus = 'active' | 'needs-consent';

/** Metadata kept in clear next to the ciphertext (never a secret). */
export interface CredentialMeta {
  status: CredentialStatus;
  /** Epoch ms the access token expires, when known. */
  expiresAt: number | null;
  /** Epoch ms the refresh job should next try (expiry minus lead, or a backoff). */
  refreshAt: number | null;
  /** Consecutive failed refreshes. */
  failures: number;
  /** The typed reason of the last failure (`invalid_grant`, `network`, …), never a token. */
  lastError: string | null;
  updatedAt: number;
  /** Id of the vault key that encrypted the value. */
  keyId: string;
}

export interface StoredCredential<T = unknown> {
  readonly key: CredentialKey;
  readonly value: T;
  readonly meta: CredentialMeta;
}

/** What the admin API and logs may show: everything but the value. */
export interface CredentialSummary {
  readonly key: CredentialKey;
  readonly meta: CredentialMeta;
}

export interface CredentialVault {
  /** Decrypted value and metadata; undefined when absent. Throws when the ciphertext does not verify (tampered, or an unknown key). */
  get<T = unknown>(key: CredentialKey): Promise<StoredCredential<T> | undefined>;
  /** Encrypt with the active key and upsert; status resets to `active` and failures to 0 unless given. */
  put(key: CredentialKey, value: unknown, meta?: Partial<Pick<CredentialMeta, 'status' | 'expiresAt' | 'refreshAt' | 'failures' | 'lastError'>>): Promise<void>;
  /** Update metadata only (status, backoff); the value is untouched. No-op when absent. */
  mark(key: CredentialKey, meta: Partial<Pick<CredentialMeta, 'status' | 'refreshAt' | 'failures' | 'lastError'>>): Promise<void>;
  delete(key: CredentialKey): Promise<boolean>;
  /** Delete every row of a subject at a target (revoke a user's connection), or of a whole target. */
  deleteWhere(filter: { tenant?: string; target?: string; subject?: CredentialSubject }): Promise<number>;
  /** Summaries (no values), filtered. */
  list(filter?: { tenant?: string; target?: string; subject?: CredentialSubject; kind?: CredentialKind }): Promise<CredentialSummary[]>;
  /** `oauth-tokens` rows with status `active` whose `refreshAt` is at or before `now`. */
  due(now: number, limit?: number): Promise<CredentialSummary[]>;
  /** Re-encrypt every row not under the active key; returns how many were rewritten. */
  rotate(): Promise<{ rewritten: number; activeKey: string }>;
  /** The active key's id (for admin output). */
  readonly activeKeyId: string;
}
