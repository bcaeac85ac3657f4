/**
 * The credential vault: upstream tokens and client registrations, encrypted at rest
 * (AES-256-GCM, vault-cipher.ts), keyed by tenant × target × subject × kind. The only way
 * secrets reach the database and the only way back out; nothing else decrypts.
 *
 * CONTRACT (shared by the upstream OAuth client, the refresh job, the admin API and the
 * registry): implemented below by `createCredentialVault`.
 */
import type { Clock } from '../clock.ts';
import { GatehouseError } from '../protocol/errors.ts';
import type { CredentialRow, CredentialRowKey, CredentialRowSummary, CredentialTable } from '../storage/credential-table.ts';
import { VaultCipher } from './vault-cipher.ts';

/** What a row holds. */
export type CredentialKind =
  /** OAuth tokens (access, refresh, expiry, scope, resource) for a user or the service identity. */
  | 'oauth-tokens'
  /** The gateway's client registration at an upstream authorization server (DCR result, CIMD id). */
  | 'oauth-client'
  /** Non-secret discovery state (resource metadata URL, authorization server) kept with the rest. */
  | 'oauth-discovery'
  /**
   * A user's ID token from the enterprise IdP, kept from their gateway login for cross-app
   * access (SEP-990); under the reserved target `@idp` (upstream-auth/identity-tokens.ts).
   */
  | 'identity-token';

/**
 * `service` for the gateway's own identity at a target; `user:<id>` for a user's; at
 * token-exchange targets `user:<id>#agent=<agent, URI-encoded>` for one user × agent
 * (upstream-auth/user-subject.ts).
 */
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
  /**
   * Take a due row for one refresh: its `refreshAt` moves from `expected` to `until` (a lease)
   * unless someone else moved it first. Replicas sharing a database each refresh a row once.
   */
  claim(key: CredentialKey, expected: number, until: number): Promise<boolean>;
  /** Re-encrypt every row not under the active key; returns how many were rewritten. */
  rotate(): Promise<{ rewritten: number; activeKey: string }>;
  /** The active key's id (for admin output). */
  readonly activeKeyId: string;
}

// ---------------------------------------------------------------------------------------------
// The implementation over the credential table (src/storage/credential-table.ts) and the keyring.

/** Rows re-encrypted per page by `rotate()`: short statements, so other writers interleave. */
const ROTATE_BATCH = 100;
/** `due()` without a limit. */
const DUE_LIMIT = 100;
const KINDS: readonly string[] = ['oauth-tokens', 'oauth-client', 'oauth-discovery', 'identity-token'] satisfies readonly CredentialKind[];
/** Lone UTF-16 surrogates: UTF-8 turns them into U+FFFD, so two subjects would share one AAD. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Whether `value` is a kind the vault stores. */
export function isCredentialKind(value: string): value is CredentialKind {
  return KINDS.includes(value);
}

/** Whether `value` is `service` or `user:<id>` (a user × agent subject is one too: `user:<id>#agent=<agent>`). */
export function isCredentialSubject(value: string): value is CredentialSubject {
  return value === 'service' || (value.startsWith('user:') && value.length > 'user:'.length);
}

/**
 * Refuse key parts the AAD could not tell apart: NUL is its separator, and a lone surrogate
 * collapses to U+FFFD when encoded. A caller's bug or a forged admin query, never a real id.
 */
function checkKeyPart(name: string, value: string): void {
  if (value === '' || value.includes('\u0000') || LONE_SURROGATE.test(value)) {
    throw new GatehouseError('INVALID_PARAMS', `credential ${name} must be non-empty text without NUL or lone surrogates`);
  }
}

function checkKey(key: CredentialKey): void {
  checkKeyPart('tenant', key.tenant);
  checkKeyPart('target', key.target);
  checkKeyPart('subject', key.subject);
  if (!isCredentialSubject(key.subject)) throw new GatehouseError('INVALID_PARAMS', 'credential subject must be `service` or `user:<id>`');
  if (!isCredentialKind(key.kind)) throw new GatehouseError('INVALID_PARAMS', `credential kind must be one of ${KINDS.join(', ')}`);
}

/** Binds an envelope to its row: copied onto another tenant, target, subject or kind, it does not verify. */
function aadOf(key: CredentialRowKey): string {
  return `${key.tenant}\u0000${key.target}\u0000${key.subject}\u0000${key.kind}`;
}

/** Names a row for operators; the key parts are identifiers, never secrets. */
function describeRow(key: CredentialRowKey): string {
  return `tenant ${key.tenant}, target ${key.target}, subject ${key.subject}, kind ${key.kind}`;
}

/** A stored row as the vault's types; undefined for a row the vault never writes (edited by hand). */
function summaryOf(row: CredentialRowSummary): CredentialSummary | undefined {
  const { tenant, target, subject, kind } = row;
  if (!isCredentialSubject(subject) || !isCredentialKind(kind)) return undefined;
  return {
    key: { tenant, target, subject, kind },
    meta: {
      // Anything but `active` is treated as needing consent: an unknown status never authorizes.
      status: row.status === 'active' ? 'active' : 'needs-consent',
      expiresAt: row.expiresAt,
      refreshAt: row.refreshAt,
      failures: row.failures,
      lastError: row.lastError,
      updatedAt: row.updatedAt,
      keyId: row.keyId,
    },
  };
}

function summariesOf(rows: readonly CredentialRowSummary[]): CredentialSummary[] {
  return rows.map(summaryOf).filter((s): s is CredentialSummary => s !== undefined);
}

/**
 * The vault over `table`, encrypting with `cipher`'s active key. Rotation assumes every process
 * writing to the table already runs with the new active key (a replica still on the old
 * config would keep writing rows under the old key); run it after the config rollout.
 */
export function createCredentialVault(table: CredentialTable, cipher: VaultCipher, clock: Clock): CredentialVault {
  /** The plaintext of a row; throws UPSTREAM_CREDENTIAL_UNAVAILABLE naming the row, never a value. */
  const open = (row: CredentialRow): Buffer => {
    try {
      // The key_id column is in clear: an envelope naming another key was moved or edited.
      if (VaultCipher.keyIdOf(row.ciphertext) !== row.keyId) throw new GatehouseError('UPSTREAM_CREDENTIAL_UNAVAILABLE', `its envelope does not name its key ${row.keyId}`);
      return cipher.decrypt(row.ciphertext, aadOf(row));
    } catch (err) {
      const reason = err instanceof GatehouseError ? err.message : 'it cannot be decrypted';
      throw new GatehouseError('UPSTREAM_CREDENTIAL_UNAVAILABLE', `the vault row (${describeRow(row)}) is unreadable: ${reason}`);
    }
  };

  return {
    get activeKeyId() {
      return cipher.activeKeyId;
    },

    async get<T = unknown>(key: CredentialKey): Promise<StoredCredential<T> | undefined> {
      checkKey(key);
      const row = await table.find(key);
      if (row === undefined) return undefined;
      const plaintext = open(row);
      let value: T;
      try {
        value = JSON.parse(plaintext.toString('utf8')) as T;
      } catch {
        // Verified but not JSON: written by something else than this vault. The text stays out of the message.
        throw new GatehouseError('UPSTREAM_CREDENTIAL_UNAVAILABLE', `the vault row (${describeRow(row)}) does not hold JSON`);
      }
      return { key: { tenant: key.tenant, target: key.target, subject: key.subject, kind: key.kind }, value, meta: summaryOf(row)!.meta };
    },

    async put(key, value, meta = {}) {
      checkKey(key);
      const json = JSON.stringify(value);
      if (json === undefined) throw new TypeError(`the vault cannot store ${typeof value} (${describeRow(key)})`);
      await table.upsert({
        tenant: key.tenant,
        target: key.target,
        subject: key.subject,
        kind: key.kind,
        keyId: cipher.activeKeyId,
        ciphertext: cipher.encrypt(json, aadOf(key)),
        status: meta.status ?? 'active',
        // A new value replaces the old one's timing too: unset means unknown, not "as before".
        expiresAt: meta.expiresAt ?? null,
        refreshAt: meta.refreshAt ?? null,
        failures: meta.failures ?? 0,
        lastError: meta.lastError ?? null,
        updatedAt: clock.now(),
      });
    },

    async mark(key, meta) {
      checkKey(key);
      await table.updateMeta(key, {
        ...(meta.status === undefined ? {} : { status: meta.status }),
        ...(meta.refreshAt === undefined ? {} : { refreshAt: meta.refreshAt }),
        ...(meta.failures === undefined ? {} : { failures: meta.failures }),
        ...(meta.lastError === undefined ? {} : { lastError: meta.lastError }),
        updatedAt: clock.now(),
      });
    },

    async delete(key) {
      checkKey(key);
      return table.delete(key);
    },

    async deleteWhere(filter) {
      // An empty filter would empty the vault: never what a revocation means.
      if (filter.tenant === undefined && filter.target === undefined && filter.subject === undefined) {
        throw new GatehouseError('INVALID_PARAMS', 'deleting credentials needs a tenant, a target or a subject');
      }
      return table.deleteWhere({ tenant: filter.tenant, target: filter.target, subject: filter.subject });
    },

    async list(filter = {}) {
      return summariesOf(await table.list(filter));
    },

    async due(now, limit = DUE_LIMIT) {
      return summariesOf(await table.due(now, limit));
    },

    async claim(key, expected, until) {
      checkKey(key);
      return table.claim(key, expected, until, clock.now());
    },

    async rotate() {
      const activeKey = cipher.activeKeyId;
      let rewritten = 0;
      const unreadable: string[] = [];
      let after: CredentialRowKey | undefined;
      for (;;) {
        const page = await table.pageNotUnderKey(activeKey, after, ROTATE_BATCH);
        for (const row of page) {
          let plaintext: Buffer;
          try {
            plaintext = open(row);
          } catch {
            // Left as it is (an operator must look), and the rest still moves to the new key.
            unreadable.push(describeRow(row));
            continue;
          }
          const envelope = cipher.encrypt(plaintext, aadOf(row));
          if (await table.replaceEnvelope(row, { keyId: row.keyId, ciphertext: row.ciphertext }, { keyId: activeKey, ciphertext: envelope })) rewritten += 1;
        }
        if (page.length < ROTATE_BATCH) break;
        after = page[page.length - 1];
      }
      if (unreadable.length > 0) {
        const shown = unreadable.slice(0, 5).map((r) => `(${r})`).join(', ');
        throw new GatehouseError(
          'UPSTREAM_CREDENTIAL_UNAVAILABLE',
          `vault rotation to key ${activeKey} rewrote ${rewritten} rows, but ${unreadable.length} do not decrypt and stay under their old key: ${shown}${unreadable.length > 5 ? ', …' : ''}. Keep their key configured, or delete those rows.`,
          { data: { rewritten, unreadable: unreadable.length, activeKey } },
        );
      }
      return { rewritten, activeKey };
    },
  };
}
