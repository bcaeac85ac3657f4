/**
 * What an upstream transport knows of the third auth tier: a source of request headers, and
 * what to do when the upstream refuses them. One object per upstream connection (shared
 * connections carry the service identity; per-user connections one user's).
 *
 * CONTRACT between the transports (streamable-http, sse, stdio env), the registry and the
 * upstream OAuth client.
 */

export interface UpstreamCredential {
  /**
   * Headers for the next HTTP request to the upstream (for example `authorization`). Static
   * credentials answer synchronously. Rejects with a GatehouseError: `UPSTREAM_AUTHORIZATION_REQUIRED`
   * (a user must authorize: data says why) or `UPSTREAM_CREDENTIAL_UNAVAILABLE` (an operator
   * must act). Never resolves with a header the agent sent.
   */
  headers(): Readonly<Record<string, string>> | Promise<Readonly<Record<string, string>>>;
  /**
   * The upstream answered 401 or 403 with this `WWW-Authenticate` value. Resolves true when a
   * new credential was obtained (refresh, client credentials again, a step-up the user already
   * granted) and the request should be retried once with fresh `headers()`; otherwise rejects
   * with one of the errors above. Concurrent challenges share one attempt.
   */
  challenge(status: 401 | 403, wwwAuthenticate: string | undefined): Promise<boolean>;
}

/** Data carried by `UPSTREAM_AUTHORIZATION_REQUIRED`, turned into a URL elicitation by the gateway. */
export interface AuthorizationRequiredData {
  readonly target: string;
  /** `not_authorized`: no token yet; `reconsent`: refresh refused; `step_up`: more scope needed. */
  readonly reason: 'not_authorized' | 'reconsent' | 'step_up';
  /** Scopes the next authorization must ask for (step-up), when known. */
  readonly scopes?: readonly string[];
}

/** Who a per-user authorization is for. */
export interface UserRef {
  readonly tenant: string;
  readonly user: string;
  /**
   * Token-exchange targets only: the agent (its OAuth client id) the user's calls come from,
   * the actor (`act`) of the upstream token. There each user × agent holds its own token
   * (user-subject.ts); the registry sets it for those targets and nowhere else.
   */
  readonly agent?: string | undefined;
}

/** The state of one user's authorization at one target. */
export type UserAuthorizationState = 'active' | 'needs-consent' | 'absent';

/**
 * The gateway as OAuth client of its upstreams, per config snapshot: credentials for
 * connections, the per-user authorization code flow the connect page drives, and the refresh
 * job. CONTRACT; implemented by `createUpstreamAuthorizer` (upstream-authorizer.ts).
 */
export interface UpstreamAuthorizations {
  /** A shared connection's credential: `static` and `client-credentials` targets; undefined for `none` and `user-oauth`. */
  serviceCredential(target: string): UpstreamCredential | undefined;
  /** One user's credential at a `user-oauth` target (used by that user's connection only). */
  userCredential(target: string, who: UserRef): UpstreamCredential;
  /**
   * A `user-oauth` target: a credential without any token, for the registry's probe of a
   * target nobody has authorized yet. Its `challenge()` keeps the upstream's 401 hints
   * (resource metadata URL, scope) for the first authorization, then refuses.
   */
  probeCredential?(target: string): UpstreamCredential | undefined;
  /**
   * Whether the user holds a usable token at the target (a vault lookup, no network). At a
   * token-exchange target always `active`: the gateway obtains the token itself, and a refusal
   * comes from the exchange (typed), not from a consent the user has not given.
   */
  userAuthorization(target: string, who: UserRef): Promise<UserAuthorizationState>;
  /** Users (× agents, at token-exchange targets) of `tenant` with an active token at `target` (discovery after a restart uses one). */
  authorizedUsers(target: string, tenant: string): Promise<UserRef[]>;
  /**
   * Start the authorization code flow (PKCE S256, `resource`, scope selection) for a user the
   * connect page has verified. Discovery (RFC 9728 → RFC 8414 / OpenID) and client
   * registration (pre-registered, CIMD or DCR) happen here when not done yet. Resolves with
   * the upstream authorization URL the browser is sent to; the state is bound to the user and
   * the target and is single-use.
   */
  beginUserAuthorization(target: string, who: UserRef, options: { scopes?: readonly string[]; redirectUri: string }): Promise<{ authorizationUrl: string }>;
  /** Redeem the upstream's redirect (`code`, `state`, `iss`); stores the tokens. Rejects on an unknown state or a refused code. */
  completeUserAuthorization(callbackUrl: URL): Promise<{ target: string; who: UserRef }>;
  /** Forget a user's tokens at a target (and revoke them upstream when the server supports RFC 7009). */
  disconnectUser(target: string, who: UserRef): Promise<boolean>;
  /** stdio `static` targets: the child's secret environment (`{ [envVar]: secret }`); empty otherwise. */
  childEnvironment(target: string): Readonly<Record<string, string>>;
  /** One pass of the refresh job over the tokens due; the gateway runs it with `repeatEvery`. */
  refreshDue(): Promise<{ refreshed: number; failed: number; needsConsent: number }>;
  /**
   * Vault rows matching `filter` were changed outside the authorizer (the admin API deleted or
   * marked them): drop the in-memory copies so the next request reads the vault. Without this
   * call the copies are re-read within a few seconds anyway (REVALIDATE_MS).
   */
  invalidate?(filter: { tenant?: string; target?: string; subject?: 'service' | `user:${string}` }): void;
}
