/**
 * The token requests that need no user, and refresh, run through the MCP SDK's own OAuth
 * client (`auth()`, `refreshAuthorization`): RFC 9728 / RFC 8414 discovery, the `resource`
 * indicator, scope selection and client authentication come from it. What is ours: which
 * grant (client credentials; RFC 8693 token exchange with a gateway assertion; SEP-990
 * identity assertion grants through the SDK's CrossAppAccessProvider), the pre-registered
 * client from config, and storage (vault-oauth-provider.ts).
 */
import {
  auth,
  createPrivateKeyJwtAuth,
  CrossAppAccessProvider,
  discoverAuthorizationServerMetadata,
  discoverOAuthServerInfo,
  refreshAuthorization,
  requestJwtAuthorizationGrant,
  type AddClientAuthentication,
  type FetchLike,
  type OAuthClientInformationFull,
  type OAuthDiscoveryState,
  type StoredOAuthClientInformation,
} from '@modelcontextprotocol/client';
import type { UpstreamClientConfig } from '../config/credentials-schema.ts';
import { authorizationRequired, credentialUnavailable } from './oauth-failure.ts';
import { VaultOAuthProvider, type TargetRecords, type TokenGrant, type TokenSlot, type UpstreamTokens } from './vault-oauth-provider.ts';

/** A client registered out of band (config), with its secret or key resolved. */
export interface PreRegisteredClient {
  readonly info: StoredOAuthClientInformation;
  readonly addClientAuthentication: AddClientAuthentication | undefined;
  /** The client secret, for flows that authenticate outside the SDK's token request (SEP-990). */
  readonly secret: string | undefined;
}

/**
 * Build the client from config. `issuer` (the configured authorization server) stamps it, so
 * the SDK refuses to present this client's credentials to any other server (SEP-2352).
 */
export function preRegisteredClient(client: UpstreamClientConfig, secrets: { secret?: string | undefined; privateKey?: string | undefined }, issuer: string | undefined): PreRegisteredClient {
  const method = client.authMethod ?? (secrets.privateKey !== undefined ? 'private_key_jwt' : secrets.secret !== undefined ? undefined : 'none');
  const info: OAuthClientInformationFull & { issuer?: string } = {
    client_id: client.id,
    redirect_uris: [],
    ...(secrets.secret === undefined || method === 'private_key_jwt' ? {} : { client_secret: secrets.secret }),
    // Unset: the SDK picks basic or post from what the server advertises.
    ...(method === undefined || method === 'private_key_jwt' ? {} : { token_endpoint_auth_method: method }),
    ...(issuer === undefined ? {} : { issuer }),
  };
  const addClientAuthentication = method === 'private_key_jwt' && secrets.privateKey !== undefined
    ? createPrivateKeyJwtAuth({ issuer: client.id, subject: client.id, privateKey: secrets.privateKey, alg: client.signingAlgorithm })
    : undefined;
  return { info, addClientAuthentication, secret: secrets.secret };
}

/** RFC 6749 §4.4. */
export const clientCredentialsGrant: TokenGrant = async (scope) => {
  const params = new URLSearchParams({ grant_type: 'client_credentials' });
  if (scope !== undefined && scope !== '') params.set('scope', scope);
  return params;
};

/**
 * RFC 8693 at the upstream authorization server, the subject being a short-lived assertion of
 * the user that the gateway signs (`mint`). The SDK adds `resource` and client authentication.
 */
export function gatewayAssertionGrant(options: { audience: string | undefined; requestedTokenType: string; mint: (audience: string) => Promise<string> }): TokenGrant {
  return async (scope, found) => {
    const audience = options.audience ?? found.issuer;
    const params = new URLSearchParams({
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      subject_token: await options.mint(audience),
      subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
      requested_token_type: options.requestedTokenType,
      audience,
    });
    if (scope !== undefined && scope !== '') params.set('scope', scope);
    return params;
  };
}

export interface IdJagOptions {
  readonly target: string;
  readonly client: PreRegisteredClient;
  readonly idp: { tokenEndpoint?: string | undefined; issuer?: string | undefined; clientId: string; clientSecret?: string | undefined };
  /** The user's ID token from the enterprise IdP; undefined when the gateway holds none (or only an expired one) for the user. */
  readonly idToken: () => Promise<string | undefined>;
  readonly fetch: FetchLike;
}

/**
 * SEP-990 (Enterprise-Managed Authorization): the SDK's CrossAppAccessProvider builds the
 * RFC 7523 jwt-bearer request; its assertion is an ID-JAG the IdP issues for the user's ID
 * token (RFC 8693, `requestJwtAuthorizationGrant`), naming the upstream's authorization
 * server as audience and the MCP endpoint as resource.
 */
export function idJagGrant(options: IdJagOptions): TokenGrant {
  let tokenEndpoint: string | undefined = options.idp.tokenEndpoint;
  const idpTokenEndpoint = async (): Promise<string> => {
    if (tokenEndpoint !== undefined) return tokenEndpoint;
    const metadata = await discoverAuthorizationServerMetadata(options.idp.issuer!, { fetchFn: options.fetch });
    if (metadata === undefined) throw credentialUnavailable(options.target, 'the identity provider publishes no metadata', 'idp_metadata');
    tokenEndpoint = metadata.token_endpoint;
    return tokenEndpoint;
  };
  return async (scope, found) => {
    if (found.resource === undefined) throw credentialUnavailable(options.target, 'the upstream names no protected resource (RFC 9728), which cross-app access needs', 'no_resource');
    const idToken = await options.idToken();
    // None kept, or it expired: only the user can fix that, by signing in to the gateway again
    // (the IdP login keeps the new one), so it is the user's error, not an operator's.
    if (idToken === undefined) throw authorizationRequired(options.target, 'not_authorized');
    const endpoint = await idpTokenEndpoint();
    const provider = new CrossAppAccessProvider({
      clientId: options.client.info.client_id,
      clientSecret: options.client.secret ?? '',
      expectedIssuer: found.issuer,
      fetchFn: options.fetch,
      assertion: async (context) => {
        const grant = await requestJwtAuthorizationGrant({
          tokenEndpoint: endpoint,
          audience: context.authorizationServerUrl,
          resource: context.resourceUrl,
          idToken,
          clientId: options.idp.clientId,
          ...(options.idp.clientSecret === undefined ? {} : { clientSecret: options.idp.clientSecret }),
          ...(context.scope === undefined ? {} : { scope: context.scope }),
          fetchFn: context.fetchFn,
        });
        return grant.jwtAuthGrant;
      },
    });
    provider.saveAuthorizationServerUrl(found.issuer);
    provider.saveResourceUrl?.(found.resource);
    return provider.prepareTokenRequest(scope);
  };
}

export interface FlowTarget {
  /** The target's name (in errors). */
  readonly name: string;
  readonly records: TargetRecords;
  readonly serverUrl: string;
  readonly fetch: FetchLike;
}

/** Obtain tokens without a user through the SDK's `auth()` and store them in `slot`. */
export async function obtainWithoutUser(target: FlowTarget, slot: TokenSlot, client: PreRegisteredClient, grant: TokenGrant, scope: string | undefined): Promise<void> {
  const provider = new VaultOAuthProvider(target.records, slot, {
    serverUrl: target.serverUrl,
    clientMetadata: { client_name: 'Gatehouse', redirect_uris: [], grant_types: ['client_credentials'] },
    preRegistered: client.info,
    addClientAuthentication: client.addClientAuthentication,
    grant,
  });
  const hint = target.records.hint.resourceMetadataUrl;
  const result = await auth(provider, {
    serverUrl: target.serverUrl,
    fetchFn: target.fetch,
    ...(scope === undefined || scope === '' ? {} : { scope }),
    ...(hint === undefined ? {} : { resourceMetadataUrl: new URL(hint) }),
  });
  if (result !== 'AUTHORIZED' || provider.savedTokens === undefined) throw credentialUnavailable(target.name, 'the authorization server issued no token', 'no_token');
}

/**
 * Redeem a refresh token (RFC 6749 §6) with the same `resource` (RFC 8707 §2.2) and no
 * `scope` (the grant's own). Only at the authorization server that issued the tokens.
 */
export async function refreshTokens(target: FlowTarget, slot: TokenSlot, client: PreRegisteredClient | undefined, tokens: UpstreamTokens): Promise<void> {
  if (tokens.refresh_token === undefined) throw authorizationRequired(target.name, 'reconsent');
  let discovery: OAuthDiscoveryState | undefined = await target.records.discoveryState();
  if (discovery === undefined) {
    const hint = target.records.hint.resourceMetadataUrl;
    const found = await discoverOAuthServerInfo(target.serverUrl, { fetchFn: target.fetch, ...(hint === undefined ? {} : { resourceMetadataUrl: new URL(hint) }) });
    discovery = { ...found, ...(hint === undefined ? {} : { resourceMetadataUrl: hint }) };
    await target.records.saveDiscovery(discovery);
  }
  const issuer = discovery.authorizationServerMetadata?.issuer ?? discovery.authorizationServerUrl;
  // SEP-2352: a refresh token goes back only to the server that issued it.
  if (tokens.issuer !== undefined && !sameIssuer(tokens.issuer, issuer)) throw authorizationRequired(target.name, 'reconsent');
  const clientInformation = client?.info ?? (await target.records.registeredClient());
  if (clientInformation === undefined) throw authorizationRequired(target.name, 'reconsent');
  const refreshed = await refreshAuthorization(discovery.authorizationServerUrl, {
    metadata: discovery.authorizationServerMetadata,
    clientInformation,
    refreshToken: tokens.refresh_token,
    ...(tokens.resource === undefined ? {} : { resource: tokens.resource }),
    addClientAuthentication: client?.addClientAuthentication,
    fetchFn: target.fetch,
  });
  await slot.save({ ...refreshed, issuer }, { requestedScope: tokens.requestedScope, resource: tokens.resource });
}

function sameIssuer(a: string, b: string): boolean {
  return a === b || a.replace(/\/$/, '') === b.replace(/\/$/, '');
}
