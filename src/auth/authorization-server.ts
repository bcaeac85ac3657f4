/**
 * The gateway as an OAuth 2.1 authorization server (oidc-provider, a Koa app, mounted on the
 * raw Node request under `/oauth`). It issues RFC 9068 JWT access tokens for the gateway's
 * resource URLs, keeps its state in the gateway database, and tells the resource server which
 * keys verify tokens and which tokens or grants are revoked.
 *
 * Access token format (the resource server verifies exactly this): header `typ: at+jwt`,
 * `alg: ES256`, `kid`; claims `iss` (the issuer), `aud` (one resource URL, a string), `sub`
 * (user id, or the client id for client credentials), `client_id`, `scope`, `jti`, `iat`,
 * `exp`, `tenant`, `roles` (string array) and `gid` (grant id) when the token came from a grant.
 *
 * oidc-provider is imported lazily: it prints a runtime warning on Node 20 at import, and a
 * gateway without `auth.mode: oauth` never needs it.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import type { JSONWebKeySet } from 'jose';
import type { KoaContextWithOIDC, Provider } from 'oidc-provider';
import { repeatEvery, type Clock } from '../clock.ts';
import type { GatehouseConfig } from '../config/schema.ts';
import type { GatewayLogger } from '../telemetry/log.ts';
import type { OAuthStore, StoredAccount } from '../storage/oauth-store.ts';
import { answerNoLogin, INTERACTION_PREFIX, type InteractionHandler } from './interaction.ts';
import { SigningKeys, loadCookieKeys, SIGNING_ALG } from './oauth-keys.ts';
import { RevocationList } from './oauth-revocations.ts';
import { staticClients, TENANT_MISMATCH } from './oauth-clients.ts';
import { providerConfiguration, REGISTRATION_BODY_LIMIT } from './oauth-provider-config.ts';
import { installRevocationHooks } from './oauth-revocation-endpoint.ts';
import { resourceUrls } from './oauth-resources.ts';
import { connectClients, createBrowserIdentity, type BrowserIdentity } from './connect-identity.ts';

/** An account of a human user, as the IdP login last wrote it. */
export interface OAuthAccount {
  readonly id: string;
  readonly tenant: string;
  readonly roles: string[];
  /** Profile claims (name, email, …) served in ID tokens; never secrets. */
  readonly claims: Record<string, unknown>;
}

export interface MintAccessTokenInput {
  clientId: string;
  sub: string;
  tenant: string;
  roles: string[];
  /** Space-separated scopes. */
  scope: string;
  /** One of the gateway's resource URLs; anything else throws invalid_target. */
  resource: string;
  gid?: string;
}

/**
 * A subject token for RFC 8693 token exchange at an upstream's authorization server (upstream
 * targets with `tokenExchange.subjectToken: gateway-assertion`): the gateway asserts that the
 * user is calling, through that agent, for that audience only.
 */
export interface SubjectAssertionInput {
  tenant: string;
  user: string;
  /** The agent (OAuth client id) acting for the user: the assertion's `act.sub`. */
  agent?: string | undefined;
  /** The upstream authorization server (its issuer, or the configured `tokenExchange.audience`). */
  audience: string;
}

/**
 * Lifetime of a subject assertion: it is presented once, at once, so minutes would only widen
 * the window for a copy (and stays within the 5 minutes upstreams commonly allow).
 */
export const SUBJECT_ASSERTION_TTL_SECONDS = 120;
/** The assertion's `typ`: a plain JWT, so it can never pass as one of the gateway's `at+jwt` access tokens. */
export const SUBJECT_ASSERTION_TYP = 'JWT';

export interface AuthorizationServer {
  /** `${publicBase}/oauth`. */
  readonly issuer: string;
  /** Every resource URL (token audience) the AS issues for. */
  readonly resources: readonly string[];
  /**
   * Serve the request if it belongs to the AS (paths under `/oauth/`,
   * `/.well-known/oauth-authorization-server/oauth`, `/.well-known/openid-configuration/oauth`);
   * resolves false, without touching the request, when it does not.
   */
  handle(req: IncomingMessage, res: ServerResponse): Promise<boolean>;
  /** Public keys that verify access tokens (current and not-yet-expired retired keys). */
  verificationKeys(): JSONWebKeySet;
  /** Synchronous, in memory: is this access token (jti) or its grant (gid) revoked? */
  isRevoked(claims: { jti?: string | undefined; gid?: string | undefined }): boolean;
  /** Record a revocation of a token (jti) or grant (gid) that stays until `expiresAt` (ms). */
  revoke(kind: 'jti' | 'gid', id: string, expiresAt: number): Promise<void>;
  /** Mint an access token in the exact format above (custom grants: ID-JAG, token exchange). */
  mintAccessToken(input: MintAccessTokenInput): Promise<{ token: string; expiresIn: number; jti: string }>;
  /**
   * Sign a subject assertion with the current signing key (verifiable at `<issuer>/jwks`):
   * header `typ: JWT`, `alg: ES256`, `kid`; claims `iss` (the issuer), `sub` (the user), `aud`
   * (the audience, a string), `iat`, `exp` (+ SUBJECT_ASSERTION_TTL_SECONDS), `jti`, `tenant`,
   * and `act: { sub: <agent> }` when the agent is known. Not an access token for any resource.
   */
  mintSubjectAssertion(input: SubjectAssertionInput): Promise<string>;
  /** Human users: the IdP login writes here; tokens take tenant and roles from here. */
  readonly accounts: {
    upsert(account: OAuthAccount): Promise<void>;
    find(id: string): Promise<OAuthAccount | undefined>;
  };
  /** Proves which user a browser belongs to, for the upstream connect page (connect-identity.ts). */
  readonly browserIdentity: BrowserIdentity;
  /** The oidc-provider instance (interaction handler: interactionDetails/Finished, Grant; custom grants: registerGrantType). */
  readonly provider: Provider;
  /** Generate a new signing key; the old one keeps verifying until tokens it signed have expired. */
  rotateSigningKeys(): Promise<{ kid: string }>;
  close(): Promise<void>;
}

export interface AuthorizationServerOptions {
  config: GatehouseConfig;
  /** `auth.publicUrl` without trailing slash, or `http://<host>:<bound port>` (see publicBaseOf). */
  publicBase: string;
  /** The OAuth tables: `sqlStore.oauthStore()`. */
  store: OAuthStore;
  /** Where `secretRef.file` and `jwks.file` paths resolve from. */
  configDir: string;
  clock: Clock;
  logger: GatewayLogger;
  interactions?: InteractionHandler | undefined;
  /** Tests only: extra CA certificates the metadata fetcher trusts (a self-signed loopback server). */
  metadataFetchCa?: string | Buffer;
}

const MAINTENANCE_INTERVAL_MS = 10 * 60_000;
/** How often the signing keys are re-read from the database (rotation by another replica). */
const KEY_RELOAD_INTERVAL_MS = 5_000;

export async function createAuthorizationServer(options: AuthorizationServerOptions): Promise<AuthorizationServer> {
  const { config, clock, logger, store } = options;
  const base = options.publicBase.replace(/\/+$/, '');
  const issuerPath = '/oauth';
  const issuer = `${base}${issuerPath}`;
  const publicUrl = new URL(base);
  const resources = resourceUrls(config, base);
  const resourceSet = new Set(resources);
  const atTtlMs = config.auth.accessTokenTtlSeconds * 1000;
  // A retired key must verify every token it signed: access tokens and ID tokens share the TTL.
  const keys = await SigningKeys.load(store, clock, atTtlMs);
  const cookieKeys = await loadCookieKeys(store, clock);
  const revocations = await RevocationList.load(store, clock);
  const clients = staticClients(config.auth, options.configDir);
  clients.metadata.push(...connectClients(config.auth.tenants, base, Object.keys(config.auth.clients)));

  const oidc = await import('oidc-provider');
  const signingKey = new (class extends oidc.ExternalSigningKey {
    // One slot that always names and uses the current key, so rotation needs no new provider.
    override get kid(): string {
      return keys.current().kid;
    }
    override set kid(_value: string | undefined) {}
    override get alg(): string {
      return SIGNING_ALG;
    }
    override set alg(_value: string | undefined) {}
    override get kty(): string {
      return 'EC';
    }
    override get crv(): string {
      return 'P-256';
    }
    override get x(): string | undefined {
      return keys.current().publicJwk.x;
    }
    override get y(): string | undefined {
      return keys.current().publicJwk.y;
    }
    override keyObject() {
      return keys.current().publicKey;
    }
    override async sign(data: Buffer): Promise<Buffer> {
      return keys.signCurrent(data).signature;
    }
  })();

  const findAccount = (id: string): Promise<StoredAccount | undefined> => store.findAccount(id);
  const provider = new oidc.Provider(
    issuer,
    providerConfiguration({
      config,
      issuerPath,
      store,
      clock,
      resources: resourceSet,
      clients,
      cookieKeys,
      signingKey,
      errors: oidc.errors,
      findAccount,
      metadataFetch: { allowLoopback: config.auth.registration.allowLoopbackMetadata, ca: options.metadataFetchCa },
    }),
  );
  // handle() overwrites the forwarded headers from publicBase, so trusting them is safe and
  // makes every URL oidc-provider derives (metadata, redirects, cookies' Secure) match the issuer.
  provider.proxy = true;
  installRevocationHooks({ provider, keys, revocations, issuer, clock, accessTokenTtlMs: atTtlMs, logger, errors: oidc.errors });
  // A client refused a user (or an ID-JAG issuer) of another tenant: worth an operator's eye.
  // The client id and the OAuth error only; never a code, token, assertion or secret.
  const logTenantRefusal = (ctx: unknown, err: unknown): void => {
    if (!(err instanceof Error) || (err as { error_description?: unknown }).error_description !== TENANT_MISMATCH) return;
    const oidcCtx = (ctx as Partial<KoaContextWithOIDC> | undefined)?.oidc;
    const clientId = oidcCtx?.client?.clientId ?? oidcCtx?.params?.['client_id'];
    logger.warn({ kind: 'auth', client_id: typeof clientId === 'string' ? clientId : undefined, error: (err as { error?: unknown }).error }, 'oauth: refused a user of another tenant than the client');
  };
  provider.on('authorization.error', logTenantRefusal);
  provider.on('grant.error', logTenantRefusal);
  provider.on('server_error', (_ctx, err) => {
    logger.error({ err: err instanceof Error ? { name: err.name, message: err.message } : 'unknown' }, 'oauth: internal error');
  });
  const callback = provider.callback();

  let closed = false;
  const warn = (what: string) => (err: unknown): void => logger.warn({ err: err instanceof Error ? err.message : 'unknown' }, `oauth: ${what} failed`);
  const stopMaintenance = repeatEvery(clock, MAINTENANCE_INTERVAL_MS, () => store.pruneModels(clock.now()), warn('pruning expired rows'));
  // Replicas on one database: a key rotated elsewhere becomes current here within an interval
  // (until then this replica refuses tokens signed with the new key: rotate when idle, or
  // accept that window). The revocation list polls the same way (oauth-revocations.ts).
  const stopKeyReload = repeatEvery(clock, KEY_RELOAD_INTERVAL_MS, () => keys.reload(), warn('re-reading the signing keys'));

  const forwardedProto = publicUrl.protocol.slice(0, -1);
  async function handle(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    if (closed) return false;
    const original = req.url ?? '/';
    const queryAt = original.indexOf('?');
    const pathname = queryAt === -1 ? original : original.slice(0, queryAt);
    const query = queryAt === -1 ? '' : original.slice(queryAt);
    let inner: string;
    if (pathname === '/.well-known/oauth-authorization-server/oauth' || pathname === '/.well-known/openid-configuration/oauth') {
      inner = '/.well-known/openid-configuration';
    } else if (pathname === issuerPath || pathname.startsWith(`${issuerPath}/`)) {
      inner = pathname.slice(issuerPath.length) || '/';
    } else {
      return false;
    }
    if (inner === '/jwks') {
      answerJson(res, 200, keys.verificationKeys());
      return true;
    }
    if (inner.startsWith(INTERACTION_PREFIX)) {
      const rest = inner.slice(INTERACTION_PREFIX.length);
      const slash = rest.indexOf('/');
      const uid = slash === -1 ? rest : rest.slice(0, slash);
      if (options.interactions === undefined) {
        answerNoLogin(res);
        return true;
      }
      await options.interactions.handle({ provider, req, res, uid, subpath: slash === -1 ? '' : rest.slice(slash), issuer });
      return true;
    }
    if (inner === '/reg' && req.method === 'POST') {
      const length = req.headers['content-length'];
      if (length === undefined) {
        answerJson(res, 411, { error: 'invalid_request', error_description: 'registration requests need a Content-Length' });
        return true;
      }
      if (Number(length) > REGISTRATION_BODY_LIMIT) {
        answerJson(res, 413, { error: 'invalid_client_metadata', error_description: `client metadata larger than ${REGISTRATION_BODY_LIMIT} bytes` });
        return true;
      }
    }
    req.headers['host'] = publicUrl.host;
    req.headers['x-forwarded-host'] = publicUrl.host;
    req.headers['x-forwarded-proto'] = forwardedProto;
    // oidc-provider derives its mount path from originalUrl minus url.
    (req as IncomingMessage & { originalUrl?: string }).originalUrl = `${issuerPath}${inner}${query}`;
    req.url = `${inner}${query}`;
    await new Promise<void>((resolve) => {
      res.once('close', resolve);
      res.once('finish', resolve);
      callback(req, res);
    });
    return true;
  }

  async function mintAccessToken(input: MintAccessTokenInput): Promise<{ token: string; expiresIn: number; jti: string }> {
    if (!resourceSet.has(input.resource)) throw new oidc.errors.InvalidTarget('the resource is not served by this gateway');
    const iat = Math.floor(clock.now() / 1000);
    const expiresIn = config.auth.accessTokenTtlSeconds;
    const jti = randomBytes(32).toString('base64url');
    const payload: Record<string, unknown> = {
      iss: issuer,
      aud: input.resource,
      sub: input.sub,
      client_id: input.clientId,
      scope: input.scope,
      jti,
      iat,
      exp: iat + expiresIn,
      tenant: input.tenant,
      roles: input.roles,
      ...(input.gid === undefined ? {} : { gid: input.gid }),
    };
    return { token: signJwt('at+jwt', payload), expiresIn, jti };
  }

  /** A compact JWS over `payload` with the current key. */
  function signJwt(typ: string, payload: Record<string, unknown>): string {
    const current = keys.current();
    const encode = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');
    const signingInput = `${encode({ alg: SIGNING_ALG, typ, kid: current.kid })}.${encode(payload)}`;
    const { signature } = keys.signCurrent(Buffer.from(signingInput));
    return `${signingInput}.${signature.toString('base64url')}`;
  }

  async function mintSubjectAssertion(input: SubjectAssertionInput): Promise<string> {
    if (input.audience === '' || input.user === '') throw new Error('a subject assertion needs a user and an audience');
    const iat = Math.floor(clock.now() / 1000);
    return signJwt(SUBJECT_ASSERTION_TYP, {
      iss: issuer,
      sub: input.user,
      aud: input.audience,
      iat,
      exp: iat + SUBJECT_ASSERTION_TTL_SECONDS,
      jti: randomBytes(32).toString('base64url'),
      tenant: input.tenant,
      ...(input.agent === undefined ? {} : { act: { sub: input.agent } }),
    });
  }

  return {
    issuer,
    resources,
    handle,
    verificationKeys: () => keys.verificationKeys(),
    isRevoked: (claims) => revocations.isRevoked(claims),
    revoke: (kind, id, expiresAt) => revocations.revoke(kind, id, expiresAt),
    mintAccessToken,
    mintSubjectAssertion,
    accounts: {
      upsert: (account) => store.upsertAccount({ id: account.id, tenant: account.tenant, roles: [...account.roles], claims: account.claims, updatedAt: clock.now() }),
      find: async (id) => {
        const row = await store.findAccount(id);
        return row === undefined ? undefined : { id: row.id, tenant: row.tenant, roles: row.roles, claims: row.claims };
      },
    },
    provider,
    browserIdentity: createBrowserIdentity({ provider, issuer, publicBase: base, tenants: config.auth.tenants, accounts: { find: (id) => store.findAccount(id) } }),
    rotateSigningKeys: () => keys.rotate(),
    async close() {
      if (closed) return;
      closed = true;
      stopMaintenance();
      stopKeyReload();
      revocations.close();
    },
  };
}

function answerJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
