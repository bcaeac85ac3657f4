/**
 * Revocation that bites at once (RFC 7009), on top of oidc-provider:
 *
 * - Grants. oidc-provider destroys a grant's codes and refresh tokens when a refresh token is
 *   revoked, reused, or an authorization code is replayed, and emits `grant.revoked`. Access
 *   tokens of that grant are JWTs nobody stores, so the grant id goes on the revocation list
 *   for as long as one of its access tokens can live.
 * - JWT access tokens. oidc-provider refuses to revoke structured tokens
 *   (`unsupported_token_type`). A middleware after it takes over such a refusal: the token is
 *   verified with our keys and issuer, must belong to the authenticated client, and its jti is
 *   listed until it expires. An invalid or expired token answers 200 with nothing revoked, as
 *   RFC 7009 §2.2 asks.
 */
import { jwtVerify, createLocalJWKSet } from 'jose';
import type { Provider, errors as ProviderErrors, KoaContextWithOIDC } from 'oidc-provider';
import type { Clock } from '../clock.ts';
import type { GatewayLogger } from '../telemetry/log.ts';
import type { SigningKeys } from './oauth-keys.ts';
import type { RevocationList } from './oauth-revocations.ts';

export interface RevocationHooksInput {
  provider: Provider;
  keys: SigningKeys;
  revocations: RevocationList;
  issuer: string;
  clock: Clock;
  accessTokenTtlMs: number;
  logger: GatewayLogger;
  errors: typeof ProviderErrors;
}

export function installRevocationHooks(input: RevocationHooksInput): void {
  const { provider, revocations, clock, logger } = input;

  provider.on('grant.revoked', (_ctx, grantId) => {
    if (typeof grantId !== 'string') return;
    // In memory synchronously (inside revoke); the write may fail, which is logged, not hidden.
    revocations.revoke('gid', grantId, clock.now() + input.accessTokenTtlMs).catch((err: unknown) => {
      logger.error({ err: err instanceof Error ? err.message : 'unknown', grantId }, 'oauth: persisting a grant revocation failed');
    });
  });

  provider.use(async (ctx: KoaContextWithOIDC, next) => {
    await next();
    if (ctx.oidc?.route !== 'revocation' || ctx.status !== 400) return;
    const body = ctx.body as { error?: unknown } | undefined;
    const token = ctx.oidc.params?.['token'];
    const client = ctx.oidc.client;
    if (body?.error !== 'unsupported_token_type' || typeof token !== 'string' || client === undefined) return;
    await revokeJwt(input, ctx, token, client.clientId, client.clientAuthMethod);
  });
}

async function revokeJwt(input: RevocationHooksInput, ctx: KoaContextWithOIDC, token: string, clientId: string, authMethod: string): Promise<void> {
  const answerOk = (): void => {
    ctx.body = '';
    ctx.status = 200;
  };
  let claims: { jti?: unknown; exp?: unknown; client_id?: unknown };
  try {
    // Expired tokens need no revocation; a token we did not sign is not ours to list.
    ({ payload: claims } = await jwtVerify(token, createLocalJWKSet(input.keys.verificationKeys()), {
      issuer: input.issuer,
      typ: 'at+jwt',
      algorithms: ['ES256'],
      currentDate: new Date(input.clock.now()),
    }));
  } catch {
    answerOk();
    return;
  }
  if (claims.client_id !== clientId) {
    // oidc-provider's own policy for another client's token: refuse confidential clients, and
    // answer public ones as if done (they proved nothing, so they learn nothing).
    if (authMethod !== 'none') {
      const err = new input.errors.UnauthorizedClient('client is not authorized to revoke the presented token');
      ctx.status = 400;
      ctx.body = { error: err.error, error_description: err.error_description ?? err.message };
      return;
    }
    answerOk();
    return;
  }
  if (typeof claims.jti !== 'string' || typeof claims.exp !== 'number') {
    answerOk();
    return;
  }
  await input.revocations.revoke('jti', claims.jti, claims.exp * 1000);
  answerOk();
}

