/**
 * Authentication of one MCP request: who is calling, from the credential the request carries.
 * Runs in the listener before any endpoint sees the request, so nothing reaches an upstream
 * unauthenticated. Under `auth.mode: none` (loopback only) everyone is the anonymous principal.
 *
 * Credentials, in order: a verified client certificate listed in `auth.mtls`; then
 * `Authorization: Bearer` (RFC 6750 §2.1, the only method accepted), holding either an API key
 * (`gh_…`) or a gateway access token (JWT). Failures carry the RFC 6750 §3 challenge that
 * points at the endpoint's Protected Resource Metadata (RFC 9728 §5.1).
 */
import type { IncomingMessage } from 'node:http';
import type { GatehouseConfig } from '../config/schema.ts';
import { GatehouseError } from '../protocol/errors.ts';
import { isApiKeyShaped, type ApiKeyService } from './api-keys.ts';
import type { BearerVerifier } from './bearer-token.ts';
import { certificatePrincipal } from './client-certificate.ts';
import { anonymousPrincipal, type Principal } from './principal.ts';
import { bearerChallenge, metadataUrl, type ResourceLocation } from './protected-resource.ts';

export interface AuthenticatorDeps {
  /** The current snapshot's config. */
  config(): Readonly<GatehouseConfig>;
  /** The public base URL and listener path (known once the listener is bound). */
  location(): ResourceLocation;
  /** Access-token verification; absent until an authorization server is attached (JWTs are then refused). */
  bearer(): BearerVerifier | undefined;
  /** API key lookup; absent when `auth.apiKeys.enabled` is off. */
  apiKeys(): ApiKeyService | undefined;
}

/** `Bearer <token>`: the scheme is case-insensitive (RFC 9110 §11.1), the token68 is not. */
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;

export class Authenticator {
  private readonly deps: AuthenticatorDeps;

  constructor(deps: AuthenticatorDeps) {
    this.deps = deps;
  }

  /** Whether MCP requests need a credential (`auth.mode: oauth`). */
  get enabled(): boolean {
    return this.deps.config().auth.mode === 'oauth';
  }

  /**
   * The principal of a request to the endpoint of `toolset` (undefined: the main endpoint).
   * Throws UNAUTHENTICATED (no credential), INVALID_TOKEN, TOKEN_IN_QUERY or AUTH_UNAVAILABLE,
   * each with its `WWW-Authenticate` challenge.
   */
  async authenticate(req: IncomingMessage, url: URL, toolset: string | undefined): Promise<Principal> {
    if (!this.enabled) return anonymousPrincipal(undefined);
    // RFC 6750 §5.3 / OAuth 2.1: tokens in URLs leak into logs and Referer headers. Refused even
    // beside a valid header, so an agent that sends one learns to stop.
    if (url.searchParams.has('access_token')) throw this.fail('TOKEN_IN_QUERY', 'access_token in the query string', toolset, 'invalid_request');
    const config = this.deps.config();
    const byCertificate = certificatePrincipal(req.socket, config.auth.mtls);
    if (byCertificate !== undefined) return byCertificate;
    const header = req.headers.authorization;
    if (header === undefined || header === '') throw this.fail('UNAUTHENTICATED', 'Authentication required', toolset, undefined);
    const match = BEARER.exec(header);
    if (match === null) {
      // Another scheme, or a malformed Bearer value: a credential was sent and is not usable.
      throw this.fail('INVALID_TOKEN', 'Authorization is not a Bearer token', toolset, 'invalid_token');
    }
    const token = match[1]!;
    try {
      if (isApiKeyShaped(token)) {
        const keys = this.deps.apiKeys();
        if (keys === undefined) throw new GatehouseError('INVALID_TOKEN', 'API keys are disabled');
        return await keys.authenticate(token);
      }
      const bearer = this.deps.bearer();
      if (bearer === undefined) throw new GatehouseError('INVALID_TOKEN', 'no authorization server to verify access tokens');
      return await bearer.verify(token, this.resource(toolset));
    } catch (err) {
      if (err instanceof GatehouseError && (err.code === 'INVALID_TOKEN' || err.code === 'AUTH_UNAVAILABLE')) {
        throw this.fail(err.code, err.message, toolset, err.code === 'INVALID_TOKEN' ? 'invalid_token' : undefined, err);
      }
      throw err;
    }
  }

  /** The `WWW-Authenticate` header of a 401/403 at the endpoint of `toolset`. */
  challenge(toolset: string | undefined, error?: 'invalid_token' | 'insufficient_scope' | 'invalid_request', scope?: string): Record<string, string> {
    const at = this.deps.location();
    return {
      'www-authenticate': bearerChallenge({
        metadataUrl: metadataUrl(at, toolset),
        error,
        // MCP "Scope Selection Strategy": without a more specific need, name what the AS offers.
        scope: scope ?? this.deps.config().auth.scopes.join(' '),
      }),
    };
  }

  private resource(toolset: string | undefined): string {
    const at = this.deps.location();
    return `${at.publicBase}${at.path}${toolset === undefined ? '' : `/${toolset}`}`;
  }

  private fail(
    code: 'UNAUTHENTICATED' | 'INVALID_TOKEN' | 'TOKEN_IN_QUERY' | 'AUTH_UNAVAILABLE',
    reason: string,
    toolset: string | undefined,
    error: 'invalid_token' | 'invalid_request' | undefined,
    cause?: unknown,
  ): GatehouseError {
    // A 503 is not a challenge: the credential may be fine, the gateway could not check it.
    const headers = code === 'AUTH_UNAVAILABLE' ? {} : this.challenge(toolset, error);
    return new GatehouseError(code, reason, { headers, ...(cause === undefined ? {} : { cause }) });
  }
}
