/**
 * oidc-provider's configuration for the gateway's authorization server. Every choice here is
 * a security decision; each says why. The strict reading of the MCP authorization spec
 * (2025-11-25 and 2026-07-28) is taken where it is ambiguous:
 *
 * - PKCE S256 for every authorization code (oidc-provider 9 knows no `plain`).
 * - RFC 8707 `resource` is REQUIRED on the authorization request and on every token request
 *   (code, refresh, client credentials), exactly one per token request, and must be one of the
 *   gateway's resource URLs; the token's `aud` is that URL.
 * - Refresh tokens are issued to every client allowed the refresh_token grant, without
 *   `offline_access` (MCP clients do not ask for it), live `refreshTokenTtlSeconds`, do not end
 *   with the browser session at the AS, and rotate on every use; reuse revokes the grant.
 */
import { randomUUID } from 'node:crypto';
import type { Configuration, ExternalSigningKey, KoaContextWithOIDC, ClientInstance, TokenInstance, errors as ProviderErrors } from 'oidc-provider';
import type { GatehouseConfig } from '../config/schema.ts';
import type { OAuthStore, StoredAccount } from '../storage/oauth-store.ts';
import type { Clock } from '../clock.ts';
import { OAuthAdapter } from './oauth-adapter.ts';
import { clientTenant, TENANT_MISMATCH, type ClientIdentity } from './oauth-clients.ts';
import { providerFetch, type GuardedFetchOptions } from './client-metadata-fetch.ts';
import { INTERACTION_PREFIX } from './interaction.ts';
import { connectClientTenant, loadExistingGrant } from './connect-identity.ts';

/** Largest registration request accepted (RFC 7591 metadata); larger ones answer 413. */
export const REGISTRATION_BODY_LIMIT = 16 * 1024;
const AUTHORIZATION_CODE_TTL = 60;
const INTERACTION_TTL = 600;
const SESSION_TTL = 3600;

export interface ProviderConfigInput {
  config: GatehouseConfig;
  issuerPath: string;
  store: OAuthStore;
  clock: Clock;
  resources: ReadonlySet<string>;
  clients: { metadata: Record<string, unknown>[]; identities: Map<string, ClientIdentity> };
  cookieKeys: string[];
  signingKey: ExternalSigningKey;
  errors: typeof ProviderErrors;
  findAccount: (id: string) => Promise<StoredAccount | undefined>;
  metadataFetch: GuardedFetchOptions;
}

/** Tenant and roles of a token: the user's (accounts table) or the client's own. */
function tokenIdentity(input: ProviderConfigInput, token: TokenInstance, account: StoredAccount | undefined): { tenant: string; roles: string[] } | undefined {
  if (token.kind === 'ClientCredentials') {
    const identity = input.clients.identities.get(token.clientId ?? '');
    return identity === undefined ? { tenant: input.config.auth.registration.tenant, roles: [] } : { tenant: identity.tenant, roles: [...identity.roles] };
  }
  return account === undefined ? undefined : { tenant: account.tenant, roles: account.roles };
}

function allowedScopes(input: ProviderConfigInput, client: ClientInstance | undefined): string[] {
  const restricted = client === undefined ? undefined : input.clients.identities.get(client.clientId)?.scopes;
  const all = input.config.auth.scopes;
  return restricted === undefined || restricted.length === 0 ? all : all.filter((s) => restricted.includes(s));
}

/** Dynamic registration is for public clients doing authorization code (+ refresh) only. */
function checkDynamicRegistration(input: ProviderConfigInput, body: Record<string, unknown> | undefined): void {
  const fail = (message: string): never => {
    throw new input.errors.InvalidClientMetadata(message);
  };
  if (body === undefined) return fail('the registration request has no JSON body');
  // Made explicit: oidc-provider decides on issuing a secret from the body before defaults apply.
  body['token_endpoint_auth_method'] ??= 'none';
  if (body['token_endpoint_auth_method'] !== 'none') fail('dynamic registration is for public clients: token_endpoint_auth_method must be none');
  const grants = body['grant_types'] ?? ['authorization_code'];
  if (!Array.isArray(grants) || !grants.every((g) => g === 'authorization_code' || g === 'refresh_token')) fail('grant_types may hold only authorization_code and refresh_token');
  const responses = body['response_types'] ?? ['code'];
  if (!Array.isArray(responses) || !responses.every((r) => r === 'code')) fail('response_types may hold only code');
}

export function providerConfiguration(input: ProviderConfigInput): Configuration {
  const { config, errors } = input;
  const auth = config.auth;
  const atTtl = auth.accessTokenTtlSeconds;
  const rtTtl = auth.refreshTokenTtlSeconds;
  return {
    adapter: (name: string) => new OAuthAdapter(name, input.store, input.clock),
    clients: input.clients.metadata,
    clientAuthMethods: ['none', 'client_secret_basic', 'client_secret_post', 'private_key_jwt'],
    clientDefaults: {
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
      id_token_signed_response_alg: 'ES256',
    },
    enabledJWA: {
      idTokenSigningAlgValues: ['ES256'],
      clientAuthSigningAlgValues: ['ES256', 'ES384', 'ES512', 'PS256', 'PS384', 'PS512', 'RS256', 'RS384', 'RS512', 'Ed25519', 'EdDSA'],
    },
    jwks: { keys: [input.signingKey] },
    cookies: { keys: input.cookieKeys, long: { signed: true, httpOnly: true, sameSite: 'lax' }, short: { signed: true, httpOnly: true, sameSite: 'lax' } },
    scopes: ['openid', 'offline_access', ...auth.scopes],
    async findAccount(_ctx: KoaContextWithOIDC, sub: string) {
      const account = await input.findAccount(sub);
      // Unknown users get no tokens (fail closed): the IdP login writes the account first.
      if (account === undefined) return undefined;
      return { accountId: account.id, claims: async () => ({ ...account.claims, sub: account.id }) };
    },
    loadExistingGrant,
    interactions: { url: (_ctx: KoaContextWithOIDC, interaction: { uid: string }) => `${input.issuerPath}${INTERACTION_PREFIX}${interaction.uid}` },
    pkce: { required: () => true },
    // OAuth 2.1: the authorization code flow only (no implicit or hybrid responses).
    responseTypes: ['code'],
    features: {
      // Off because the resource server accepts only Bearer tokens: a DPoP-bound token would be
      // issued and then refused. PAR is not used by MCP clients; what is not offered is not attack surface.
      dPoP: { enabled: false },
      pushedAuthorizationRequests: { enabled: false },
      devInteractions: { enabled: false },
      userinfo: { enabled: false },
      rpInitiatedLogout: { enabled: false },
      introspection: { enabled: false },
      revocation: { enabled: true },
      clientCredentials: { enabled: true },
      registration: {
        enabled: auth.registration.dynamic,
        initialAccessToken: false,
        issueRegistrationAccessToken: false,
        // Runs first in the registration response, after the body is parsed: refuse here.
        idFactory: (ctx: KoaContextWithOIDC) => {
          checkDynamicRegistration(input, ctx.oidc?.body);
          return `dyn-${randomUUID()}`;
        },
      },
      clientIdMetadataDocument: auth.registration.clientIdMetadataDocuments ? { enabled: true, ack: 'draft-02', cacheDuration: { min: 30, max: 3600 } } : { enabled: false },
      externalSigningSupport: { enabled: true, ack: 'experimental-01' },
      resourceIndicators: {
        enabled: true,
        // No resource on the request: refuse (strict RFC 8707 reading of the MCP spec).
        defaultResource: (_ctx: KoaContextWithOIDC, client: ClientInstance, oneOf?: string[]) => {
          // The upstream connect page's identity clients ask for openid only: no resource, no access token.
          if (oneOf === undefined && connectClientTenant(client.clientId) !== undefined) return undefined;
          if (oneOf !== undefined) throw new errors.InvalidTarget('a token request names exactly one resource');
          throw new errors.InvalidTarget('the resource parameter is required');
        },
        // Called only when a token request omits resource for a grant that has one: refuse too.
        useGrantedResource: () => {
          throw new errors.InvalidTarget('the resource parameter is required');
        },
        getResourceServerInfo: (_ctx: KoaContextWithOIDC, resourceIndicator: string, client: ClientInstance) => {
          if (!input.resources.has(resourceIndicator)) throw new errors.InvalidTarget('the resource is not served by this gateway');
          return { scope: allowedScopes(input, client).join(' '), audience: resourceIndicator, accessTokenTTL: atTtl, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'ES256' } } };
        },
      },
    },
    async extraTokenClaims(_ctx: KoaContextWithOIDC, token: TokenInstance) {
      const account = token.kind === 'ClientCredentials' || token.accountId === undefined ? undefined : await input.findAccount(token.accountId);
      const identity = tokenIdentity(input, token, account);
      if (identity === undefined) throw new errors.InvalidGrant('the account is unknown');
      // The login refuses a user of another tenant than the client (access_denied); this is
      // the backstop for codes and refresh tokens whose user or client changed tenant since.
      if (token.kind !== 'ClientCredentials' && identity.tenant !== clientTenant(auth, token.clientId ?? '')) {
        const refused = new errors.InvalidGrant();
        refused.error_description = TENANT_MISMATCH;
        throw refused;
      }
      return { tenant: identity.tenant, roles: identity.roles, ...(token.grantId === undefined ? {} : { gid: token.grantId }) };
    },
    issueRefreshToken: async (_ctx: KoaContextWithOIDC, client: ClientInstance) => client.grantTypeAllowed('refresh_token'),
    // Always rotate. Checked here, before oidc-provider consumes the old token: a refresh
    // without (or with a foreign) resource must fail without burning the grant.
    rotateRefreshToken: (ctx: KoaContextWithOIDC) => {
      const resource = ctx.oidc?.params?.['resource'];
      if (typeof resource !== 'string') throw new errors.InvalidTarget('the resource parameter is required (exactly one)');
      const token = ctx.oidc?.entities['RefreshToken'] as { resource?: string | string[] } | undefined;
      const granted = token?.resource === undefined ? [] : ([] as string[]).concat(token.resource);
      if (!granted.includes(resource)) throw new errors.InvalidTarget('the resource was not granted');
      return true;
    },
    expiresWithSession: async () => false,
    ttl: {
      AccessToken: atTtl,
      ClientCredentials: atTtl,
      AuthorizationCode: AUTHORIZATION_CODE_TTL,
      RefreshToken: rtTtl,
      Grant: rtTtl,
      IdToken: atTtl,
      Interaction: INTERACTION_TTL,
      Session: SESSION_TTL,
    },
    fetch: providerFetch(input.metadataFetch),
    fetchResponseBodyLimits: { 'client_id metadata document': 5 * 1024 },
    // Front-channel errors that cannot go to a redirect_uri: the OAuth error and its
    // description only, as JSON (no HTML page, nothing from the request echoed).
    renderError: async (ctx: KoaContextWithOIDC, out: { error?: string; error_description?: string }) => {
      ctx.set('content-type', 'application/json; charset=utf-8');
      ctx.body = JSON.stringify({ error: out.error ?? 'server_error', error_description: out.error_description });
    },
  };
}
