/**
 * The gateway as OAuth client of its upstreams (the third auth tier), built once per config
 * snapshot: a credential per target (static secret, client credentials) or per target × user
 * (authorization code, token exchange), the per-user consent flow the connect page drives,
 * and one pass of the refresh job. See upstream-credential.ts for the contract.
 *
 * Secrets (static secrets, client secrets and keys) are read here once; a secret that cannot
 * be read makes that target's credential fail closed (UPSTREAM_CREDENTIAL_UNAVAILABLE), not
 * the whole gateway. Nothing here logs or throws a token or a secret: errors carry a typed
 * reason (oauth-failure.ts).
 */
import type { FetchLike } from '@modelcontextprotocol/client';
import type { Clock } from '../clock.ts';
import type { GatehouseConfig, TargetConfig } from '../config/schema.ts';
import type { TargetCredentials } from '../config/credentials-schema.ts';
import { resolveSecret } from '../auth/oauth-clients.ts';
import { GatehouseError } from '../protocol/errors.ts';
import type { CredentialVault } from '../vault/credential-vault.ts';
import { createDiscoveryFetch } from './discovery-fetch.ts';
import { challengeParams, keepHint, OAuthCredential } from './oauth-credential.ts';
import { NO_CREDENTIAL_HEADERS } from './authorized-request.ts';
import { authorizationRequired, classifyFailure, credentialUnavailable } from './oauth-failure.ts';
import { buildStaticCredential } from './static-credential.ts';
import { revokeTokens } from './token-revocation.ts';
import {
  clientCredentialsGrant, gatewayAssertionGrant, idJagGrant, obtainWithoutUser, preRegisteredClient, refreshTokens,
  type FlowTarget, type PreRegisteredClient,
} from './token-grants.ts';
import type { UpstreamAuthorizations, UpstreamCredential, UserAuthorizationState, UserRef } from './upstream-credential.ts';
import { beginConsent, callbackParams, completeConsent, newState, unknownState, type ConsentClient } from './user-authorization.ts';
import { PENDING_TTL_MS, PendingAuthorizations } from './pending-authorizations.ts';
import { TargetRecords, TokenSlot, tokenKey, type TokenGrant } from './vault-oauth-provider.ts';
import { actsPerAgent, userKey, userOfSubject, userRefFor, userSubject } from './user-subject.ts';

export interface UpstreamAuthorizerDeps {
  /** Undefined when no vault keys are configured: `user-oauth` targets then fail closed. */
  vault: CredentialVault | undefined;
  clock: Clock;
  /** Where `secretRef.file` paths resolve from. */
  configDir: string;
  /** The gateway's public base URL (the `client_uri` of its registrations). */
  publicUrl: string;
  log(level: 'info' | 'warn', message: string, fields?: Record<string, unknown>): void;
  /** `tokenExchange.subjectToken: idp-id-token` (SEP-990): the user's ID token from the enterprise IdP, kept from their IdP login. */
  identityToken?(who: UserRef): Promise<string | undefined>;
  /** `tokenExchange.subjectToken: gateway-assertion`: a short-lived assertion of the user for `audience`, signed by the gateway. */
  subjectToken?(who: UserRef, audience: string): Promise<string>;
  /**
   * The consents in flight. Pass one store to every snapshot's authorizer so a config reload
   * does not strand users between the upstream's consent page and the callback; default: own.
   */
  pending?: PendingAuthorizations;
  /** Tests only: replaces the SSRF-guarded discovery fetch. */
  fetch?: FetchLike;
}

/** One `user-oauth` or `client-credentials` target. */
interface OAuthTarget extends FlowTarget {
  readonly tenant: string;
  readonly credentials: Extract<TargetCredentials, { mode: 'client-credentials' | 'user-oauth' }>;
  /** The pre-registered client with its secrets, or why it is unusable. */
  readonly client: PreRegisteredClient | undefined;
  readonly unusable: string | undefined;
  service: OAuthCredential | undefined;
  /** Per user (× agent at token-exchange targets), by `userKey`. */
  readonly users: Map<string, OAuthCredential>;
}

const CONCURRENT_REFRESHES = 4;
/** How long a refresh job pass holds a row it took (other replicas skip it meanwhile). */
const REFRESH_LEASE_MS = 60_000;

export function createUpstreamAuthorizer(config: GatehouseConfig, deps: UpstreamAuthorizerDeps): UpstreamAuthorizations & { close(): void } {
  const { vault, clock, log } = deps;
  const fetch = deps.fetch ?? createDiscoveryFetch({ allowLoopback: config.vault.allowLoopbackAuthorizationServers });
  const refresh = config.vault.refresh;
  const backoff = { initialMs: refresh.initialBackoffMs, maxMs: refresh.maxBackoffMs, maxFailures: refresh.maxFailures };
  const pending = deps.pending ?? new PendingAuthorizations(clock);
  const statics = new Map<string, UpstreamCredential>();
  const childEnv = new Map<string, Readonly<Record<string, string>> | string>();
  const oauth = new Map<string, OAuthTarget>();
  let closed = false;

  const secret = (ref: Parameters<typeof resolveSecret>[0], what: string): string => resolveSecret(ref, deps.configDir, what);

  for (const [name, target] of Object.entries(config.targets)) {
    const credentials = target.credentials;
    if (credentials.mode === 'static') {
      const built = buildStaticCredential(name, target, credentials, (ref, what) => secret(ref, what), log);
      if ('env' in built) childEnv.set(name, built.env);
      else statics.set(name, built.credential);
    }
    else if (credentials.mode === 'client-credentials' || credentials.mode === 'user-oauth') oauth.set(name, buildOAuthTarget(name, target, credentials));
  }

  function buildOAuthTarget(name: string, target: TargetConfig, credentials: OAuthTarget['credentials']): OAuthTarget {
    let unusable: string | undefined;
    let client: PreRegisteredClient | undefined;
    const where = `targets.${name}.credentials.client`;
    if (target.transport === 'stdio') unusable = 'OAuth credentials need an HTTP target';
    else if (credentials.client !== undefined) {
      try {
        client = preRegisteredClient(credentials.client, {
          secret: credentials.client.secret === undefined ? undefined : secret(credentials.client.secret, `${where}.secret`),
          privateKey: credentials.client.privateKey === undefined ? undefined : secret(credentials.client.privateKey, `${where}.privateKey`),
        }, credentials.authorizationServer);
      } catch (err) {
        unusable = err instanceof Error ? err.message : 'client secret unreadable';
      }
    }
    if (credentials.mode === 'user-oauth' && vault === undefined) unusable ??= 'per-user upstream OAuth needs the credential vault (vault.keys)';
    // Read now, like the client's secret: a token exchange that cannot authenticate at the IdP
    // would otherwise send every user round the connect page for nothing.
    const idpSecret = credentials.mode === 'user-oauth' ? credentials.tokenExchange?.idp?.clientSecret : undefined;
    if (idpSecret !== undefined && unusable === undefined) {
      try {
        secret(idpSecret, `targets.${name}.credentials.tokenExchange.idp.clientSecret`);
      } catch (err) {
        unusable = err instanceof Error ? err.message : 'IdP client secret unreadable';
      }
    }
    if (unusable !== undefined) log('warn', 'upstream OAuth credentials unusable; the target fails closed', { target: name, error: unusable });
    return {
      name, tenant: target.tenant, credentials, client, unusable,
      records: new TargetRecords(vault, target.tenant, name),
      serverUrl: target.transport === 'stdio' ? '' : target.url,
      fetch, service: undefined, users: new Map(),
    };
  }

  function slotFor(t: OAuthTarget, tenant: string, subject: 'service' | `user:${string}`, reacquirable: boolean): TokenSlot {
    return new TokenSlot(vault, tokenKey(tenant, t.name, subject), clock, { leadMs: refresh.leadSeconds * 1000, reacquirable });
  }

  function serviceOf(t: OAuthTarget): OAuthCredential {
    if (t.service !== undefined) return t.service;
    const slot = slotFor(t, t.tenant, 'service', true);
    const client = t.client;
    const credentials = t.credentials as Extract<TargetCredentials, { mode: 'client-credentials' }>;
    t.service = new OAuthCredential({
      target: t.name, kind: 'service', slot, records: t.records, clock, backoff, log,
      configScopes: credentials.scopes.length > 0 ? credentials.scopes : undefined,
      acquire: client === undefined ? undefined : (scope) => obtainWithoutUser(t, slot, client, clientCredentialsGrant, scope),
      refresh: (tokens) => refreshTokens(t, slot, client, tokens),
      fields: { subject: 'service' },
    });
    return t.service;
  }

  function exchangeGrant(t: OAuthTarget, who: UserRef): TokenGrant | undefined {
    const credentials = t.credentials;
    if (credentials.mode !== 'user-oauth' || credentials.tokenExchange === undefined || t.client === undefined) return undefined;
    const exchange = credentials.tokenExchange;
    if (exchange.subjectToken === 'gateway-assertion') {
      const mint = deps.subjectToken;
      return gatewayAssertionGrant({
        audience: exchange.audience,
        requestedTokenType: exchange.requestedTokenType,
        mint: (audience) => (mint === undefined ? Promise.reject(credentialUnavailable(t.name, 'the gateway has no assertion signer', 'no_signer')) : mint(who, audience)),
      });
    }
    const idp = exchange.idp!;
    return idJagGrant({
      target: t.name, client: t.client, fetch,
      idp: { tokenEndpoint: idp.tokenEndpoint, issuer: idp.issuer, clientId: idp.clientId, clientSecret: idp.clientSecret === undefined ? undefined : secret(idp.clientSecret, `targets.${t.name}.credentials.tokenExchange.idp.clientSecret`) },
      idToken: () => (deps.identityToken === undefined ? Promise.resolve(undefined) : deps.identityToken(who)),
    });
  }

  function userOf(t: OAuthTarget, who: UserRef): OAuthCredential {
    const key = userKey(who);
    const existing = t.users.get(key);
    if (existing !== undefined) return existing;
    const credentials = t.credentials as Extract<TargetCredentials, { mode: 'user-oauth' }>;
    let grant: TokenGrant | undefined;
    try {
      grant = exchangeGrant(t, who);
    } catch (err) {
      log('warn', 'token exchange unusable', { target: t.name, error: err instanceof Error ? err.message : 'error' });
    }
    const slot = slotFor(t, who.tenant, userSubject(who), grant !== undefined);
    const client = t.client;
    const credential = new OAuthCredential({
      target: t.name, kind: 'user', slot, records: t.records, clock, backoff, log,
      configScopes: credentials.scopes,
      acquire: grant === undefined || client === undefined ? undefined : (scope) => obtainWithoutUser(t, slot, client, grant, scope),
      refresh: (tokens) => refreshTokens(t, slot, client, tokens),
      fields: { tenant: who.tenant, user: who.user, ...(who.agent === undefined ? {} : { agent: who.agent }) },
    });
    t.users.set(key, credential);
    return credential;
  }

  function oauthTarget(name: string, mode: 'client-credentials' | 'user-oauth'): OAuthTarget {
    const t = oauth.get(name);
    if (t === undefined || t.credentials.mode !== mode) throw new GatehouseError('INTERNAL', `target ${name} does not use ${mode} credentials`);
    return t;
  }

  /** A credential that refuses every request (a target whose credentials cannot work). */
  function failClosed(name: string, why: string): UpstreamCredential {
    return {
      headers: () => Promise.reject(credentialUnavailable(name, why)),
      challenge: () => Promise.reject(credentialUnavailable(name, why)),
    };
  }

  function consentClient(t: OAuthTarget): ConsentClient {
    const credentials = t.credentials as Extract<TargetCredentials, { mode: 'user-oauth' }>;
    return { preRegistered: t.client, clientMetadataUrl: credentials.clientMetadataUrl, clientName: credentials.displayName ?? 'Gatehouse', clientUri: httpsOrUndefined(deps.publicUrl) };
  }

  return {
    probeCredential(target) {
      const t = oauth.get(target);
      if (t === undefined || t.credentials.mode !== 'user-oauth' || t.unusable !== undefined) return undefined;
      return {
        headers: () => NO_CREDENTIAL_HEADERS,
        challenge: async (_status, wwwAuthenticate) => {
          keepHint(t.records, challengeParams(wwwAuthenticate));
          throw authorizationRequired(target, 'not_authorized');
        },
      };
    },

    serviceCredential(target) {
      const fixed = statics.get(target);
      if (fixed !== undefined) return fixed;
      const t = oauth.get(target);
      if (t === undefined || t.credentials.mode !== 'client-credentials') return undefined;
      if (t.unusable !== undefined) return failClosed(target, t.unusable);
      if (t.client === undefined) return failClosed(target, 'client credentials need a client');
      return serviceOf(t);
    },

    userCredential(target, who) {
      const t = oauthTarget(target, 'user-oauth');
      if (who.tenant !== t.tenant) throw new GatehouseError('INTERNAL', `target ${target} belongs to another tenant`);
      if (t.unusable !== undefined) return failClosed(target, t.unusable);
      return userOf(t, userRefFor(t.credentials, who));
    },

    async userAuthorization(target, who): Promise<UserAuthorizationState> {
      const t = oauth.get(target);
      if (t === undefined || t.credentials.mode !== 'user-oauth' || vault === undefined) return 'absent';
      // Nothing to ask the user: the exchange itself answers (a token, or a typed refusal).
      if (exchangeGrantConfigured(t)) return 'active';
      const row = await vault.get(tokenKey(who.tenant, target, userSubject(userRefFor(t.credentials, who))));
      if (row === undefined) return 'absent';
      if (row.meta.status !== 'active') return 'needs-consent';
      // An expired token with nothing to renew it is no longer usable.
      const value = row.value as { refresh_token?: unknown };
      const expired = row.meta.expiresAt !== null && row.meta.expiresAt <= clock.now();
      return expired && value.refresh_token === undefined && exchangeGrantConfigured(t) === false ? 'needs-consent' : 'active';
    },

    async authorizedUsers(target, tenant) {
      const t = oauth.get(target);
      if (vault === undefined || t === undefined) return [];
      const rows = await vault.list({ tenant, target, kind: 'oauth-tokens' });
      const perAgent = actsPerAgent(t.credentials);
      return rows
        .filter((row) => row.meta.status === 'active')
        .flatMap((row) => userOfSubject(row.key.tenant, row.key.subject, perAgent) ?? []);
    },

    async beginUserAuthorization(target, who, options) {
      if (closed) throw new GatehouseError('SHUTTING_DOWN', 'the upstream authorizer is closed');
      const t = oauthTarget(target, 'user-oauth');
      if (who.tenant !== t.tenant) throw new GatehouseError('INTERNAL', `target ${target} belongs to another tenant`);
      if (t.unusable !== undefined) throw credentialUnavailable(target, t.unusable);
      if (exchangeGrantConfigured(t)) throw new GatehouseError('INVALID_REQUEST', `target ${target} obtains user tokens by token exchange, without a consent`);
      const credential = userOf(t, userRefFor(t.credentials, who));
      const configured = (t.credentials as Extract<TargetCredentials, { mode: 'user-oauth' }>).scopes;
      const scopes = options.scopes ?? credential.stepUpScopes ?? configured;
      const scope = scopes !== undefined && scopes.length > 0 ? scopes.join(' ') : t.records.hint.scope;
      const state = newState();
      let begun: Awaited<ReturnType<typeof beginConsent>>;
      try {
        begun = await beginConsent(t, credential.slot, consentClient(t), { redirectUri: options.redirectUri, scope, state });
      } catch (err) {
        if (err instanceof GatehouseError) throw err;
        const failure = classifyFailure(err);
        log('warn', 'starting an upstream authorization failed', { target, tenant: who.tenant, user: who.user, reason: failure.reason });
        throw credentialUnavailable(target, 'starting the upstream authorization failed', failure.reason);
      }
      pending.add(state, { target, who: { tenant: who.tenant, user: who.user }, redirectUri: options.redirectUri, codeVerifier: begun.codeVerifier, discovery: begun.discovery, scope: begun.scope, expiresAt: clock.now() + PENDING_TTL_MS });
      return { authorizationUrl: begun.authorizationUrl.href };
    },

    async completeUserAuthorization(callbackUrl) {
      const params = callbackParams(callbackUrl);
      const flow = params.state === undefined ? undefined : pending.take(params.state);
      if (flow === undefined) throw unknownState();
      const t = oauth.get(flow.target);
      if (t === undefined || t.credentials.mode !== 'user-oauth' || t.unusable !== undefined) throw unknownState();
      const fields = { target: flow.target, tenant: flow.who.tenant, user: flow.who.user };
      if (params.error !== undefined || params.code === undefined) {
        log('warn', 'upstream authorization refused', { ...fields, reason: params.error ?? 'no_code' });
        throw authorizationRequired(flow.target, 'not_authorized');
      }
      const credential = userOf(t, flow.who);
      try {
        await completeConsent(t, credential.slot, consentClient(t), flow, params.code, params.iss);
      } catch (err) {
        const failure = classifyFailure(err);
        log('warn', 'redeeming an upstream authorization failed', { ...fields, reason: failure.reason });
        if (failure.kind === 'consent') throw authorizationRequired(flow.target, 'not_authorized');
        throw credentialUnavailable(flow.target, 'redeeming the upstream authorization failed', failure.reason);
      }
      credential.stepUpScopes = undefined;
      log('info', 'user authorized the gateway at an upstream', fields);
      return { target: flow.target, who: flow.who };
    },

    async disconnectUser(target, whoever) {
      const t = oauth.get(target);
      if (t === undefined || vault === undefined) return false;
      const who = userRefFor(t.credentials, whoever);
      const credential = userOf(t, who);
      try {
        await credential.slot.ensureLoaded();
        const tokens = credential.slot.current;
        if (tokens !== undefined) {
          const status = await revokeTokens(t, t.client, tokens);
          if (status !== undefined) log(status < 300 ? 'info' : 'warn', 'upstream token revocation', { target, tenant: who.tenant, user: who.user, status });
        }
      } catch (err) {
        log('warn', 'upstream token revocation failed', { target, tenant: who.tenant, user: who.user, reason: classifyFailure(err).reason });
      }
      const removed = await vault.deleteWhere({ tenant: who.tenant, target, subject: userSubject(who) });
      await credential.forget();
      t.users.delete(userKey(who));
      return removed > 0;
    },

    childEnvironment(target) {
      const env = childEnv.get(target);
      if (env === undefined) return {};
      if (typeof env === 'string') throw credentialUnavailable(target, 'the static secret is not available', 'secret_unavailable');
      return env;
    },

    async refreshDue() {
      const totals = { refreshed: 0, failed: 0, needsConsent: 0 };
      if (vault === undefined || closed) return totals;
      const due = await vault.due(clock.now());
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < due.length && !closed) {
          const row = due[next++]!;
          const t = oauth.get(row.key.target);
          if (t === undefined || t.unusable !== undefined || t.tenant !== row.key.tenant) {
            // No longer configured (or unusable): park the row instead of meeting it every pass.
            await vault.mark(row.key, { refreshAt: null }).catch(() => undefined);
            continue;
          }
          const subject = row.key.subject;
          const who = t.credentials.mode === 'user-oauth' ? userOfSubject(row.key.tenant, subject, actsPerAgent(t.credentials)) : undefined;
          const credential = subject === 'service'
            ? (t.credentials.mode === 'client-credentials' && t.client !== undefined ? serviceOf(t) : undefined)
            : (who === undefined ? undefined : userOf(t, who));
          if (credential === undefined) {
            await vault.mark(row.key, { refreshAt: null }).catch(() => undefined);
            continue;
          }
          // A lease, not a lock: a replica that dies mid-refresh leaves the row to the next pass after it.
          if (row.meta.refreshAt === null || !(await vault.claim(row.key, row.meta.refreshAt, clock.now() + REFRESH_LEASE_MS))) continue;
          const outcome = await credential.renewForJob();
          if (outcome === 'refreshed') totals.refreshed++;
          else if (outcome === 'needs-consent') totals.needsConsent++;
          else if (outcome === 'failed') totals.failed++;
          else await vault.mark(row.key, { refreshAt: null }).catch(() => undefined);
        }
      };
      await Promise.all(Array.from({ length: Math.min(CONCURRENT_REFRESHES, due.length) }, worker));
      return totals;
    },

    invalidate(filter) {
      for (const t of oauth.values()) {
        if (filter.target !== undefined && filter.target !== t.name) continue;
        if (t.service !== undefined && (filter.subject === undefined || filter.subject === 'service') && (filter.tenant === undefined || filter.tenant === t.tenant)) t.service.slot.markStale();
        for (const credential of t.users.values()) {
          const key = credential.slot.key;
          if ((filter.subject === undefined || filter.subject === key.subject) && (filter.tenant === undefined || filter.tenant === key.tenant)) credential.slot.markStale();
        }
      }
    },

    close() {
      closed = true;
      for (const t of oauth.values()) t.users.clear();
    },
  };
}

function exchangeGrantConfigured(t: OAuthTarget): boolean {
  return t.credentials.mode === 'user-oauth' && t.credentials.tokenExchange !== undefined;
}

function httpsOrUndefined(url: string): string | undefined {
  try {
    return new URL(url).protocol === 'https:' ? url : undefined;
  } catch {
    return undefined;
  }
}
