/**
 * The SDK's `OAuthClientProvider`, kept in the credential vault: the gateway's client
 * registration and the discovery state per target (subject `service`), tokens per target ×
 * subject (`service` or `user:<id>`). The SDK's `auth()` drives discovery, registration, PKCE
 * and the token requests; this file only stores what it hands over and hands back what it asks
 * for. Flow-scoped values (state, code verifier, the authorization URL) stay on the provider
 * object of that one flow.
 *
 * Without a vault (none configured) everything lives in memory: enough for `client-credentials`
 * targets; `user-oauth` targets refuse to run without one (upstream-authorizer.ts).
 */
import {
  type AddClientAuthentication,
  type OAuthClientInformationContext,
  type OAuthClientMetadata,
  type OAuthClientProvider,
  type OAuthDiscoveryState,
  type StoredOAuthClientInformation,
  type StoredOAuthTokens,
} from '@modelcontextprotocol/client';
import type { Clock } from '../clock.ts';
import type { CredentialKey, CredentialStatus, CredentialSubject, CredentialVault } from '../vault/credential-vault.ts';

/** Tokens as the gateway keeps them: the SDK's stored tokens plus what a refresh needs later. */
export interface UpstreamTokens extends StoredOAuthTokens {
  /** Epoch ms the access token expires (from `expires_in` at save time), when the server said. */
  expiresAt?: number;
  /** Epoch ms the tokens were obtained. */
  obtainedAt: number;
  /** The scope asked for; it is the granted scope when the server echoes none (RFC 6749 §5.1). */
  requestedScope?: string;
  /** The RFC 8707 resource the token was obtained for: a refresh sends the same one. */
  resource?: string;
}

/** A non-interactive grant: the token request's parameters, given what discovery found. */
export type TokenGrant = (scope: string | undefined, found: { issuer: string; resource: string | undefined }) => Promise<URLSearchParams>;

/** Per target: the gateway's client registration, the discovery state and the latest challenge hint. */
/** One vault row of a target, read once and then kept in memory (it changes only through here). */
class CachedRow<T> {
  private value: T | undefined;
  private loaded = false;

  constructor(
    private readonly vault: CredentialVault | undefined,
    private readonly key: CredentialKey,
  ) {}

  async get(): Promise<T | undefined> {
    if (!this.loaded && this.vault) this.value = (await this.vault.get<T>(this.key))?.value;
    this.loaded = true;
    return this.value;
  }

  async set(value: T): Promise<void> {
    this.value = value;
    this.loaded = true;
    await this.vault?.put(this.key, value);
  }

  async forget(): Promise<void> {
    this.value = undefined;
    this.loaded = true;
    await this.vault?.delete(this.key);
  }
}

export class TargetRecords {
  private readonly client: CachedRow<StoredOAuthClientInformation>;
  private readonly discovery: CachedRow<OAuthDiscoveryState>;
  /** What the upstream's latest 401 said (RFC 9728 resource_metadata, the scope it wants). */
  hint: { resourceMetadataUrl?: string; scope?: string } = {};
  /**
   * The issuer the SDK bound the pre-registered client to on first use (SEP-2352), when config
   * names none. Memory only: the client's secret is part of that record.
   */
  preRegisteredIssuer: string | undefined;

  constructor(
    vault: CredentialVault | undefined,
    readonly tenant: string,
    readonly target: string,
  ) {
    // Target-wide rows: the registration and the discovery belong to the gateway, not to a user.
    this.client = new CachedRow(vault, { tenant, target, subject: 'service', kind: 'oauth-client' });
    this.discovery = new CachedRow(vault, { tenant, target, subject: 'service', kind: 'oauth-discovery' });
  }

  registeredClient(): Promise<StoredOAuthClientInformation | undefined> {
    return this.client.get();
  }

  saveClient(info: StoredOAuthClientInformation): Promise<void> {
    return this.client.set(info);
  }

  forgetClient(): Promise<void> {
    return this.client.forget();
  }

  discoveryState(): Promise<OAuthDiscoveryState | undefined> {
    return this.discovery.get();
  }

  saveDiscovery(state: OAuthDiscoveryState): Promise<void> {
    return this.discovery.set(state);
  }

  forgetDiscovery(): Promise<void> {
    return this.discovery.forget();
  }
}

/**
 * How long the in-memory copy of a token row is trusted before the hot path reads the row
 * again: a row deleted or marked elsewhere (the admin API, another gateway instance) stops
 * being used within this time even when nobody calls `invalidate`.
 */
export const REVALIDATE_MS = 5_000;

/** When to try a refresh: `leadMs` before expiry; never for a token nothing can renew. */
export interface RefreshTiming {
  leadMs: number;
  /** Whether this slot can renew without a refresh token (client credentials, token exchange). */
  reacquirable: boolean;
}

/**
 * One target × subject's tokens: the vault row, and an in-memory copy the hot path reads
 * without I/O. `status` mirrors the row's (`needs-consent` after a refused refresh).
 */
export class TokenSlot {
  current: UpstreamTokens | undefined;
  status: CredentialStatus | undefined;
  failures = 0;
  /** Epoch ms before which no renewal is tried again after a failure (backoff). */
  retryAfter = 0;
  private loaded: boolean;
  private loading: Promise<void> | undefined;
  /** Epoch ms the row was last read or written. */
  private checkedAt = -Infinity;
  /**
   * Set when the credential was revoked (an operator's DELETE): a renewal already on the wire
   * must not write its answer back into the vault, or the revoked user would be connected again.
   */
  private retired = false;

  constructor(
    private readonly vault: CredentialVault | undefined,
    readonly key: CredentialKey,
    private readonly clock: Clock,
    private readonly timing: RefreshTiming,
  ) {
    this.loaded = vault === undefined;
  }

  /** Whether the row was read: until then the hot path takes the slow (async) way. */
  get isLoaded(): boolean {
    return this.loaded;
  }

  /** Read the row once (concurrent callers share the read; a failed read is tried again next time). */
  ensureLoaded(): Promise<void> {
    if (this.loaded) return Promise.resolve();
    this.loading ??= this.reload().then(
      () => {
        this.loaded = true;
      },
      (err: unknown) => {
        this.loading = undefined;
        throw err;
      },
    );
    return this.loading;
  }

  /** Whether the in-memory copy may be used without reading the row again (always, without a vault). */
  isCurrent(now: number): boolean {
    return this.vault === undefined || now - this.checkedAt < REVALIDATE_MS;
  }

  /** The row changed elsewhere: read it before the next use. */
  markStale(): void {
    this.checkedAt = -Infinity;
  }

  /** Read the row again (another gateway instance may have renewed it, an operator deleted it). */
  async reload(): Promise<void> {
    if (this.vault === undefined) return;
    const now = this.clock.now();
    const row = await this.vault.get<UpstreamTokens>(this.key);
    this.checkedAt = now;
    this.current = row?.value;
    this.status = row?.meta.status;
    this.failures = row?.meta.failures ?? 0;
    this.retryAfter = row !== undefined && row.meta.failures > 0 ? (row.meta.refreshAt ?? 0) : 0;
  }

  /** Store tokens the SDK obtained; `expires_in` becomes an absolute expiry here. */
  async save(tokens: StoredOAuthTokens, context: { requestedScope?: string | undefined; resource?: string | undefined }): Promise<UpstreamTokens> {
    const now = this.clock.now();
    const expiresAt = typeof tokens.expires_in === 'number' ? now + tokens.expires_in * 1000 : undefined;
    const stored: UpstreamTokens = {
      ...tokens,
      obtainedAt: now,
      ...(expiresAt === undefined ? {} : { expiresAt }),
      ...(context.requestedScope === undefined ? {} : { requestedScope: context.requestedScope }),
      ...(context.resource === undefined ? {} : { resource: context.resource }),
    };
    const renewable = stored.refresh_token !== undefined || this.timing.reacquirable;
    const refreshAt = expiresAt !== undefined && renewable ? Math.max(now, expiresAt - this.timing.leadMs) : null;
    this.current = stored;
    this.status = 'active';
    this.failures = 0;
    this.retryAfter = 0;
    this.loaded = true;
    this.checkedAt = now;
    if (this.retired) return stored;
    await this.vault?.put(this.key, stored, { status: 'active', expiresAt: expiresAt ?? null, refreshAt, failures: 0, lastError: null });
    return stored;
  }

  /** A refused refresh: the user must authorize again. The tokens stay for the admin view; headers() stops using them. */
  async needsConsent(reason: string): Promise<void> {
    this.status = 'needs-consent';
    await this.vault?.mark(this.key, { status: 'needs-consent', lastError: reason, refreshAt: null });
  }

  /** A failed renewal worth retrying: back off (doubling from `initialMs` up to `maxMs`). */
  async failed(reason: string, backoff: { initialMs: number; maxMs: number }): Promise<number> {
    this.failures += 1;
    const delay = Math.min(backoff.maxMs, backoff.initialMs * 2 ** (this.failures - 1));
    this.retryAfter = this.clock.now() + delay;
    await this.vault?.mark(this.key, { failures: this.failures, lastError: reason, refreshAt: this.retryAfter });
    return this.failures;
  }

  /** The credential is revoked: forget the tokens, and never write this slot's row again. */
  async clear(): Promise<void> {
    this.retired = true;
    this.current = undefined;
    this.status = undefined;
    this.failures = 0;
    this.retryAfter = 0;
    this.loaded = true;
  }
}

/** What one flow (one `auth()` call) needs beyond the stored records. */
export interface ProviderFlow {
  /** The MCP endpoint: the default resource indicator. */
  serverUrl: string;
  clientMetadata: OAuthClientMetadata;
  clientMetadataUrl?: string | undefined;
  /** Pre-registered client (config), never written to the vault. */
  preRegistered?: StoredOAuthClientInformation | undefined;
  addClientAuthentication?: AddClientAuthentication | undefined;
  /** Interactive (authorization code) flows: the redirect URI, state and, on the callback leg, verifier and discovery. */
  redirectUrl?: string | undefined;
  state?: string | undefined;
  codeVerifier?: string | undefined;
  discovery?: OAuthDiscoveryState | undefined;
  /** Ignore stored discovery (begin of a consent: find the authorization server afresh). */
  freshDiscovery?: boolean | undefined;
  /** Non-interactive flows: the grant. */
  grant?: TokenGrant | undefined;
  /** Recorded with the tokens as the scope asked for. */
  requestedScope?: string | undefined;
}

/** One flow's provider: the SDK reads and writes through it. */
export class VaultOAuthProvider implements OAuthClientProvider {
  /** Captured from the flow: where the browser goes, the verifier to keep, what discovery found. */
  authorizationUrl: URL | undefined;
  savedVerifier: string | undefined;
  savedDiscovery: OAuthDiscoveryState | undefined;
  issuer: string | undefined;
  resource: string | undefined;
  savedTokens: UpstreamTokens | undefined;
  /** The scope the SDK settled on for a non-interactive grant (scope selection). */
  grantScope: string | undefined;
  readonly addClientAuthentication?: AddClientAuthentication;
  private stampedPreRegistered: StoredOAuthClientInformation | undefined;

  constructor(
    private readonly records: TargetRecords,
    private readonly slot: TokenSlot,
    private readonly flow: ProviderFlow,
  ) {
    if (flow.addClientAuthentication !== undefined) this.addClientAuthentication = flow.addClientAuthentication;
    const stamp = records.preRegisteredIssuer;
    this.stampedPreRegistered = flow.preRegistered !== undefined && flow.preRegistered.issuer === undefined && stamp !== undefined ? { ...flow.preRegistered, issuer: stamp } : flow.preRegistered;
  }

  get redirectUrl(): string | undefined {
    return this.flow.redirectUrl;
  }

  get clientMetadataUrl(): string | undefined {
    return this.flow.clientMetadataUrl;
  }

  get clientMetadata(): OAuthClientMetadata {
    return this.flow.clientMetadata;
  }

  state(): string {
    if (this.flow.state === undefined) throw new Error('no state for this flow');
    return this.flow.state;
  }

  async clientInformation(ctx?: OAuthClientInformationContext): Promise<StoredOAuthClientInformation | undefined> {
    if (this.stampedPreRegistered !== undefined) {
      // Unbound (config names no authorization server): bound to the first one it is used with.
      if (this.stampedPreRegistered.issuer === undefined && ctx?.issuer !== undefined) {
        this.stampedPreRegistered = { ...this.stampedPreRegistered, issuer: ctx.issuer };
        this.records.preRegisteredIssuer = ctx.issuer;
      }
      return this.stampedPreRegistered;
    }
    const client = await this.records.registeredClient();
    // A registration made for another redirect URI (the public URL changed) cannot finish a
    // consent here: register again. CIMD client ids carry no redirect URIs of ours to compare.
    const redirect = this.flow.redirectUrl;
    if (client !== undefined && redirect !== undefined && 'redirect_uris' in client && !client.redirect_uris.includes(redirect)) return undefined;
    return client;
  }

  async saveClientInformation(info: StoredOAuthClientInformation): Promise<void> {
    // The SDK stamps the issuer onto pre-registered clients too: keep the stamp, never the record.
    if (this.flow.preRegistered !== undefined) {
      this.stampedPreRegistered = info;
      this.records.preRegisteredIssuer = info.issuer;
    } else await this.records.saveClient(info);
  }

  tokens(): UpstreamTokens | undefined {
    return this.slot.current;
  }

  async saveTokens(tokens: StoredOAuthTokens): Promise<void> {
    this.savedTokens = await this.slot.save(tokens, { requestedScope: this.flow.requestedScope ?? this.grantScope, resource: this.resource });
  }

  redirectToAuthorization(authorizationUrl: URL): void {
    this.authorizationUrl = authorizationUrl;
  }

  saveCodeVerifier(codeVerifier: string): void {
    this.savedVerifier = codeVerifier;
  }

  codeVerifier(): string {
    const verifier = this.flow.codeVerifier ?? this.savedVerifier;
    if (verifier === undefined) throw new Error('no code verifier for this flow');
    return verifier;
  }

  /**
   * RFC 8707: always send a resource (2025-11-25: "regardless of whether authorization servers
   * support it"). With protected resource metadata the SDK's own choice stands: the metadata's
   * `resource`, verbatim, after checking that it covers the MCP endpoint (a document naming
   * another resource is refused). Without metadata (2025-03-26 servers) the SDK would send
   * none, so this hook names the endpoint itself. A getter because the SDK sends a hook's URL
   * re-serialized (a pathless identifier gains a "/"), so the hook must be absent whenever
   * metadata was found; `auth()` looks it up after discovery.
   */
  get validateResourceURL(): ((serverUrl: string | URL, resource?: string) => Promise<URL | undefined>) | undefined {
    if (this.resourceMetadataFound) return undefined;
    return async (serverUrl) => new URL(String(serverUrl));
  }

  private resourceMetadataFound = false;

  saveAuthorizationServerUrl(issuer: string): void {
    this.issuer = issuer;
  }

  saveResourceUrl(resource: string): void {
    this.resource = resource;
  }

  async discoveryState(): Promise<OAuthDiscoveryState | undefined> {
    const state = this.flow.discovery ?? (this.flow.freshDiscovery === true ? undefined : await this.records.discoveryState());
    this.resourceMetadataFound = state?.resourceMetadata !== undefined;
    return state;
  }

  async saveDiscoveryState(state: OAuthDiscoveryState): Promise<void> {
    this.resourceMetadataFound = state.resourceMetadata !== undefined;
    this.savedDiscovery = state;
    await this.records.saveDiscovery(state);
  }

  async invalidateCredentials(scope: 'all' | 'client' | 'tokens' | 'verifier' | 'discovery'): Promise<void> {
    // Tokens are never dropped on the SDK's say-so: the credential decides (needs-consent, refresh).
    if ((scope === 'client' || scope === 'all') && this.flow.preRegistered === undefined) await this.records.forgetClient();
    if (scope === 'discovery' || scope === 'all') await this.records.forgetDiscovery();
  }

  async prepareTokenRequest(scope?: string): Promise<URLSearchParams | undefined> {
    if (this.flow.grant === undefined) return undefined; // authorization code: the SDK's default request
    if (this.issuer === undefined) throw new Error('the authorization server is not known yet');
    this.grantScope = scope;
    return this.flow.grant(scope, { issuer: this.issuer, resource: this.resource });
  }
}

/** The vault key of a subject's tokens. */
export function tokenKey(tenant: string, target: string, subject: CredentialSubject): CredentialKey {
  return { tenant, target, subject, kind: 'oauth-tokens' };
}
