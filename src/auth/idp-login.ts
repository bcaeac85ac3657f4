/**
 * Human login through the enterprise IdP (OpenID Connect, authorization code + PKCE), as the
 * gateway authorization server's interaction handler. oidc-provider starts an interaction at
 * `/oauth/interaction/<uid>`; this module sends the browser to the IdP, takes the answer back,
 * maps the IdP user to a gateway account (user, tenant, roles) and then runs the consent step.
 *
 * The IdP's redirect URI is fixed (`<issuer>/interaction/idp-callback`, what the operator
 * registers at the IdP) while the interaction cookie only covers `/oauth/interaction/<uid>`;
 * so the fixed callback looks the login up by `state` and relays the browser to
 * `/oauth/interaction/<uid>/callback`, where the code is redeemed only if the same browser
 * still holds that interaction. A callback forced into another user's browser (login CSRF)
 * therefore dies there.
 */
import type { IncomingMessage } from 'node:http';
import * as oidc from 'openid-client';
import type { InteractionDetails } from 'oidc-provider';
import type { AuthConfig } from '../config/auth-schema.ts';
import { CONSENT_SUBPATH, createConsentStep, sendMessagePage, type ConsentStep } from './consent-page.ts';
import type { InteractionHandler, InteractionRequest } from './interaction.ts';
import { createMemoryPendingLogins, type PendingLoginStore } from './pending-logins.ts';
import { TENANT_MISMATCH } from './oauth-clients.ts';

export type IdpConfig = NonNullable<AuthConfig['idp']>;

/** An account as the login writes it (the authorization server's account store). */
export interface LoginAccount {
  readonly id: string;
  readonly tenant: string;
  readonly roles: string[];
  /** Profile claims kept for display and audit (email, name, groups); never tokens. */
  readonly claims: Record<string, unknown>;
}

export interface AccountWriter {
  upsert(account: LoginAccount): Promise<void>;
  /** The account as last written (the tenant check of a login resumed from an existing session). */
  find(id: string): Promise<Pick<LoginAccount, 'id' | 'tenant'> | undefined>;
}

/**
 * Where a login's verified ID token goes (upstream-auth/identity-tokens.ts: the vault, for
 * cross-app access toward upstreams). Must not reject: the login waits for it, but never fails on it.
 */
export interface IdentityTokenSink {
  keep(entry: { tenant: string; user: string; idToken: string; expiresAt: number }): Promise<void>;
}

export interface IdpLoginOptions {
  readonly idp: IdpConfig;
  /** `idp.clientSecret`, already resolved; absent for a public client (PKCE only). */
  readonly clientSecret?: string | undefined;
  /** `auth.tenants`: a login whose tenant is not listed fails. */
  readonly tenants: readonly string[];
  readonly accounts: AccountWriter;
  /** The tenant a client serves (`clientTenant` of oauth-clients.ts): its users' tenant must match. */
  readonly clientTenant: (clientId: string) => string;
  /** Where the state, nonce and PKCE verifier wait for the IdP; in memory unless given. */
  readonly pending?: PendingLoginStore;
  /** The consent step; its CSRF key is random per process unless given. */
  readonly consent?: ConsentStep;
  /** Keeps each login's ID token for the user's upstream token exchanges; absent: dropped. */
  readonly identityTokens?: IdentityTokenSink | undefined;
}

/** The path segment (in place of a uid) of the fixed IdP callback. nanoid uids never contain it at this length. */
export const IDP_CALLBACK_SEGMENT = 'idp-callback';
const CALLBACK_SUBPATH = '/callback';

/** The redirect URI to register for the gateway's client at the IdP. */
export function idpRedirectUri(issuer: string): string {
  return `${issuer}/interaction/${IDP_CALLBACK_SEGMENT}`;
}

/** Why a login was refused; the message is shown to the client as `error_description`. */
export class LoginRefused extends Error {}

/** Creates the handler the authorization server routes `/oauth/interaction/*` to. */
export function createIdpLogin(options: IdpLoginOptions): InteractionHandler {
  const { idp } = options;
  const pending = options.pending ?? createMemoryPendingLogins();
  const consent = options.consent ?? createConsentStep();
  let discovered: Promise<oidc.Configuration> | undefined;

  const configuration = (): Promise<oidc.Configuration> => {
    discovered ??= discoverIdp(idp, options.clientSecret).catch((err: unknown) => {
      discovered = undefined; // retry on the next login rather than pinning an outage
      throw err;
    });
    return discovered;
  };

  /** Ends the interaction with an OAuth error at the client's redirect URI (the client learns why, the user sees the client). */
  const finishWithError = (r: InteractionRequest, error: 'access_denied' | 'temporarily_unavailable', description: string) =>
    r.provider.interactionFinished(r.req, r.res, { error, error_description: description }, { mergeWithLastSubmission: false });

  async function startLogin(r: InteractionRequest, details: InteractionDetails): Promise<void> {
    let config: oidc.Configuration;
    try {
      config = await configuration();
    } catch {
      // The IdP is down or misconfigured: the gateway's fault, said as such, never a client fault.
      return finishWithError(r, 'temporarily_unavailable', 'the identity provider cannot be reached');
    }
    const state = oidc.randomState();
    const nonce = oidc.randomNonce();
    const codeVerifier = oidc.randomPKCECodeVerifier();
    // Stored only now, immediately before leaving for the IdP, and bound to this interaction and client.
    await pending.put(state, { uid: details.uid, clientId: String(details.params.client_id ?? ''), codeVerifier, nonce });
    const params: Record<string, string> = {
      redirect_uri: idpRedirectUri(r.issuer),
      scope: idp.scopes.join(' '),
      code_challenge: await oidc.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
      state,
      nonce,
    };
    // A client asking for a fresh login must get one at the IdP too, not a silent SSO.
    if (String(details.params.prompt ?? '').split(' ').includes('login')) params.prompt = 'login';
    redirect(r, oidc.buildAuthorizationUrl(config, params).href);
  }

  async function relayCallback(r: InteractionRequest): Promise<void> {
    const query = queryOf(r.req);
    const entry = await pending.peek(new URLSearchParams(query).get('state') ?? '');
    if (!entry) return sendMessagePage(r.res, 400, 'Sign-in expired', 'This sign-in is unknown or has expired. Start again from the application.');
    redirect(r, `${r.issuer}/interaction/${encodeURIComponent(entry.uid)}${CALLBACK_SUBPATH}${query}`);
  }

  async function finishLogin(r: InteractionRequest, details: InteractionDetails): Promise<void> {
    const query = queryOf(r.req);
    const state = new URLSearchParams(query).get('state') ?? '';
    const entry = await pending.take(state); // single use, whatever happens next
    if (!entry || entry.uid !== details.uid || entry.clientId !== String(details.params.client_id ?? '')) {
      return sendMessagePage(r.res, 400, 'Sign-in refused', 'This answer from the identity provider does not belong to this sign-in. Start again from the application.');
    }
    const fail = (description: string) => finishWithError(r, 'access_denied', description);
    if (new URLSearchParams(query).has('error')) return fail('the identity provider did not sign the user in');

    let claims: Record<string, unknown>;
    let identity: { idToken: string; expiresAt: number } | undefined;
    try {
      const config = await configuration();
      const currentUrl = new URL(`${idpRedirectUri(r.issuer)}${query}`);
      const tokens = await oidc.authorizationCodeGrant(config, currentUrl, { pkceCodeVerifier: entry.codeVerifier, expectedState: state, expectedNonce: entry.nonce, idTokenExpected: true });
      const idClaims: Record<string, unknown> = { ...tokens.claims() };
      claims = idClaims;
      // Verified above (signature, issuer, audience, nonce, expiry); kept only once the account is.
      if (typeof tokens.id_token === 'string' && typeof idClaims.exp === 'number') identity = { idToken: tokens.id_token, expiresAt: idClaims.exp * 1000 };
      const wanted = [idp.userClaim, idp.groupsClaim, idp.tenantClaim].filter((c): c is string => c !== undefined);
      // IdPs that keep groups (or the user name) out of the ID token serve them at userinfo.
      if (wanted.some((c) => claims[c] === undefined) && typeof idClaims.sub === 'string') {
        const info: Record<string, unknown> = { ...(await oidc.fetchUserInfo(config, tokens.access_token, idClaims.sub)) };
        claims = { ...info, ...idClaims };
      }
    } catch (err) {
      // openid-client reports network failures as TypeError; everything else is an answer that did not verify.
      if (err instanceof TypeError) return finishWithError(r, 'temporarily_unavailable', 'the identity provider cannot be reached');
      return fail("the identity provider's answer could not be verified");
    }

    let account: LoginAccount;
    try {
      account = accountFromClaims(claims, idp, options.tenants);
    } catch (err) {
      if (err instanceof LoginRefused) return fail(err.message);
      throw err;
    }
    // Refused before the account is written: this login gives the client nothing.
    if (account.tenant !== options.clientTenant(entry.clientId)) return fail(TENANT_MISMATCH);
    await options.accounts.upsert(account);
    if (identity !== undefined) await options.identityTokens?.keep({ tenant: account.tenant, user: account.id, ...identity }).catch(() => undefined);
    await r.provider.interactionFinished(r.req, r.res, { login: { accountId: account.id, amr: ['ext'] } }, { mergeWithLastSubmission: false });
  }

  /**
   * A user already signed in at the gateway (another client's login in this browser) reaches
   * consent without a new login, so the client and user tenants are checked here too. An
   * account that cannot be found is refused as well (fail closed).
   */
  async function sameTenant(details: InteractionDetails): Promise<boolean> {
    const accountId = details.session?.accountId;
    const account = accountId === undefined ? undefined : await options.accounts.find(accountId);
    return account !== undefined && account.tenant === options.clientTenant(String(details.params.client_id ?? ''));
  }

  return {
    async handle(r) {
      if (r.uid === IDP_CALLBACK_SEGMENT && r.subpath === '') {
        if (r.req.method !== 'GET') return sendMessagePage(r.res, 405, 'Method not allowed', 'The identity provider answers with GET.');
        return relayCallback(r);
      }
      let details: InteractionDetails;
      try {
        details = await r.provider.interactionDetails(r.req, r.res);
      } catch (err) {
        // No interaction cookie, or an expired interaction: nothing to resume in this browser.
        // Anything else (the store failing) is not the user's fault and propagates as a 500.
        if (!(err instanceof Error && err.name === 'SessionNotFound')) throw err;
        return sendMessagePage(r.res, 400, 'Sign-in expired', 'This sign-in has expired or was started in another browser. Start again from the application.');
      }
      if (details.uid !== r.uid) return sendMessagePage(r.res, 400, 'Sign-in refused', 'This page belongs to another sign-in. Start again from the application.');
      if (details.prompt.name === 'consent' && !(await sameTenant(details))) {
        return finishWithError(r, 'access_denied', TENANT_MISMATCH);
      }
      const step = `${details.prompt.name} ${r.req.method ?? ''} ${r.subpath}`;
      switch (step) {
        case 'login GET ':
          return startLogin(r, details);
        case `login GET ${CALLBACK_SUBPATH}`:
          return finishLogin(r, details);
        case 'consent GET ':
          return consent.show(r, details);
        case `consent POST ${CONSENT_SUBPATH}`:
          return consent.decide(r, details);
        default:
          return sendMessagePage(r.res, 404, 'Not found', 'There is nothing to do at this address for this sign-in.');
      }
    },
  };
}

/**
 * Maps the IdP's claims to a gateway account: the user from `userClaim`, the tenant from
 * `tenantClaim` (or the fixed `tenant`), roles from `groupsClaim` through `groupRoles`.
 * Throws LoginRefused when the user cannot be named or the tenant is not served.
 */
export function accountFromClaims(claims: Record<string, unknown>, idp: IdpConfig, tenants: readonly string[]): LoginAccount {
  const user = claims[idp.userClaim];
  if (typeof user !== 'string' || user === '') throw new LoginRefused(`the identity provider did not name the user (claim ${idp.userClaim})`);
  const tenantValue = idp.tenantClaim === undefined ? idp.tenant : claims[idp.tenantClaim];
  if (typeof tenantValue !== 'string' || !tenants.includes(tenantValue)) throw new LoginRefused("the user's tenant is not served by this gateway");
  const groups = groupList(claims[idp.groupsClaim]);
  const roles = [...new Set(groups.flatMap((g) => idp.groupRoles[g] ?? []))];
  const kept: Record<string, unknown> = { groups };
  for (const name of ['email', 'name', 'preferred_username'] as const) if (typeof claims[name] === 'string') kept[name] = claims[name];
  return { id: user, tenant: tenantValue, roles, claims: kept };
}

/** Groups as IdPs send them: an array of names, or one name. */
export function groupList(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  return Array.isArray(value) ? value.filter((g): g is string => typeof g === 'string') : [];
}

async function discoverIdp(idp: IdpConfig, clientSecret: string | undefined): Promise<oidc.Configuration> {
  const issuer = new URL(idp.issuer);
  // Plain http only for an IdP on this machine (tests, local development).
  const execute = issuer.protocol === 'http:' && isLoopbackHost(issuer.hostname) ? [oidc.allowInsecureRequests] : [];
  const auth = clientSecret === undefined ? oidc.None() : oidc.ClientSecretBasic(clientSecret);
  return oidc.discovery(issuer, idp.clientId, undefined, auth, { execute });
}

/** 127.0.0.0/8, ::1 and localhost. */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h);
}

function queryOf(req: IncomingMessage): string {
  const url = req.url ?? '';
  const at = url.indexOf('?');
  return at < 0 ? '' : url.slice(at);
}

function redirect(r: InteractionRequest, location: string): void {
  r.res.writeHead(303, { location, 'cache-control': 'no-store', 'content-length': '0' });
  r.res.end();
}
