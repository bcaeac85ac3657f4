/**
 * API keys: long-lived credentials for service accounts, presented as `Authorization: Bearer
 * gh_…`. A key is `gh_` plus 32 random bytes (base64url); only its SHA-256 is stored, so the
 * plaintext exists once, in the answer to `create`. Every key expires (at most
 * `auth.apiKeys.maxTtlDays`) and can be revoked.
 *
 * Lookups go through a small in-memory cache keyed by the hash. A revocation in this process
 * updates it at once; a revocation by another process (the `keys revoke` CLI, another replica)
 * is seen once the cached entry is older than CACHE_TTL_MS.
 */
import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import type { Clock } from '../clock.ts';
import { GatehouseError } from '../protocol/errors.ts';
import type { ApiKeyRow, ApiKeyStore } from '../storage/api-key-table.ts';
import type { Principal } from './principal.ts';
import { ROLE_NAME } from '../config/auth-schema.ts';
import { InvalidTokenError } from './bearer-token.ts';

export const API_KEY_PREFIX = 'gh_';
/** 32 bytes base64url: 43 characters. */
const API_KEY_SHAPE = /^gh_[A-Za-z0-9_-]{43}$/;
const DAY_MS = 24 * 60 * 60_000;
/** How long a cached lookup is trusted before the store is asked again (cross-process revocation). */
const CACHE_TTL_MS = 30_000;
const CACHE_MAX = 10_000;
/** The development credential's name and lifetime. */
export const DEV_KEY_NAME = 'dev';
const DEV_KEY_TTL_MS = 12 * 60 * 60_000;

/** A key as listed: never the secret, never its hash. */
export type ApiKeyInfo = Omit<ApiKeyRow, 'keyHash'>;

export interface CreateApiKey {
  user: string;
  agent: string;
  tenant: string;
  roles: readonly string[];
  /** Lifetime in days (1 … maxTtlDays); `ttlMs` overrides it (the 12 h development key). */
  ttlDays?: number;
  ttlMs?: number;
  name?: string | undefined;
}

export function isApiKeyShaped(token: string): boolean {
  return token.startsWith(API_KEY_PREFIX);
}

export function hashApiKey(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

function info(row: ApiKeyRow): ApiKeyInfo {
  const { keyHash: _hidden, ...rest } = row;
  return rest;
}

export class ApiKeyService {
  /** By key hash; the principal is built once per cached row, so per-principal caches downstream (the policy's views) hit. */
  private readonly cache = new Map<string, { row: ApiKeyRow; at: number; principal?: Principal }>();

  constructor(
    private readonly store: ApiKeyStore,
    private readonly clock: Clock,
    private readonly maxTtlDays: () => number,
  ) {}

  /** Create a key; the returned `secret` is the only time the plaintext exists. */
  async create(input: CreateApiKey): Promise<{ key: ApiKeyInfo; secret: string }> {
    const ttlMs = input.ttlMs ?? (input.ttlDays ?? 0) * DAY_MS;
    const max = this.maxTtlDays();
    if (!Number.isFinite(ttlMs) || ttlMs <= 0) throw new GatehouseError('INVALID_PARAMS', 'an API key needs an expiry: --ttl-days must be at least 1');
    if (ttlMs > max * DAY_MS) throw new GatehouseError('INVALID_PARAMS', `--ttl-days exceeds auth.apiKeys.maxTtlDays (${max})`);
    if (input.user === '' || input.agent === '' || input.tenant === '') throw new GatehouseError('INVALID_PARAMS', 'user, agent and tenant are required');
    // `*` would be every grant in the tenant: it belongs to the anonymous principal of
    // auth.mode none alone, and the config cannot name it either.
    const badRole = input.roles.find((role) => !ROLE_NAME.test(role));
    if (badRole !== undefined) throw new GatehouseError('INVALID_PARAMS', `"${badRole}" is not a role name (letters, digits, _ . : -)`);
    const secret = `${API_KEY_PREFIX}${randomBytes(32).toString('base64url')}`;
    const now = this.clock.now();
    const row: ApiKeyRow = {
      id: `key_${randomUUID().replaceAll('-', '').slice(0, 16)}`,
      name: input.name ?? null,
      user: input.user,
      agent: input.agent,
      tenant: input.tenant,
      roles: [...input.roles],
      keyHash: hashApiKey(secret),
      createdAt: now,
      expiresAt: now + ttlMs,
      revokedAt: null,
    };
    await this.store.insert(row);
    return { key: info(row), secret };
  }

  async list(): Promise<ApiKeyInfo[]> {
    return (await this.store.list()).map(info);
  }

  /** Revoke a key; takes effect in this process at once. */
  async revoke(id: string): Promise<boolean> {
    const at = this.clock.now();
    const done = await this.store.revoke(id, at);
    this.forget((row) => row.id === id, at);
    return done;
  }

  /**
   * Mint the development credential (loopback only, decided by the caller): 12 hours, user and
   * agent `dev`, replacing (revoking) the previous one.
   */
  async mintDevKey(tenant: string, roles: readonly string[]): Promise<{ key: ApiKeyInfo; secret: string; revoked: string[] }> {
    const at = this.clock.now();
    const revoked = await this.store.revokeByName(DEV_KEY_NAME, at);
    this.forget((row) => revoked.includes(row.id), at);
    const created = await this.create({ user: 'dev', agent: 'dev', tenant, roles, ttlMs: DEV_KEY_TTL_MS, name: DEV_KEY_NAME });
    return { ...created, revoked };
  }

  /**
   * The principal an API key stands for. Throws INVALID_TOKEN (unknown, expired, revoked,
   * malformed; the agent is not told which) and AUTH_UNAVAILABLE when the store cannot answer.
   */
  async authenticate(secret: string): Promise<Principal> {
    if (!API_KEY_SHAPE.test(secret)) throw new InvalidTokenError('API key malformed');
    const hash = hashApiKey(secret);
    const now = this.clock.now();
    let entry = this.cached(hash, now);
    let row = entry?.row;
    if (row === undefined) {
      try {
        row = await this.store.findByHash(hash);
      } catch (err) {
        throw new GatehouseError('AUTH_UNAVAILABLE', 'the API key store could not be read', { cause: err });
      }
      if (row === undefined) throw new InvalidTokenError('API key unknown');
      entry = this.remember(hash, row, now);
    }
    // The hash came from the index; compare it anyway in constant time (defense in depth).
    if (!timingSafeEqual(Buffer.from(row.keyHash, 'hex'), Buffer.from(hash, 'hex'))) throw new InvalidTokenError('API key unknown');
    if (row.revokedAt !== null) throw new InvalidTokenError(`API key ${row.id} revoked`);
    if (row.expiresAt <= now) throw new InvalidTokenError(`API key ${row.id} expired`);
    entry!.principal ??= { tenant: row.tenant, user: row.user, agent: row.agent, roles: row.roles, scopes: [], method: 'api-key', credentialId: row.id, expiresAt: row.expiresAt };
    return entry!.principal;
  }

  private cached(hash: string, now: number): { row: ApiKeyRow; at: number; principal?: Principal } | undefined {
    const entry = this.cache.get(hash);
    if (entry === undefined) return undefined;
    if (now - entry.at > CACHE_TTL_MS) {
      this.cache.delete(hash);
      return undefined;
    }
    return entry;
  }

  private remember(hash: string, row: ApiKeyRow, now: number): { row: ApiKeyRow; at: number } {
    // Bounded: the oldest entry goes first (Map keeps insertion order).
    if (this.cache.size >= CACHE_MAX) this.cache.delete(this.cache.keys().next().value!);
    const entry = { row, at: now };
    this.cache.set(hash, entry);
    return entry;
  }

  private forget(match: (row: ApiKeyRow) => boolean, at: number): void {
    for (const entry of this.cache.values()) if (match(entry.row)) entry.row = { ...entry.row, revokedAt: at };
  }
}
