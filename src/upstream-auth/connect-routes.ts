/**
 * The browser side of the third auth tier, under `/upstream-auth/` on the agent-facing listener:
 *
 * - `GET  /upstream-auth/connect/<id>`: the URL an elicitation carries. Unknown → 400, expired
 *   or ended → 410. Then the browser must prove it is the flow's tenant and user (an
 *   authorization code round trip through the gateway's own authorization server,
 *   connect-identity.ts); a different user is refused (403), never continued. Then the consent
 *   page, whose form carries a CSRF token bound to the flow and to this browser's cookie.
 * - `GET  /upstream-auth/identity`: the end of that round trip.
 * - `POST /upstream-auth/connect/<id>`: approve (→ 303 to the upstream authorization server)
 *   or deny (the flow ends declined).
 * - Token-exchange targets have nothing to approve: once the browser proved its user the flow
 *   ends completed. For cross-app access (`idp-id-token`) the identity step asks for a fresh
 *   IdP login (`prompt=login`), whose ID token the gateway keeps: what such a user lacked.
 * - `GET  /upstream-auth/callback`: the upstream's redirect. Accepted only in the browser that
 *   approved: a callback forced into another browser (MCP "Phishing": the victim authorizes
 *   at the upstream, the attacker's flow gets the tokens) is refused before the code is redeemed.
 *
 * Pages print only what is escaped, never a code, token, state or upstream error body; logs
 * carry the target, tenant and error type only.
 */
import { createHmac, randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Clock } from '../clock.ts';
import type { GatehouseConfig } from '../config/schema.ts';
import { CONNECT_IDENTITY_PATH, pkceChallenge, type BrowserIdentity } from '../auth/connect-identity.ts';
import { GatehouseError, toGatehouseError } from '../protocol/errors.ts';
import { BrowserBindings, type BrowserBinding } from './browser-bindings.ts';
import { CONNECT_PATH, ELICITATION_ID, targetDisplayName, type ConsentFlow, type ConsentFlows } from './consent-flows.ts';
import { consentPageHtml, messagePageHtml, pageHeaders, sendPage, sendRedirect } from './connect-page.ts';
import type { UpstreamAuthorizations } from './upstream-credential.ts';
import { sameSecret } from '../auth/secret-compare.ts';
import { isSameOriginPost, readForm } from '../auth/form-post.ts';

/** The upstream's redirect URI (below the public base URL). */
export const CONNECT_CALLBACK_PATH = '/upstream-auth/callback';
const PREFIX = '/upstream-auth/';
const COOKIE = 'gatehouse_connect';
const BROWSER_ID = /^[A-Za-z0-9_-]{43}$/;

/** Where refusals worth an operator's eye and internal failures go (a pino logger fits). */
export interface ConnectLog {
  warn(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
}

export interface ConnectRoutesDeps {
  flows: ConsentFlows;
  clock: Clock;
  config(): Readonly<GatehouseConfig>;
  /** `auth.publicUrl`, else the listener's own loopback URL (what `Gateway.publicBase` answers). */
  publicBase(): string;
  /** The upstream authorizer of the current snapshot; undefined while there is none. */
  upstream(): UpstreamAuthorizations | undefined;
  /** `auth.mode: oauth`: the authorization server's `browserIdentity`; undefined while none is mounted. */
  identity(): BrowserIdentity | undefined;
  logger: ConnectLog;
  /** HMAC key of the CSRF tokens; random per process unless given. */
  csrfKey?: Uint8Array;
}

/** The listener mounts this before the MCP routes: it answers every path under `/upstream-auth/`. */
export interface ConnectRoutes {
  handle(req: IncomingMessage, res: ServerResponse): Promise<boolean>;
}

/** A page with one message: thrown for a refusal, returned for the end of a flow. */
class PageAnswer extends Error {
  constructor(
    readonly status: number,
    readonly title: string,
    readonly text: string,
  ) {
    super(title);
  }
}

const START_AGAIN = 'Return to the application and try your request again to get a new link.';

export function createConnectRoutes(deps: ConnectRoutesDeps): ConnectRoutes {
  const csrfKey = deps.csrfKey ?? randomBytes(32);
  const bindings = new BrowserBindings(deps.clock, deps.flows.ttl);

  const publicBase = (): string => deps.publicBase().replace(/\/+$/, '');
  const headers = (): Record<string, string> => {
    const loopback = deps.config().vault.allowLoopbackAuthorizationServers ? ['http://127.0.0.1:*', 'http://localhost:*', 'http://[::1]:*'] : [];
    return pageHeaders(['https:', ...loopback]);
  };
  // Under https the cookie is `__Host-`: only this exact origin can set it, so a sibling
  // subdomain cannot plant its own browser id in a victim's browser (and the prefix needs
  // Path=/). Over loopback http (development) Path=/upstream-auth/ keeps it off the rest.
  // SameSite=Lax still sends it on the upstream's top-level redirect back; it outlives one TTL
  // so a slow upstream sign-in still lands.
  const secure = (): boolean => publicBase().startsWith('https:');
  const cookieName = (): string => (secure() ? `__Host-${COOKIE}` : COOKIE);
  const cookie = (browser: string): string =>
    `${cookieName()}=${browser}; Path=${secure() ? '/' : PREFIX}; HttpOnly; SameSite=Lax; Max-Age=${Math.ceil((2 * deps.flows.ttl) / 1000)}${secure() ? '; Secure' : ''}`;
  const browserOf = (req: IncomingMessage): string | undefined => browserCookie(req, cookieName());
  const csrfToken = (flow: ConsentFlow, browser: string): string =>
    createHmac('sha256', csrfKey)
      .update(`upstream-connect\0${flow.elicitationId}\0${browser}\0${(flow.scopes ?? []).join(' ')}`)
      .digest('base64url');

  /** How the flow's target obtains user tokens by token exchange; undefined for a consent target. */
  function exchangeOf(flow: ConsentFlow): 'gateway-assertion' | 'idp-id-token' | undefined {
    const target = Object.hasOwn(deps.config().targets, flow.target) ? deps.config().targets[flow.target] : undefined;
    return target?.credentials.mode === 'user-oauth' ? target.credentials.tokenExchange?.subjectToken : undefined;
  }

  /** A flow the user may still act on; anything else is the page to show instead. */
  function openFlow(id: string, allowExpired = false): ConsentFlow {
    const flow = ELICITATION_ID.test(id) ? deps.flows.get(id) : undefined;
    if (flow === undefined) throw new PageAnswer(400, 'Unknown link', 'This connection link is not valid. Return to the application and try again.');
    if (flow.status === 'completed') throw new PageAnswer(410, 'Already connected', 'This request is finished: the service is connected. You can return to the application.');
    if (flow.status === 'declined') throw new PageAnswer(410, 'Request declined', `You declined this request. ${START_AGAIN}`);
    if (flow.status === 'expired' && !allowExpired) throw new PageAnswer(410, 'Link expired', `This connection link has expired. ${START_AGAIN}`);
    return flow;
  }

  async function showConnect(req: IncomingMessage, res: ServerResponse, id: string): Promise<undefined> {
    const flow = openFlow(id);
    const browser = browserOf(req) ?? randomBytes(32).toString('base64url');
    const binding = bindings.open(browser, flow.elicitationId);
    const setCookie = { ...headers(), 'set-cookie': cookie(browser) };
    // auth.mode none (loopback only): there is one anonymous principal, so no other user exists
    // to be phished; the identity step is skipped, the browser binding and CSRF are not.
    if (deps.config().auth.mode === 'none') binding.verified = true;
    if (!binding.verified) {
      sendRedirect(res, startIdentity(flow, binding), setCookie);
      return undefined;
    }
    if (exchangeOf(flow) !== undefined) {
      deps.flows.complete(flow.elicitationId, 'completed');
      const name = targetDisplayName(deps.config(), flow.target);
      sendPage(res, 200, messagePageHtml('Signed in', `The gateway can reach ${name} for you again. Return to the application and retry your request.`), setCookie);
      return undefined;
    }
    const html = consentPageHtml({ flow, targetName: targetDisplayName(deps.config(), flow.target), action: `${CONNECT_PATH}${flow.elicitationId}`, csrf: csrfToken(flow, browser), anonymous: deps.config().auth.mode === 'none' });
    sendPage(res, 200, html, setCookie);
    return undefined;
  }

  function startIdentity(flow: ConsentFlow, binding: BrowserBinding): string {
    const identity = deps.identity();
    // Without an interactive login (auth.idp) no browser can prove anything: fail closed.
    if (identity === undefined || deps.config().auth.idp === undefined) throw new PageAnswer(503, 'Sign-in unavailable', 'This gateway cannot verify who you are in a browser. Ask its operator.');
    const state = randomBytes(16).toString('base64url');
    const verifier = randomBytes(32).toString('base64url');
    const freshLogin = exchangeOf(flow) === 'idp-id-token';
    const url = identity.authorizationUrl({ tenant: flow.tenant, state, codeChallenge: pkceChallenge(verifier), ...(freshLogin ? { prompt: 'login' as const } : {}) });
    if (url === undefined) throw new PageAnswer(403, 'Cannot verify', 'The gateway cannot verify users of this account in a browser. Ask its operator.');
    bindings.expect('identity', state, binding, verifier);
    return url;
  }

  async function finishIdentity(req: IncomingMessage, res: ServerResponse, url: URL): Promise<undefined> {
    const browser = browserOf(req);
    const taken = bindings.take('identity', url.searchParams.get('state') ?? '', browser);
    if (taken === 'unknown') throw new PageAnswer(400, 'Sign-in expired', `This sign-in is unknown or has expired. ${START_AGAIN}`);
    if (taken === 'wrongBrowser') throw new PageAnswer(403, 'Wrong browser', 'This sign-in was started in another browser. Open the link from the application in the browser you use.');
    const flow = openFlow(taken.elicitationId);
    const code = url.searchParams.get('code');
    const identity = deps.identity();
    const refused = new PageAnswer(403, 'Not verified', `The gateway could not verify who you are. Nothing was connected. ${START_AGAIN}`);
    if (url.searchParams.has('error') || code === null || identity === undefined || taken.verifier === undefined) throw refused;
    const who = await identity.redeem(code, taken.verifier, flow.tenant);
    if (who === undefined) throw refused;
    if (who.tenant !== flow.tenant || who.user !== flow.user) {
      // The phishing case, or a shared browser signed in as someone else. Worth an operator's eye;
      // the page names neither the flow's user nor its agent.
      deps.logger.warn({ kind: 'upstream-auth', event: 'identity_mismatch', target: flow.target, tenant: flow.tenant }, 'upstream connect: the browser belongs to another user than the request');
      throw new PageAnswer(403, 'Wrong user', `This link was made for another user of the gateway, and you are signed in as ${who.user}. Nothing was connected. If someone sent you this link, ignore it.`);
    }
    bindings.open(taken.browser, flow.elicitationId).verified = true;
    sendRedirect(res, `${publicBase()}${CONNECT_PATH}${flow.elicitationId}`, headers());
    return undefined;
  }

  async function decide(req: IncomingMessage, res: ServerResponse, id: string): Promise<PageAnswer | undefined> {
    const flow = openFlow(id);
    const refused = new PageAnswer(403, 'Request refused', `The form expired or was not submitted from this page. Open the link from the application again.`);
    if (!isSameOriginPost(req, publicBase())) throw refused;
    const browser = browserOf(req);
    const binding = bindings.get(browser, flow.elicitationId);
    // The identity proven on GET is bound to this browser: a form from any other one is refused.
    if (browser === undefined || binding === undefined || !binding.verified) throw refused;
    const form = await readForm(req);
    if (form === undefined || !sameSecret(form.get('csrf') ?? '', csrfToken(flow, browser))) throw refused;
    const decision = form.get('decision');
    if (decision === 'deny') {
      deps.flows.complete(flow.elicitationId, 'declined');
      return new PageAnswer(200, 'Declined', 'Nothing was connected. You can close this window and return to the application.');
    }
    if (decision !== 'approve') throw new PageAnswer(400, 'Choose an answer', 'Choose Approve or Deny.');
    const upstream = deps.upstream();
    const name = targetDisplayName(deps.config(), flow.target);
    const unavailable = new PageAnswer(502, 'Service unavailable', `The gateway could not start the sign-in at ${name}. Try again later.`);
    if (upstream === undefined) throw unavailable;
    let location: URL;
    try {
      const begun = await upstream.beginUserAuthorization(flow.target, { tenant: flow.tenant, user: flow.user }, { scopes: flow.scopes, redirectUri: `${publicBase()}${CONNECT_CALLBACK_PATH}` });
      location = new URL(begun.authorizationUrl);
    } catch (err) {
      deps.logger.warn({ kind: 'upstream-auth', event: 'begin_failed', target: flow.target, tenant: flow.tenant, error: errorType(err) }, 'upstream connect: the authorization could not start');
      throw unavailable;
    }
    const state = location.searchParams.get('state');
    // The state is how the callback finds this browser; without one it could not be bound.
    // The browser goes to https only; plain http just to a loopback server the config admits (development).
    const loopbackHttp = location.protocol === 'http:' && deps.config().vault.allowLoopbackAuthorizationServers && ['127.0.0.1', 'localhost', '[::1]'].includes(location.hostname);
    if (state === null || state === '' || (location.protocol !== 'https:' && !loopbackHttp)) {
      deps.logger.error({ kind: 'upstream-auth', event: 'begin_unusable', target: flow.target }, 'upstream connect: the authorization URL has no state or is neither https nor an allowed loopback http URL');
      throw unavailable;
    }
    bindings.expect('upstream', state, bindings.open(browser, flow.elicitationId));
    sendRedirect(res, location.href, headers());
    return undefined;
  }

  async function callback(req: IncomingMessage, url: URL): Promise<PageAnswer> {
    const taken = bindings.take('upstream', url.searchParams.get('state') ?? '', browserOf(req));
    if (taken === 'unknown') throw new PageAnswer(400, 'Sign-in expired', `This answer from the service is unknown or has expired. Nothing was connected. ${START_AGAIN}`);
    if (taken === 'wrongBrowser') {
      deps.logger.warn({ kind: 'upstream-auth', event: 'callback_wrong_browser' }, 'upstream connect: a callback reached another browser than the one that approved');
      throw new PageAnswer(403, 'Wrong browser', 'This answer belongs to a request approved in another browser. Nothing was connected. If someone sent you a link to get here, ignore it.');
    }
    // Expired is fine here: the user approved in time and is back from the upstream.
    const flow = openFlow(taken.elicitationId, true);
    const name = targetDisplayName(deps.config(), flow.target);
    const failed = new PageAnswer(url.searchParams.has('error') ? 403 : 502, 'Not connected', `${name} did not confirm the connection. Nothing was connected. ${START_AGAIN}`);
    const upstream = deps.upstream();
    if (upstream === undefined) throw failed;
    let done: Awaited<ReturnType<UpstreamAuthorizations['completeUserAuthorization']>>;
    try {
      // Rebuilt on the public base: the redirect URI the authorization began with, plus the query.
      done = await upstream.completeUserAuthorization(new URL(`${publicBase()}${CONNECT_CALLBACK_PATH}${url.search}`));
    } catch (err) {
      deps.logger.warn({ kind: 'upstream-auth', event: 'callback_failed', target: flow.target, tenant: flow.tenant, error: errorType(err) }, 'upstream connect: the authorization did not complete');
      throw failed;
    }
    if (done.target !== flow.target || done.who.tenant !== flow.tenant || done.who.user !== flow.user) {
      throw new GatehouseError('INTERNAL', 'upstream connect: the completed authorization is not the flow the browser approved');
    }
    deps.flows.complete(flow.elicitationId, 'completed');
    return new PageAnswer(200, 'Connected', `${name} is connected. Return to the application and retry your request.`);
  }

  async function route(req: IncomingMessage, res: ServerResponse, url: URL): Promise<PageAnswer | undefined> {
    const path = url.pathname;
    const method = req.method ?? 'GET';
    const only = (allowed: string): void => {
      if (!allowed.split(', ').includes(method)) throw new PageAnswer(405, 'Method not allowed', 'This address does not accept that request.');
    };
    if (path.startsWith(CONNECT_PATH)) {
      const id = path.slice(CONNECT_PATH.length);
      only('GET, POST');
      if (method === 'POST') return decide(req, res, id);
      return showConnect(req, res, id);
    }
    if (path === CONNECT_IDENTITY_PATH) {
      only('GET');
      return finishIdentity(req, res, url);
    }
    if (path === CONNECT_CALLBACK_PATH) {
      only('GET');
      return callback(req, url);
    }
    throw new PageAnswer(404, 'Not found', 'There is nothing at this address.');
  }

  return {
    async handle(req, res) {
      const url = new URL(req.url ?? '/', 'http://gateway.invalid');
      if (!url.pathname.startsWith(PREFIX)) return false;
      try {
        const answer = await route(req, res, url);
        if (answer !== undefined) sendPage(res, answer.status, messagePageHtml(answer.title, answer.text), headers());
      } catch (err) {
        if (err instanceof PageAnswer) {
          sendPage(res, err.status, messagePageHtml(err.title, err.text), headers());
        } else {
          const error = toGatehouseError(err);
          deps.logger.error({ kind: 'internal', correlation_id: error.correlationId, err: { name: error.name, message: error.message } }, 'upstream connect: internal error');
          sendPage(res, 500, messagePageHtml('Something went wrong', `The gateway failed to handle this page (reference ${error.correlationId ?? 'none'}). ${START_AGAIN}`), headers());
        }
      }
      return true;
    },
  };
}

/** This browser's id from the cookie `name`, when it holds a well-formed one. */
function browserCookie(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) {
      const value = part.slice(eq + 1).trim();
      if (BROWSER_ID.test(value)) return value;
    }
  }
  return undefined;
}

/** What a log may say about a failure at the upstream: the error's code or class, never its text. */
function errorType(err: unknown): string {
  if (err instanceof GatehouseError) return err.spec.type;
  return err instanceof Error ? err.name : 'unknown';
}
