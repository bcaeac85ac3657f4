/**
 * Which gateway user a browser belongs to, for the upstream connect page (MCP 2025-11-25
 * elicitation, "Phishing": the user who opens a connect URL must be proven to be the user the
 * elicitation was made for).
 *
 * How: the connect page sends the browser through an authorization code + PKCE round trip at
 * the gateway's own authorization server, as a first-party client. An existing SSO session at
 * the AS answers silently; otherwise the user signs in at the enterprise IdP exactly as for any
 * agent. The code comes back to the connect page and is redeemed here, in process: its
 * `accountId` is the account id that the gateway's access tokens carry as `sub`, which is
 * `Principal.user`. Chosen over reading oidc-provider's session cookie because the round trip
 * also covers the browser with no session (a fresh login), and it goes through the AS's own
 * checks (session expiry, account lookup, login tenant) instead of re-implementing them.
 *
 * The clients: one per tenant (`gatehouse:upstream-connect:<tenant>`), so the login refuses a
 * user of another tenant as it does for agents; confidential with a random secret nobody holds,
 * so their codes can never be redeemed at the token endpoint; `openid` only, no resource, so no
 * access token for any gateway resource can come from them; consent is implied (first party,
 * nothing is granted to anyone); and the redirect URI is the connect page's own.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { GrantInstance, KoaContextWithOIDC, Provider } from 'oidc-provider';
import { GatehouseError } from '../protocol/errors.ts';
import { sameSecret } from './secret-compare.ts';

/** Where the round trip comes back (below the public base URL). */
export const CONNECT_IDENTITY_PATH = '/upstream-auth/identity';
const CLIENT_PREFIX = 'gatehouse:upstream-connect:';

/** The connect page's client for users of `tenant`. */
export function connectClientId(tenant: string): string {
  return `${CLIENT_PREFIX}${tenant}`;
}

/** The tenant whose users a connect client serves; undefined for every other client. */
export function connectClientTenant(clientId: string | undefined): string | undefined {
  return clientId?.startsWith(CLIENT_PREFIX) ? clientId.slice(CLIENT_PREFIX.length) : undefined;
}

/** oidc-provider static client metadata for the connect clients, one per tenant. */
export function connectClients(tenants: readonly string[], publicBase: string, configuredIds: readonly string[]): Record<string, unknown>[] {
  const clash = configuredIds.find((id) => connectClientTenant(id) !== undefined);
  if (clash !== undefined) throw new GatehouseError('CONFIG_INVALID', `auth.clients.${clash}: client ids starting with ${CLIENT_PREFIX} are reserved for the gateway`);
  return tenants.map((tenant) => ({
    client_id: connectClientId(tenant),
    client_name: 'Gatehouse: connect an upstream server',
    client_secret: randomBytes(32).toString('base64url'),
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['authorization_code'],
    response_types: ['code'],
    redirect_uris: [`${publicBase.replace(/\/+$/, '')}${CONNECT_IDENTITY_PATH}`],
    scope: 'openid',
  }));
}

/**
 * oidc-provider's `loadExistingGrant`: its default (the grant of the interaction result or of
 * the session) for every client but the connect clients, which get an `openid` grant made on
 * the spot, so the SSO round trip shows no consent page (oidc-provider's documented
 * first-party recipe). Always a fresh one: a remembered grant that expired would otherwise
 * send the user to the gateway's consent page for this internal client.
 */
export async function loadExistingGrant(ctx: KoaContextWithOIDC): Promise<GrantInstance | undefined> {
  const oidc = ctx.oidc;
  const provider = oidc?.provider;
  const clientId = oidc?.client?.clientId;
  if (oidc === undefined || provider === undefined || clientId === undefined) return undefined;
  if (connectClientTenant(clientId) !== undefined) {
    const accountId = oidc.account?.accountId;
    if (accountId === undefined) return undefined;
    const grant = new provider.Grant({ accountId, clientId });
    grant.addOIDCScope('openid');
    // As short-lived as the flow it serves: nothing ever refreshes on it.
    await grant.save(600);
    return grant;
  }
  const grantId = oidc.result?.consent?.grantId || oidc.session?.grantIdFor(clientId);
  return grantId ? provider.Grant.find(grantId) : undefined;
}

/** Who a browser proved to be. */
export interface BrowserUser {
  readonly tenant: string;
  readonly user: string;
}

/** The connect page's view of the round trip. */
export interface BrowserIdentity {
  /**
   * The authorization request to send the browser to; undefined when `tenant` has no connect
   * client. `prompt: 'login'` makes the user sign in at the IdP again even with a session (a
   * fresh login keeps a fresh ID token for cross-app access).
   */
  authorizationUrl(input: { tenant: string; state: string; codeChallenge: string; prompt?: 'login' | undefined }): string | undefined;
  /**
   * Redeem a code that came back to the connect page: it must be the tenant's connect client's,
   * unused, unexpired, for this redirect URI and this PKCE verifier. Resolves the account, or
   * undefined when any of that fails (single use either way).
   */
  redeem(code: string, codeVerifier: string, tenant: string): Promise<BrowserUser | undefined>;
}

export function createBrowserIdentity(input: {
  provider: Provider;
  issuer: string;
  publicBase: string;
  tenants: readonly string[];
  accounts: { find(id: string): Promise<{ id: string; tenant: string } | undefined> };
}): BrowserIdentity {
  const redirectUri = `${input.publicBase.replace(/\/+$/, '')}${CONNECT_IDENTITY_PATH}`;
  // The clients registered when the provider was built; a tenant added by a reload has none until a restart.
  const tenants = new Set(input.tenants);
  return {
    authorizationUrl({ tenant, state, codeChallenge, prompt }) {
      if (!tenants.has(tenant)) return undefined;
      const url = new URL(`${input.issuer}/auth`);
      url.search = new URLSearchParams({
        client_id: connectClientId(tenant),
        response_type: 'code',
        scope: 'openid',
        redirect_uri: redirectUri,
        state,
        code_challenge: codeChallenge,
        code_challenge_method: 'S256',
        ...(prompt === undefined ? {} : { prompt }),
      }).toString();
      return url.href;
    },
    async redeem(code, codeVerifier, tenant) {
      const found = await input.provider.AuthorizationCode.find(code);
      if (found === undefined || found.clientId !== connectClientId(tenant) || found.redirectUri !== redirectUri) return undefined;
      if (found.consumed || found.isExpired) return undefined;
      // Spent before the PKCE check: a code that came back once is never tried twice.
      await found.consume();
      if (found.codeChallengeMethod !== 'S256' || !sameSecret(pkceChallenge(codeVerifier), found.codeChallenge ?? '')) return undefined;
      const account = await input.accounts.find(found.accountId);
      return account === undefined ? undefined : { tenant: account.tenant, user: account.id };
    },
  };
}

/** RFC 7636 S256. */
export function pkceChallenge(verifier: string): string {
  return createHash('sha256').update(verifier).digest('base64url');
}

