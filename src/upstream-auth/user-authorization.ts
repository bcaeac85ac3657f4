/**
 * The per-user authorization code flow (OAuth 2.1 with PKCE S256 and RFC 8707 `resource`),
 * run by the SDK's `auth()`: `begin` discovers the authorization server, registers the gateway
 * when needed (pre-registered, else a Client ID Metadata Document when the server supports
 * it, else dynamic registration) and builds the authorization URL; `complete` redeems the
 * code. Between the two, a pending record keyed by the `state` parameter binds the flow to one
 * user and one target; it is single-use and expires (PENDING_TTL_MS, pending-authorizations.ts).
 *
 * Pending records live in this process's memory: a callback must reach the instance that
 * began the flow (the connect page and its callback are served by the same listener).
 */
import { randomBytes } from 'node:crypto';
import { auth, type OAuthClientMetadata, type OAuthDiscoveryState } from '@modelcontextprotocol/client';
import type { PendingAuthorization } from './pending-authorizations.ts';
import { GatehouseError } from '../protocol/errors.ts';
import type { PreRegisteredClient, FlowTarget } from './token-grants.ts';
import { VaultOAuthProvider, type ProviderFlow, type TokenSlot } from './vault-oauth-provider.ts';
import { credentialUnavailable } from './oauth-failure.ts';

/** What the code flow knows of the gateway as a client at one target. */
export interface ConsentClient {
  readonly preRegistered: PreRegisteredClient | undefined;
  readonly clientMetadataUrl: string | undefined;
  readonly clientName: string;
  readonly clientUri: string | undefined;
}

/** A fresh `state`: 256 random bits. */
export function newState(): string {
  return randomBytes(32).toString('base64url');
}

/** The SDK provider for one leg of a consent: the gateway as this target's client, redirecting to `redirectUri`. */
function consentProvider(target: FlowTarget, slot: TokenSlot, client: ConsentClient, redirectUri: string, leg: Partial<ProviderFlow>): VaultOAuthProvider {
  return new VaultOAuthProvider(target.records, slot, {
    serverUrl: target.serverUrl,
    clientMetadata: clientMetadata(client, redirectUri),
    clientMetadataUrl: client.clientMetadataUrl,
    preRegistered: client.preRegistered?.info,
    addClientAuthentication: client.preRegistered?.addClientAuthentication,
    redirectUrl: redirectUri,
    ...leg,
  });
}

function clientMetadata(client: ConsentClient, redirectUri: string): OAuthClientMetadata {
  return {
    client_name: client.clientName,
    redirect_uris: [redirectUri],
    // refresh_token: servers that gate refresh tokens on registered grant types issue one (SEP-2207).
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    ...(client.clientUri === undefined ? {} : { client_uri: client.clientUri }),
  };
}

/**
 * Build the authorization URL for one user. Discovery is done afresh (the server may have
 * moved); the result is recorded for the callback leg.
 */
export async function beginConsent(
  target: FlowTarget, slot: TokenSlot, client: ConsentClient, options: { redirectUri: string; scope: string | undefined; state: string },
): Promise<{ authorizationUrl: URL; codeVerifier: string; discovery: OAuthDiscoveryState | undefined; scope: string | undefined }> {
  const provider = consentProvider(target, slot, client, options.redirectUri, { state: options.state, freshDiscovery: true });
  const hint = target.records.hint.resourceMetadataUrl;
  const result = await auth(provider, {
    serverUrl: target.serverUrl,
    fetchFn: target.fetch,
    forceReauthorization: true,
    ...(options.scope === undefined || options.scope === '' ? {} : { scope: options.scope }),
    ...(hint === undefined ? {} : { resourceMetadataUrl: new URL(hint) }),
  });
  const url = provider.authorizationUrl;
  const verifier = provider.savedVerifier;
  if (result !== 'REDIRECT' || url === undefined || verifier === undefined) throw credentialUnavailable(target.name, 'the authorization flow did not produce an authorization URL', 'no_redirect');
  // 2025-11-25 "Authorization Code Protection": PKCE support is read from the metadata, and a
  // server that does not list S256 is refused (the SDK only refuses a list without S256). A
  // server with no metadata at all is the 2025-03-26 endpoint fallback, which predates this rule.
  const metadata = provider.savedDiscovery?.authorizationServerMetadata;
  if (metadata !== undefined && metadata.code_challenge_methods_supported?.includes('S256') !== true) {
    throw credentialUnavailable(target.name, 'the authorization server does not advertise PKCE S256', 'no_pkce');
  }
  return { authorizationUrl: url, codeVerifier: verifier, discovery: provider.savedDiscovery, scope: url.searchParams.get('scope') ?? undefined };
}

/** Redeem the code at the server the flow began with; the tokens land in `slot`. */
export async function completeConsent(target: FlowTarget, slot: TokenSlot, client: ConsentClient, pending: PendingAuthorization, code: string, iss: string | undefined): Promise<void> {
  const provider = consentProvider(target, slot, client, pending.redirectUri, { codeVerifier: pending.codeVerifier, discovery: pending.discovery, requestedScope: pending.scope });
  const result = await auth(provider, {
    serverUrl: target.serverUrl,
    fetchFn: target.fetch,
    authorizationCode: code,
    ...(iss === undefined ? {} : { iss }),
    ...(pending.scope === undefined ? {} : { scope: pending.scope }),
  });
  if (result !== 'AUTHORIZED' || provider.savedTokens === undefined) throw credentialUnavailable(target.name, 'the authorization server issued no token', 'no_token');
}

/** The parts of a callback URL; the authorization server's error, when it sent one, as a typed code only. */
export function callbackParams(url: URL): { state: string | undefined; code: string | undefined; iss: string | undefined; error: string | undefined } {
  const get = (name: string): string | undefined => url.searchParams.get(name) ?? undefined;
  const error = get('error');
  return { state: get('state'), code: get('code'), iss: get('iss'), error: error === undefined ? undefined : /^[a-z_]{1,64}$/.test(error) ? error : 'error' };
}

/** A callback naming no flow of ours (unknown, used or expired state). */
export function unknownState(): GatehouseError {
  return new GatehouseError('INVALID_REQUEST', 'The authorization response names no pending authorization (unknown, used or expired state)');
}
