/**
 * The gateway's `authorizationServer` factory (GatewayOptions): the AS on the gateway's own SQL
 * store, human login through the enterprise IdP (`auth.idp`) as its interaction handler, and
 * the ID-JAG grant (`auth.trustedIssuers`) installed before it serves a request. One wiring for
 * the composition root and the tests that run a real gateway. Its modules load only when the
 * factory runs (auth.mode oauth): oidc-provider and openid-client stay out of other gateways.
 */
import type { GatewayOptions } from '../gateway.ts';

/** `configDir` is where secret files (`{ file: … }` references) resolve from: the config file's directory. */
export function composeAuthorizationServer(configDir: string): NonNullable<GatewayOptions['authorizationServer']> {
  return async (context) => {
    const { createAuthorizationServer } = await import('./authorization-server.ts');
    const { createEnterpriseAuth } = await import('./enterprise-auth.ts');
    const { SqlStore } = await import('../storage/sql-store.ts');
    if (!(context.store instanceof SqlStore)) throw new Error('the authorization server needs a SQL store');
    // The IdP login keeps users' ID tokens for cross-app access targets (SEP-990) in the vault.
    const enterprise = createEnterpriseAuth({ auth: context.config().auth, configDir, clock: context.clock, identityTokens: context.identityTokens });
    const as = await createAuthorizationServer({
      config: context.config(),
      publicBase: context.publicBase,
      store: context.store.oauthStore(),
      configDir,
      clock: context.clock,
      logger: context.logger,
      interactions: enterprise.interactions,
    });
    await enterprise.install(as);
    return as;
  };
}
