/**
 * The pluggable human step of the authorization code flow: login at the enterprise IdP and
 * consent. The authorization server routes every request under `/oauth/interaction/` here;
 * without a handler it answers a fixed error page, never an unauthenticated login.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Provider } from 'oidc-provider';

/** What a handler is given for one interaction request. */
export interface InteractionRequest {
  readonly provider: Provider;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  /** The interaction uid (the path segment after `/oauth/interaction/`). */
  readonly uid: string;
  /** The rest of the path after the uid (`''` for the interaction itself, `/callback`, `/consent`, …). */
  readonly subpath: string;
  /** The authorization server's issuer (`<publicBase>/oauth`). */
  readonly issuer: string;
}

/**
 * A login handler (implemented with openid-client against `auth.idp`). It answers GET and POST
 * requests under `/oauth/interaction/<uid>[/…]`: it reads `provider.interactionDetails(req, res)`,
 * redirects to the IdP, handles the callback, writes the account with `accounts.upsert` (tenant,
 * roles), records consent on a `provider.Grant` (resource scopes for the requested `resource`),
 * and ends with `provider.interactionFinished(req, res, { login, consent })`.
 */
export interface InteractionHandler {
  handle(request: InteractionRequest): Promise<void>;
}

/** Path prefix (below the issuer) of every interaction URL; oidc-provider redirects here. */
export const INTERACTION_PREFIX = '/interaction/';

/** The answer when no login is configured: a typed error, never a login without authentication. */
export function answerNoLogin(res: ServerResponse): void {
  const body = JSON.stringify({
    error: 'login_not_configured',
    error_description: 'This gateway has no interactive login configured (auth.idp); use client credentials or a token exchange instead.',
  });
  res.writeHead(501, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
