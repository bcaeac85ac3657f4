/**
 * Verifying the gateway's own access tokens (JWT, `typ: at+jwt`, ES256, RFC 9068) as a
 * resource server. Every check runs locally against the issuer's published keys: signature
 * (ES256 only, so `alg: none` and HS256-with-the-public-key are refused), type, issuer,
 * audience (exactly the endpoint's resource URL), lifetime, then revocation.
 *
 * Any failure is one INVALID_TOKEN: the agent never learns which check failed (RFC 6750 §3.1
 * lets the resource server say no more); the reason goes to the debug log, without the token.
 */
import { createHash } from 'node:crypto';
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet, type JWTPayload } from 'jose';
import type { Clock } from '../clock.ts';
import { GatehouseError } from '../protocol/errors.ts';
import type { Principal } from './principal.ts';

/** What the resource server needs from the authorization server that mints the tokens. */
export interface TokenIssuerView {
  /** `iss` of every token: `${publicBase}/oauth`. */
  readonly issuer: string;
  /** The public keys tokens are signed with (current and recently rotated). */
  verificationKeys(): JSONWebKeySet;
  /** Whether the token (`jti`) or its grant (`gid`) was revoked. Synchronous: the hot path cannot wait on I/O. */
  isRevoked(claims: { jti?: string; gid?: string }): boolean;
}

export interface BearerVerifierOptions {
  issuer: TokenIssuerView;
  clock: Clock;
  /** Seconds of clock skew tolerated on `exp`, `iat` and `nbf`. */
  clockToleranceSeconds?: number;
  /** Why a token was refused, for a debug log line (never includes the token). */
  onRefused?(reason: string): void;
}

/** Thrown for every refused token; the message is internal (not exposed, see the error table). */
export class InvalidTokenError extends GatehouseError {
  constructor(reason: string) {
    super('INVALID_TOKEN', reason);
  }
}

function stringClaim(payload: JWTPayload, name: string): string {
  const value = payload[name];
  if (typeof value !== 'string' || value === '') throw new Error(`claim ${name} missing or not a string`);
  return value;
}

function stringArrayClaim(payload: JWTPayload, name: string): string[] {
  const value = payload[name];
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) throw new Error(`claim ${name} missing or not an array of strings`);
  return value as string[];
}

type KeyResolver = ReturnType<typeof createLocalJWKSet>;

/** Verified tokens remembered, at most (oldest evicted first). */
const VERIFIED_MAX = 10_000;

interface Verified {
  principal: Principal;
  gid: string | undefined;
  /** `exp` in epoch ms. */
  expiresAt: number;
}

export class BearerVerifier {
  private readonly options: BearerVerifierOptions;
  private readonly tolerance: number;
  /**
   * The JWKS resolver, rebuilt only when the key set changes. jose's local set imports each
   * key once and keeps the CryptoKey, so the hot path pays the signature check and no more.
   */
  private resolver: { source: JSONWebKeySet; fingerprint: string; resolve: KeyResolver } | undefined;
  /**
   * Tokens already verified for an audience, by SHA-256 of audience and token: an agent sends
   * the same token for minutes, and the ES256 check (~0.25 ms measured) is most of the cost.
   * Expiry and revocation are still checked on every request; a key rotation clears it.
   */
  private readonly verified = new Map<string, Verified>();

  constructor(options: BearerVerifierOptions) {
    this.options = options;
    this.tolerance = options.clockToleranceSeconds ?? 30;
  }

  /**
   * The principal a token stands for at `audience` (the resource URL of the endpoint called).
   * Throws INVALID_TOKEN for any failed check, AUTH_UNAVAILABLE when revocation cannot be checked.
   */
  async verify(token: string, audience: string): Promise<Principal> {
    const resolve = this.keys();
    const cacheKey = createHash('sha256').update(audience).update('\u0000').update(token).digest('base64url');
    const known = this.verified.get(cacheKey);
    if (known !== undefined) {
      if (known.expiresAt + this.tolerance * 1000 <= this.options.clock.now()) {
        this.verified.delete(cacheKey);
        throw this.refuse('token expired');
      }
      this.checkRevoked(known.principal.credentialId, known.gid);
      return known.principal;
    }
    const verified = await this.verifyFully(token, audience, resolve);
    if (this.verified.size >= VERIFIED_MAX) this.verified.delete(this.verified.keys().next().value!);
    this.verified.set(cacheKey, verified);
    return verified.principal;
  }

  private async verifyFully(token: string, audience: string, keys: KeyResolver): Promise<Verified> {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, keys, {
        algorithms: ['ES256'],
        typ: 'at+jwt',
        issuer: this.options.issuer.issuer,
        audience,
        clockTolerance: this.tolerance,
        currentDate: new Date(this.options.clock.now()),
        requiredClaims: ['sub', 'client_id', 'jti', 'iat', 'exp'],
      }));
    } catch (err) {
      throw this.refuse(err instanceof Error ? `${err.constructor.name}: ${err.message}` : String(err));
    }
    let principal: Principal;
    try {
      // Strict reading of "aud = exactly this resource": a token for several audiences is refused.
      const aud = payload.aud;
      if (!(aud === audience || (Array.isArray(aud) && aud.length === 1 && aud[0] === audience))) throw new Error('aud names more than this resource');
      const scope = payload['scope'];
      if (scope !== undefined && typeof scope !== 'string') throw new Error('claim scope is not a string');
      principal = {
        tenant: stringClaim(payload, 'tenant'),
        user: stringClaim(payload, 'sub'),
        agent: stringClaim(payload, 'client_id'),
        roles: stringArrayClaim(payload, 'roles'),
        scopes: scope === undefined ? [] : scope.split(' ').filter((s) => s !== ''),
        method: 'oauth',
        credentialId: stringClaim(payload, 'jti'),
        expiresAt: (payload.exp ?? 0) * 1000,
      };
    } catch (err) {
      throw this.refuse((err as Error).message);
    }
    const gid = typeof payload['gid'] === 'string' ? payload['gid'] : undefined;
    this.checkRevoked(principal.credentialId, gid);
    return { principal, gid, expiresAt: principal.expiresAt ?? 0 };
  }

  private checkRevoked(jti: string | undefined, gid: string | undefined): void {
    let revoked: boolean;
    try {
      revoked = this.options.issuer.isRevoked({ ...(jti === undefined ? {} : { jti }), ...(gid === undefined ? {} : { gid }) });
    } catch (err) {
      // Fail closed: a token whose revocation cannot be checked is not accepted.
      throw new GatehouseError('AUTH_UNAVAILABLE', 'the revocation list could not be read', { cause: err });
    }
    if (revoked) throw this.refuse(`token ${jti ?? ''} revoked`);
  }

  private keys(): KeyResolver {
    const source = this.options.issuer.verificationKeys();
    const cached = this.resolver;
    if (cached !== undefined && cached.source === source) return cached.resolve;
    // A new object with the same keys (an issuer that rebuilds its JWKS per call) keeps the cache.
    const fingerprint = JSON.stringify(source.keys.map((k) => [k.kid, k.kty, k.crv, k.x, k.y, k.n, k.e]));
    if (cached !== undefined && cached.fingerprint === fingerprint) {
      this.resolver = { ...cached, source };
      return cached.resolve;
    }
    const resolve = createLocalJWKSet(source);
    this.resolver = { source, fingerprint, resolve };
    // A removed key must stop its tokens at once.
    this.verified.clear();
    return resolve;
  }

  private refuse(reason: string): InvalidTokenError {
    this.options.onRefused?.(reason);
    return new InvalidTokenError(reason);
  }
}
