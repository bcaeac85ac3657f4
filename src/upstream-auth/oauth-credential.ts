/**
 * An OAuth access token as an `UpstreamCredential`: the gateway's own (client credentials) or
 * one user's (authorization code, or token exchange). `headers()` answers from memory on the
 * hot path; renewal (refresh token, or obtaining a new token when no user is needed) happens
 * before expiry, on a 401, and in the refresh job, one attempt at a time per credential.
 *
 * Loop guards, because an upstream that keeps refusing must not make the gateway spin:
 * - A 401 for a token younger than RETRY_WINDOW_MS says "retry": the refused request most
 *   likely carried the token this one replaced (requests overlap renewals). The transport
 *   retries once only, so this cannot loop.
 * - A 401 for a token younger than FRESH_TOKEN_MS is final: a token just obtained and already
 *   refused will not be fixed by another renewal (user: re-consent; service: operator).
 * - A 403 `insufficient_scope` naming only scopes that were already asked for is final (the
 *   spec's retry limit for step-up, 2025-11-25 "Step-Up Authorization Flow"): it answers
 *   false, and the upstream's 403 reaches the caller as it is.
 * - After a failed renewal, none is tried again before the backoff (vault.refresh) elapses.
 */
import { extractWWWAuthenticateParams } from '@modelcontextprotocol/client';
import type { Clock } from '../clock.ts';
import { GatehouseError } from '../protocol/errors.ts';
import { authorizationRequired, classifyFailure, credentialUnavailable, type OAuthFailure } from './oauth-failure.ts';
import type { UpstreamCredential } from './upstream-credential.ts';
import type { TargetRecords, TokenSlot, UpstreamTokens } from './vault-oauth-provider.ts';

/** A token this young, refused: the request probably carried its predecessor; retry with it. */
export const RETRY_WINDOW_MS = 2_000;
/** A token this young, refused outside the retry window: renewing again will not help. */
export const FRESH_TOKEN_MS = 30_000;
/** Renew a token this close to its expiry before sending it. */
export const EXPIRY_SKEW_MS = 10_000;

const NO_HEADERS: Readonly<Record<string, string>> = Object.freeze({});

export interface OAuthCredentialOptions {
  readonly target: string;
  /** `user`: a user can be asked to authorize (again); `service`: only an operator can fix a refusal. */
  readonly kind: 'service' | 'user';
  readonly slot: TokenSlot;
  readonly records: TargetRecords;
  readonly clock: Clock;
  readonly backoff: { initialMs: number; maxMs: number; maxFailures: number };
  /** Configured scopes (`credentials.scopes`), asked for on every new token. */
  readonly configScopes: readonly string[] | undefined;
  /** Obtain a new token without a user (client credentials, token exchange); absent: a user must authorize. */
  readonly acquire: ((scope: string | undefined) => Promise<void>) | undefined;
  /** Redeem the refresh token (keeps `resource`). */
  readonly refresh: (tokens: UpstreamTokens) => Promise<void>;
  readonly log: (level: 'info' | 'warn', message: string, fields?: Record<string, unknown>) => void;
  /** Who this credential is for, in log lines (never a token). */
  readonly fields: Readonly<Record<string, unknown>>;
}

/** `error`: the grant's own verdict that the user must act (no identity token held), passed on as it is. */
type Renewal = { ok: true } | { ok: false; failure: OAuthFailure; consent: boolean; error?: GatehouseError };

/** Outcome of one refresh-job pass over this credential. */
export type JobOutcome = 'refreshed' | 'failed' | 'needs-consent' | 'skipped';

export class OAuthCredential implements UpstreamCredential {
  private renewing: Promise<Renewal> | undefined;
  /** The header object of the current token, built once per token (the hot path allocates nothing). */
  private cached: { token: string; headers: Readonly<Record<string, string>> } | undefined;
  /** The scope set a step-up asked the user for; the consent started next uses it when given none. */
  stepUpScopes: readonly string[] | undefined;

  constructor(private readonly options: OAuthCredentialOptions) {}

  /** The tokens this credential holds (the consent flow stores into it, disconnect revokes from it). */
  get slot(): TokenSlot {
    return this.options.slot;
  }

  headers(): Readonly<Record<string, string>> | Promise<Readonly<Record<string, string>>> {
    const { slot, clock } = this.options;
    const token = slot.current;
    const now = clock.now();
    if (token !== undefined && slot.status === 'active' && this.isFresh(token, now) && slot.isCurrent(now)) return this.headerFor(token);
    return this.slowHeaders();
  }

  async challenge(status: 401 | 403, wwwAuthenticate: string | undefined): Promise<boolean> {
    const params = challengeParams(wwwAuthenticate);
    if (status === 403) {
      // A 403 without insufficient_scope is the upstream's decision, not a credential problem.
      if (params.error !== 'insufficient_scope') return false;
      return this.stepUp(params.scope);
    }
    keepHint(this.options.records, params);
    return this.unauthorized();
  }

  /** The scopes a new authorization asks for: configured ones, else the upstream's challenge. */
  requestScopes(): readonly string[] | undefined {
    const configured = this.options.configScopes;
    if (configured !== undefined && configured.length > 0) return configured;
    const hinted = splitScope(this.options.records.hint.scope);
    return hinted.length > 0 ? hinted : undefined;
  }

  /** One pass of the refresh job: renew a due token. Never throws. */
  async renewForJob(): Promise<JobOutcome> {
    const { slot } = this.options;
    try {
      await slot.reload();
    } catch {
      return 'failed';
    }
    const token = slot.current;
    if (token === undefined || slot.status !== 'active') return 'skipped';
    if (token.refresh_token === undefined && this.options.acquire === undefined) return 'skipped';
    const renewal = await this.renew(undefined);
    if (renewal.ok) return 'refreshed';
    return renewal.consent ? 'needs-consent' : 'failed';
  }

  /** Forget the in-memory state (the vault rows are deleted by the caller). */
  async forget(): Promise<void> {
    this.cached = undefined;
    this.stepUpScopes = undefined;
    await this.options.slot.clear();
  }

  // ---- internals ----

  private isFresh(token: UpstreamTokens, now = this.options.clock.now()): boolean {
    return token.expiresAt === undefined || token.expiresAt - EXPIRY_SKEW_MS > now;
  }

  private headerFor(token: UpstreamTokens): Readonly<Record<string, string>> {
    if (this.cached?.token !== token.access_token) {
      // RFC 6750 §2.1; a DPoP-bound token would need a proof per request, which this gateway does not make.
      this.cached = { token: token.access_token, headers: Object.freeze({ authorization: `Bearer ${token.access_token}` }) };
    }
    return this.cached.headers;
  }

  /** Read the row when it was never read, or when the copy in memory is due for a check. */
  private async load(): Promise<void> {
    const { slot, clock } = this.options;
    try {
      if (slot.isLoaded && !slot.isCurrent(clock.now())) await slot.reload();
      else await slot.ensureLoaded();
    } catch {
      throw credentialUnavailable(this.options.target, 'the credential vault could not be read', 'vault_unreadable');
    }
  }

  private async slowHeaders(): Promise<Readonly<Record<string, string>>> {
    await this.load();
    const { slot, clock, kind, acquire } = this.options;
    if (slot.status === 'needs-consent' && kind === 'user' && acquire === undefined) throw authorizationRequired(this.options.target, 'reconsent', this.requestScopes());
    const token = slot.current;
    // No token yet: send without one and let the upstream's 401 say where to get it (RFC 9728).
    if (token === undefined) return NO_HEADERS;
    if (slot.status === 'active' && this.isFresh(token)) return this.headerFor(token);
    if (clock.now() < slot.retryAfter) {
      const usable = slot.status === 'active' && (token.expiresAt === undefined || token.expiresAt > clock.now());
      if (usable) return this.headerFor(token);
      throw credentialUnavailable(this.options.target, 'renewing the upstream token is backing off', 'backoff');
    }
    const renewal = await this.renew(undefined);
    if (!renewal.ok) throw this.errorFor(renewal);
    return slot.current === undefined ? NO_HEADERS : this.headerFor(slot.current);
  }

  private async unauthorized(): Promise<boolean> {
    const { slot, clock, kind, acquire, target } = this.options;
    await this.load();
    if (this.renewing !== undefined) return this.settle(await this.renewing);
    // Another gateway instance (same vault) may have renewed the token the request carried.
    const before = slot.current?.access_token;
    try {
      await slot.reload();
    } catch {
      throw credentialUnavailable(target, 'the credential vault could not be read', 'vault_unreadable');
    }
    const token = slot.current;
    if (token !== undefined && slot.status === 'active' && token.access_token !== before) return true;
    if (token === undefined || slot.status !== 'active') {
      if (acquire === undefined) throw authorizationRequired(target, token === undefined ? 'not_authorized' : 'reconsent', this.requestScopes());
      return this.settle(await this.renew(undefined));
    }
    const age = clock.now() - token.obtainedAt;
    if (age < RETRY_WINDOW_MS) return true;
    if (age < FRESH_TOKEN_MS) {
      this.options.log('warn', 'upstream refused a token just obtained', { ...this.options.fields, target });
      if (kind === 'user' && acquire === undefined) {
        await slot.needsConsent('token_refused');
        throw authorizationRequired(target, 'reconsent', this.requestScopes());
      }
      throw credentialUnavailable(target, 'the upstream refuses a freshly obtained token', 'token_refused');
    }
    if (clock.now() < slot.retryAfter) throw credentialUnavailable(target, 'renewing the upstream token is backing off', 'backoff');
    return this.settle(await this.renew(undefined));
  }

  private async stepUp(challenged: string | undefined): Promise<boolean> {
    const wanted = splitScope(challenged);
    if (wanted.length === 0) return false;
    await this.load();
    const { slot, acquire, target, configScopes } = this.options;
    const token = slot.current;
    const asked = new Set([...splitScope(token?.scope), ...splitScope(token?.requestedScope)]);
    // Every challenged scope was asked for already: another authorization would ask for the same.
    if (wanted.every((scope) => asked.has(scope))) return false;
    const granted = splitScope(token?.scope ?? token?.requestedScope);
    const union = [...new Set([...granted, ...wanted, ...(configScopes ?? [])])];
    if (acquire !== undefined) return this.settle(await this.renew(union.join(' ')));
    this.stepUpScopes = union;
    throw authorizationRequired(target, 'step_up', union);
  }

  private settle(renewal: Renewal): true {
    if (renewal.ok) return true;
    throw this.errorFor(renewal);
  }

  private errorFor(renewal: { failure: OAuthFailure; consent: boolean; error?: GatehouseError }): GatehouseError {
    if (renewal.error !== undefined) return renewal.error;
    if (renewal.consent && this.options.kind === 'user' && this.options.acquire === undefined) {
      return authorizationRequired(this.options.target, renewal.failure.reason === 'not_authorized' ? 'not_authorized' : 'reconsent', this.requestScopes());
    }
    return credentialUnavailable(this.options.target, 'renewing the upstream token failed', renewal.failure.reason);
  }

  /** One renewal at a time; concurrent callers share it. `scope` set: obtain a new token with it (step-up). */
  private renew(scope: string | undefined): Promise<Renewal> {
    this.renewing ??= this.runRenewal(scope).finally(() => {
      this.renewing = undefined;
    });
    return this.renewing;
  }

  private async runRenewal(scope: string | undefined): Promise<Renewal> {
    const { slot, acquire, kind, backoff, target, log, fields } = this.options;
    // The row may be gone (an operator deleted it): a renewal must not bring it back.
    try {
      await slot.reload();
    } catch {
      return { ok: false, failure: { kind: 'transient', reason: 'vault_unreadable' }, consent: false };
    }
    const token = slot.current;
    if (token === undefined && acquire === undefined) return { ok: false, failure: { kind: 'consent', reason: 'not_authorized' }, consent: true };
    const useRefresh = scope === undefined && token?.refresh_token !== undefined && slot.status === 'active';
    try {
      if (useRefresh) {
        try {
          await this.options.refresh(token);
        } catch (err) {
          // A refused refresh where no user is needed: obtain a new token instead.
          if (acquire === undefined || classifyFailure(err).kind === 'transient') throw err;
          await acquire(token.requestedScope ?? this.defaultScope());
        }
      } else if (acquire !== undefined) await acquire(scope ?? token?.requestedScope ?? this.defaultScope());
      else {
        await slot.needsConsent('no_refresh_token');
        return { ok: false, failure: { kind: 'consent', reason: 'no_refresh_token' }, consent: true };
      }
      log('info', useRefresh ? 'upstream token refreshed' : 'upstream token obtained', { ...fields, target });
      return { ok: true };
    } catch (err) {
      const failure = classifyFailure(err);
      if (err instanceof GatehouseError && err.code === 'UPSTREAM_AUTHORIZATION_REQUIRED' && kind === 'user' && acquire !== undefined) {
        // The grant cannot start without the user (a cross-app access target holds no identity
        // token for them): no backoff and nothing marked, the user's next sign-in fixes it.
        log('info', 'obtaining an upstream token needs the user first', { ...fields, target });
        return { ok: false, failure, consent: true, error: err };
      }
      if (failure.kind !== 'transient' && kind === 'user' && acquire === undefined) {
        // Another replica (or a consent) may have rotated the refresh token meanwhile: with
        // reuse detection the old one is refused although the row holds a good new one.
        if (await this.renewedElsewhere(token?.refresh_token)) return { ok: true };
        // invalid_grant (or any other final refusal of the refresh): only the user can fix it.
        await slot.needsConsent(failure.reason).catch(() => undefined);
        log('warn', 'upstream refresh refused; the user must authorize again', { ...fields, target, reason: failure.reason });
        return { ok: false, failure, consent: true };
      }
      const failures = await slot.failed(failure.reason, { initialMs: backoff.initialMs, maxMs: backoff.maxMs }).catch(() => slot.failures);
      const exhausted = failures >= backoff.maxFailures;
      if (exhausted) await slot.needsConsent(failure.reason).catch(() => undefined);
      log('warn', useRefresh ? 'upstream token refresh failed' : 'obtaining an upstream token failed', { ...fields, target, reason: failure.reason, failures, needsConsent: exhausted });
      return { ok: false, failure, consent: exhausted };
    }
  }

  /** Whether the row now holds tokens other than the ones this renewal started from. */
  private async renewedElsewhere(usedRefreshToken: string | undefined): Promise<boolean> {
    const { slot } = this.options;
    try {
      await slot.reload();
    } catch {
      return false;
    }
    const now = slot.current;
    return now !== undefined && slot.status === 'active' && now.refresh_token !== usedRefreshToken;
  }

  private defaultScope(): string | undefined {
    const scopes = this.requestScopes();
    return scopes === undefined ? undefined : scopes.join(' ');
  }
}

/** Keep a 401's RFC 9728 hints for the target: where its metadata is, what scope it wants. */
export function keepHint(records: TargetRecords, params: { resourceMetadataUrl?: string; scope?: string }): void {
  if (params.resourceMetadataUrl === undefined && params.scope === undefined) return;
  records.hint = {
    ...(params.resourceMetadataUrl === undefined ? {} : { resourceMetadataUrl: params.resourceMetadataUrl }),
    ...(params.scope === undefined ? {} : { scope: params.scope }),
  };
}

/** The parameters of a `WWW-Authenticate` challenge (Bearer or DPoP), parsed by the SDK. */
export function challengeParams(header: string | undefined): { resourceMetadataUrl?: string; scope?: string; error?: string } {
  if (header === undefined || header === '') return {};
  let parsed: ReturnType<typeof extractWWWAuthenticateParams>;
  try {
    parsed = extractWWWAuthenticateParams(new Response(null, { headers: { 'www-authenticate': header } }));
  } catch {
    return {}; // a header value Headers refuses (control characters): no usable challenge
  }
  return {
    ...(parsed.resourceMetadataUrl === undefined ? {} : { resourceMetadataUrl: parsed.resourceMetadataUrl.href }),
    ...(parsed.scope === undefined ? {} : { scope: parsed.scope }),
    ...(parsed.error === undefined ? {} : { error: parsed.error }),
  };
}

export function splitScope(scope: string | undefined): string[] {
  return scope === undefined ? [] : scope.split(' ').filter((s) => s !== '');
}
