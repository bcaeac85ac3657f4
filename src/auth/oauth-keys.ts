/**
 * The authorization server's keys, kept in the gateway's database so every replica and every
 * restart signs and verifies with the same ones:
 *
 * - ES256 signing keys. One is current (the newest unretired); `rotate()` retires it and makes
 *   a new one current. A retired key keeps verifying until every token it can have signed has
 *   expired (`retainMs`: the longest token lifetime), then it is deleted.
 * - Cookie keys for oidc-provider's signed cookies (interaction and session), random, never
 *   hard-coded.
 *
 * Private keys are stored in clear in the database for now; encryption at rest is a later issue.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign as cryptoSign, type KeyObject } from 'node:crypto';
import type { JSONWebKeySet, JWK } from 'jose';
import type { Clock } from '../clock.ts';
import type { OAuthStore, StoredKey } from '../storage/oauth-store.ts';

export const SIGNING_ALG = 'ES256';

export interface SigningKey {
  readonly kid: string;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  /** The public JWK with kid, alg and use. */
  readonly publicJwk: JWK;
  readonly retiredAt: number | null;
}

function toSigningKey(stored: StoredKey): SigningKey {
  const privateKey = createPrivateKey({ key: JSON.parse(stored.material) as import('node:crypto').JsonWebKey, format: 'jwk' });
  const publicKey = createPublicKey(privateKey);
  const publicJwk: JWK = { ...(publicKey.export({ format: 'jwk' }) as JWK), kid: stored.kid, alg: SIGNING_ALG, use: 'sig' };
  return { kid: stored.kid, privateKey, publicKey, publicJwk, retiredAt: stored.retiredAt };
}

function newKid(now: number): string {
  // Sortable by creation and unique across replicas generating at the same moment.
  return `${new Date(now).toISOString().slice(0, 10)}-${randomBytes(9).toString('base64url')}`;
}

export class SigningKeys {
  private keys: SigningKey[];
  private verification: { from: readonly SigningKey[]; validUntil: number; jwks: JSONWebKeySet } | undefined;

  private constructor(
    private readonly store: OAuthStore,
    private readonly clock: Clock,
    private readonly retainMs: number,
    keys: SigningKey[],
  ) {
    this.keys = keys;
  }

  /** Load the keys, generating the first one on a fresh database; drops retired keys past retention. */
  static async load(store: OAuthStore, clock: Clock, retainMs: number): Promise<SigningKeys> {
    const keys = new SigningKeys(store, clock, retainMs, []);
    await keys.reload();
    if (keys.keys.every((k) => k.retiredAt !== null)) await keys.generate();
    return keys;
  }

  /**
   * Re-read the keys: replicas sharing the database pick up a rotation made elsewhere (the new
   * key becomes current here too, the retired one keeps verifying for `retainMs`).
   */
  async reload(): Promise<void> {
    const now = this.clock.now();
    const stored = await this.store.listKeys('sig');
    const kept: SigningKey[] = [];
    for (const row of stored) {
      if (row.retiredAt !== null && row.retiredAt + this.retainMs < now) {
        await this.store.deleteKey(row.kid);
        continue;
      }
      kept.push(toSigningKey(row));
    }
    // listKeys orders newest first; the current key is the newest unretired one.
    this.keys = kept;
  }

  private async generate(): Promise<SigningKey> {
    const now = this.clock.now();
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const stored: StoredKey = { kid: newKid(now), purpose: 'sig', material: JSON.stringify(privateKey.export({ format: 'jwk' })), createdAt: now, retiredAt: null };
    await this.store.insertKey(stored);
    const key = toSigningKey(stored);
    this.keys = [key, ...this.keys];
    return key;
  }

  /** The key that signs new tokens. */
  current(): SigningKey {
    const key = this.keys.find((k) => k.retiredAt === null);
    if (key === undefined) throw new Error('no current signing key');
    return key;
  }

  /**
   * Public keys that verify tokens: every unretired key and retired keys within retention.
   * Asked on every request with an access token, so the set is built once per change of the
   * keys (or when a retired key ages out) and the same frozen object is handed out meanwhile:
   * the bearer verifier then keeps its imported keys by identity.
   */
  verificationKeys(): JSONWebKeySet {
    const now = this.clock.now();
    const cached = this.verification;
    if (cached !== undefined && cached.from === this.keys && now <= cached.validUntil) return cached.jwks;
    const kept = this.keys.filter((k) => k.retiredAt === null || k.retiredAt + this.retainMs >= now);
    const retiredUntil = kept.filter((k) => k.retiredAt !== null).map((k) => k.retiredAt! + this.retainMs);
    const jwks: JSONWebKeySet = Object.freeze({ keys: Object.freeze(kept.map((k) => Object.freeze({ ...k.publicJwk }))) as JSONWebKeySet['keys'] });
    this.verification = { from: this.keys, validUntil: Math.min(Infinity, ...retiredUntil), jwks };
    return jwks;
  }

  /** Retire the current key and make a fresh one current; the retired one keeps verifying for `retainMs`. */
  async rotate(): Promise<{ kid: string }> {
    const now = this.clock.now();
    const old = this.current();
    const fresh = await this.generate();
    await this.store.retireKey(old.kid, now);
    await this.reload();
    return { kid: fresh.kid };
  }

  /** Sign `data` with the current key as a JWS ES256 signature (r || s, not DER). */
  signCurrent(data: Buffer): { kid: string; signature: Buffer } {
    const key = this.current();
    return { kid: key.kid, signature: cryptoSign('sha256', data, { key: key.privateKey, dsaEncoding: 'ieee-p1363' }) };
  }
}

/** oidc-provider's cookie keys: generated once, stored, newest first (older ones still verify). */
export async function loadCookieKeys(store: OAuthStore, clock: Clock): Promise<string[]> {
  const existing = await store.listKeys('cookie');
  if (existing.length > 0) return existing.map((k) => k.material);
  const now = clock.now();
  const material = randomBytes(32).toString('base64url');
  await store.insertKey({ kid: `cookie-${randomBytes(9).toString('base64url')}`, purpose: 'cookie', material, createdAt: now, retiredAt: null });
  // Two replicas starting on an empty database may both insert one; both are then valid.
  return (await store.listKeys('cookie')).map((k) => k.material);
}
