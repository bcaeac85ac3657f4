/**
 * The JWT bearer grant (RFC 7523) for Identity Assertion JWT Authorization Grants (ID-JAG,
 * the MCP enterprise-managed authorization extension): an agent trades an assertion that a
 * trusted enterprise IdP issued for it, naming the user, the gateway (audience), the resource
 * and the scopes, for a gateway access token. No browser and no consent page: the IdP's policy
 * decided, which is the point of the extension.
 *
 * Every check fails closed with the RFC 6749 §5.2 error the client can act on: an assertion
 * that does not verify, is stale, replayed, names another client, or names a user of another
 * tenant than the client's is `invalid_grant`; a
 * client not allowed an issuer's assertions is `unauthorized_client`; a resource the gateway
 * does not serve is `invalid_target`; a scope beyond the assertion's is `invalid_scope`.
 */
import { createRemoteJWKSet, decodeJwt, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import type { KoaContextWithOIDC, OIDCProviderError, Provider, errors as ProviderErrors } from 'oidc-provider';
import type { AuthConfig } from '../config/auth-schema.ts';
import type { MintAccessTokenInput } from './authorization-server.ts';
import { groupList, isLoopbackHost } from './idp-login.ts';
import { clientTenant, TENANT_MISMATCH } from './oauth-clients.ts';

export const JWT_BEARER_GRANT = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
/** The ID-JAG media type (draft-ietf-oauth-identity-assertion-authz-grant). */
export const ID_JAG_TYP = 'oauth-id-jag+jwt';
/** Clock skew tolerated between the IdP and the gateway. */
const CLOCK_TOLERANCE_SECONDS = 30;
/** Longest assertion lifetime accepted: an ID-JAG is a short-lived, single-use grant. */
const MAX_LIFETIME_SECONDS = 3600;
/** Asymmetric algorithms only: a shared-secret ID-JAG would let any holder of the secret mint one. */
const ALGORITHMS = ['ES256', 'ES384', 'ES512', 'PS256', 'PS384', 'PS512', 'RS256', 'RS384', 'RS512', 'EdDSA', 'Ed25519'];

type TrustedIssuer = AuthConfig['trustedIssuers'][number];

export interface IdJagGrantOptions {
  /** The authorization server's issuer: the only accepted `aud`. */
  readonly issuer: string;
  readonly auth: Pick<AuthConfig, 'trustedIssuers' | 'tenants' | 'scopes' | 'clients' | 'registration'>;
  /** The gateway's resource URLs. */
  readonly resources: readonly string[];
  readonly mintAccessToken: (input: MintAccessTokenInput) => Promise<{ token: string; expiresIn: number; jti: string }>;
  /** oidc-provider's error classes (`import('oidc-provider').errors`), so errors render as §5.2 answers. */
  readonly errors: typeof ProviderErrors;
  /** Epoch milliseconds; the AS clock. */
  readonly now: () => number;
}

/**
 * Registers the grant on the authorization server's provider; call once, before it serves a
 * token request. Clients get it by listing the grant type in `auth.clients.<id>.grantTypes`
 * (oidc-provider refuses the grant type for every other client).
 */
export function registerIdJagGrant(provider: Provider, options: IdJagGrantOptions): void {
  const verifiers = new Map(options.auth.trustedIssuers.map((t) => [t.issuer, { trusted: t, keys: remoteKeys(t) }]));
  const resources = new Set(options.resources);
  const { errors } = options;
  // Closes the window between the store's look-up and write for concurrent redemptions in this process.
  const redeeming = new Set<string>();

  const invalidGrant = (description: string): OIDCProviderError => {
    const err = new errors.InvalidGrant();
    err.error_description = description;
    return err;
  };

  provider.registerGrantType(
    JWT_BEARER_GRANT,
    async (ctx: KoaContextWithOIDC) => {
      const client = ctx.oidc?.client;
      if (!client) throw new errors.InvalidClient('client authentication failed');
      const params = (ctx.oidc?.params ?? {}) as Record<string, unknown>;
      const assertion = params.assertion;
      if (typeof assertion !== 'string' || assertion === '') throw new errors.InvalidRequest('missing assertion');

      // The issuer is read unverified only to pick its keys; the signature check below binds it.
      let claimedIssuer: unknown;
      try {
        claimedIssuer = decodeJwt(assertion).iss;
      } catch {
        throw invalidGrant('the assertion is not a JWT');
      }
      const entry = typeof claimedIssuer === 'string' ? verifiers.get(claimedIssuer) : undefined;
      if (!entry) throw invalidGrant('the assertion issuer is not trusted');
      const { trusted } = entry;
      if (trusted.clients.length > 0 && !trusted.clients.includes(client.clientId)) {
        throw new errors.UnauthorizedClient("this client may not present this issuer's assertions");
      }

      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(assertion, entry.keys, {
          issuer: trusted.issuer,
          audience: options.issuer,
          typ: ID_JAG_TYP,
          algorithms: ALGORITHMS,
          requiredClaims: ['sub', 'jti', 'iat', 'exp', 'client_id'],
          clockTolerance: CLOCK_TOLERANCE_SECONDS,
          currentDate: new Date(options.now()),
        }));
      } catch (err) {
        throw invalidGrant(verificationFailure(err));
      }
      const nowSeconds = Math.floor(options.now() / 1000);
      const iat = payload.iat ?? 0;
      const exp = payload.exp ?? 0;
      if (iat > nowSeconds + CLOCK_TOLERANCE_SECONDS) throw invalidGrant('the assertion is issued in the future');
      if (exp - iat > MAX_LIFETIME_SECONDS) throw invalidGrant('the assertion lives longer than this gateway accepts');
      if (payload.client_id !== client.clientId) throw invalidGrant('the assertion was issued to another client');

      const resource = assertionResource(payload, params.resource, resources, errors);
      const scope = grantedScope(payload, params.scope, client.clientId, options.auth, errors);
      const user = payload[trusted.userClaim];
      if (typeof user !== 'string' || user === '') throw invalidGrant(`the assertion does not name the user (${trusted.userClaim})`);
      // A misconfigured trusted issuer must not mint into a tenant the gateway does not serve.
      if (!options.auth.tenants.includes(trusted.tenant)) throw invalidGrant("the issuer's tenant is not served by this gateway");
      // The asserted user belongs to the issuer's tenant; a client of another tenant may not act for them.
      if (trusted.tenant !== clientTenant(options.auth, client.clientId)) throw invalidGrant(TENANT_MISMATCH);
      const roles = [...new Set(groupList(payload[trusted.groupsClaim]).flatMap((g) => trusted.groupRoles[g] ?? []))];

      // Single use, checked after the signature (a forged jti cannot burn a real one) and
      // remembered in the AS store until the assertion expires.
      const replayKey = `${trusted.issuer}\0${String(payload.jti)}`;
      if (redeeming.has(replayKey)) throw invalidGrant('the assertion was already used');
      redeeming.add(replayKey);
      try {
        const fresh = await provider.ReplayDetection.unique(trusted.issuer, String(payload.jti), exp + CLOCK_TOLERANCE_SECONDS);
        if (!fresh) throw invalidGrant('the assertion was already used');
      } finally {
        redeeming.delete(replayKey);
      }

      const minted = await options.mintAccessToken({ clientId: client.clientId, sub: user, tenant: trusted.tenant, roles, scope, resource });
      // No refresh token: the agent presents a new assertion, so the IdP's policy stays in charge.
      ctx.body = { access_token: minted.token, token_type: 'Bearer', expires_in: minted.expiresIn, scope };
    },
    ['assertion', 'scope', 'resource'],
  );
}

/** Keys of a trusted issuer; plain http only for an IdP on this machine. */
function remoteKeys(trusted: TrustedIssuer): ReturnType<typeof createRemoteJWKSet> {
  const url = new URL(trusted.jwksUri);
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopbackHost(url.hostname))) {
    throw new Error(`auth.trustedIssuers: the jwksUri of ${trusted.issuer} must use https (http only on loopback)`);
  }
  return createRemoteJWKSet(url, { timeoutDuration: 5000, cooldownDuration: 30_000 });
}

/** The assertion's resource, which the request may repeat but not change, and which the gateway must serve. */
function assertionResource(payload: JWTPayload, requested: unknown, resources: ReadonlySet<string>, errors: typeof ProviderErrors): string {
  const claimed = payload.resource;
  const named = typeof claimed === 'string' ? [claimed] : Array.isArray(claimed) ? claimed.filter((r): r is string => typeof r === 'string') : [];
  const wanted = requested === undefined ? named : typeof requested === 'string' ? [requested] : [];
  if (wanted.length !== 1 || (requested !== undefined && !named.includes(wanted[0] ?? ''))) {
    throw new errors.InvalidTarget('the token request must name exactly one resource, and the assertion must grant it');
  }
  const resource = wanted[0] ?? '';
  if (!resources.has(resource)) throw new errors.InvalidTarget('the resource is not served by this gateway');
  return resource;
}

/**
 * The scopes the token carries: the request's (or, without one, the assertion's), each within
 * what the assertion grants, the gateway supports and the client may ask for.
 */
function grantedScope(payload: JWTPayload, requested: unknown, clientId: string, auth: IdJagGrantOptions['auth'], errors: typeof ProviderErrors): string {
  const granted = new Set(typeof payload.scope === 'string' ? payload.scope.split(' ').filter(Boolean) : []);
  const clientScopes = auth.clients[clientId]?.scopes ?? [];
  const allowed = new Set(auth.scopes.filter((s) => clientScopes.length === 0 || clientScopes.includes(s)));
  if (typeof requested === 'string' && requested !== '') {
    const asked = requested.split(' ').filter(Boolean);
    const beyond = asked.filter((s) => !granted.has(s) || !allowed.has(s));
    if (beyond.length) throw new errors.InvalidScope(`scope not granted by the assertion or not allowed for this client: ${beyond.join(' ')}`);
    return [...new Set(asked)].join(' ');
  }
  return [...granted].filter((s) => allowed.has(s)).join(' ');
}

/** A description the client can act on; no key material or internals. */
function verificationFailure(err: unknown): string {
  if (err instanceof joseErrors.JWTExpired) return 'the assertion has expired';
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.claim === 'typ') return `the assertion is not an ID-JAG (typ ${ID_JAG_TYP})`;
    if (err.claim === 'aud') return 'the assertion is not addressed to this gateway';
    return `the assertion claim ${err.claim} is invalid`;
  }
  if (err instanceof joseErrors.JWKSNoMatchingKey || err instanceof joseErrors.JWSSignatureVerificationFailed) return 'the assertion signature does not verify';
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return 'the assertion algorithm is not accepted';
  // The IdP's keys could not be fetched: refusing is the only safe answer (fail closed).
  if (err instanceof joseErrors.JWKSTimeout || err instanceof joseErrors.JWKSInvalid) return "the issuer's keys could not be loaded";
  return 'the assertion is invalid';
}
