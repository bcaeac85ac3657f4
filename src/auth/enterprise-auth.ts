/**
 * How the enterprise IdP plugs into the gateway's authorization server, in one place for the
 * composition root: the human login (`auth.idp`) as the interaction handler, and the ID-JAG
 * jwt-bearer grant (`auth.trustedIssuers`). The handler exists before the AS (the AS takes it
 * at creation) while the accounts it writes belong to the AS, hence the two steps.
 */
import type { Clock } from '../clock.ts';
import type { AuthConfig } from '../config/auth-schema.ts';
import type { AuthorizationServer } from './authorization-server.ts';
import { registerIdJagGrant, JWT_BEARER_GRANT } from './id-jag-grant.ts';
import { createIdpLogin, type AccountWriter, type IdentityTokenSink, type LoginAccount } from './idp-login.ts';
import type { InteractionHandler } from './interaction.ts';
import { clientTenant, resolveSecret } from './oauth-clients.ts';

export interface EnterpriseAuth {
  /** Pass to `createAuthorizationServer({ interactions })`; undefined without `auth.idp`. */
  readonly interactions: InteractionHandler | undefined;
  /** Call once with the created AS, before it serves requests. */
  install(as: AuthorizationServer): Promise<void>;
}

export function createEnterpriseAuth(options: { auth: AuthConfig; configDir: string; clock: Clock; identityTokens?: IdentityTokenSink | undefined }): EnterpriseAuth {
  const { auth } = options;
  let target: AccountWriter | undefined;
  // Fail closed: a login finishing before install() (impossible once wired) writes nothing.
  const accounts: AccountWriter = {
    upsert: (account: LoginAccount) => (target ? target.upsert(account) : Promise.reject(new Error('the authorization server is not ready'))),
    find: (id: string) => (target ? target.find(id) : Promise.reject(new Error('the authorization server is not ready'))),
  };
  const interactions =
    auth.idp === undefined
      ? undefined
      : createIdpLogin({
          idp: auth.idp,
          clientSecret: auth.idp.clientSecret === undefined ? undefined : resolveSecret(auth.idp.clientSecret, options.configDir, 'auth.idp.clientSecret'),
          tenants: auth.tenants,
          accounts,
          clientTenant: (clientId) => clientTenant(auth, clientId),
          identityTokens: options.identityTokens,
        });

  return {
    interactions,
    async install(as) {
      target = as.accounts;
      // A client configured for the grant needs it registered even without trusted issuers
      // (oidc-provider rejects unknown grant types in client metadata); it then refuses every assertion.
      const wanted = auth.trustedIssuers.length > 0 || Object.values(auth.clients).some((c) => c.grantTypes.includes(JWT_BEARER_GRANT));
      if (!wanted) return;
      const { errors } = await import('oidc-provider');
      registerIdJagGrant(as.provider, {
        issuer: as.issuer,
        auth,
        resources: as.resources,
        mintAccessToken: (input) => as.mintAccessToken(input),
        errors,
        now: () => options.clock.now(),
      });
    },
  };
}
