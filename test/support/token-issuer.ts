// A stand-in for the authorization server's token side: an ES256 key pair minted with jose, a
// JWKS, a revocation set, and a signer for access tokens shaped like the AS's (RFC 9068).
import { exportJWK, generateKeyPair, SignJWT, type JSONWebKeySet, type JWTPayload } from 'jose';
import { randomUUID } from 'node:crypto';
import type { TokenIssuerView } from '../../src/auth/bearer-token.ts';

export interface TestIssuer extends TokenIssuerView {
  /** Settable: a gateway's issuer is known once its port is bound. */
  issuer: string;
  readonly revoked: Set<string>;
  /** A signed access token; `claims` and `header` override the defaults. */
  sign(audience: string, claims?: JWTPayload, header?: Record<string, unknown>, nowSeconds?: number): Promise<string>;
  /** The public key as PEM (for the HS256 confusion attack). */
  publicPem: string;
  publicJwk: Record<string, unknown>;
}

export async function createTestIssuer(issuer: string, now: () => number = Date.now): Promise<TestIssuer> {
  const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
  const jwks: JSONWebKeySet = { keys: [jwk] };
  const revoked = new Set<string>();
  const { createPublicKey } = await import('node:crypto');
  const publicPem = createPublicKey({ key: jwk as never, format: 'jwk' }).export({ type: 'spki', format: 'pem' }).toString();
  const view: TestIssuer = {
    issuer,
    revoked,
    publicPem,
    publicJwk: jwk,
    verificationKeys: () => jwks,
    isRevoked: ({ jti, gid }) => (jti !== undefined && revoked.has(`jti:${jti}`)) || (gid !== undefined && revoked.has(`gid:${gid}`)),
    async sign(audience, claims = {}, header = {}, nowSeconds = Math.floor(now() / 1000)) {
      const payload: JWTPayload = {
        iss: view.issuer,
        aud: audience,
        sub: 'alice',
        client_id: 'agent-1',
        scope: 'mcp',
        tenant: 'default',
        roles: ['admin'],
        gid: 'g1',
        jti: randomUUID(),
        iat: nowSeconds,
        exp: nowSeconds + 300,
        ...claims,
      };
      return new SignJWT(payload).setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: 'k1', ...header }).sign(privateKey);
    },
  };
  return view;
}

/** base64url JSON, for hand-made tokens (alg none). */
export function b64(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}
