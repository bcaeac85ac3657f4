/**
 * The gateway's own consent step, after the IdP login. The gateway is a confused-deputy risk:
 * one static client id at the enterprise IdP, many (dynamically registered) downstream clients.
 * The IdP may skip its own consent for the gateway, so the gateway MUST ask the user, per
 * client, before any code is issued to that client (MCP security best practices, "Confused
 * Deputy Problem"). The decision is kept on an oidc-provider Grant whose id is derived from
 * (account, client), so a later login of the same user for the same client (any browser, any
 * replica) skips the page, while every other client still gets it.
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { GrantInstance, InteractionDetails, Provider } from 'oidc-provider';
import type { InteractionRequest } from './interaction.ts';
import { sameSecret } from './secret-compare.ts';
import { isSameOriginPost, readForm } from './form-post.ts';

/** What the user is asked to grant, as oidc-provider's consent prompt reports it. */
interface RequestedAccess {
  readonly oidcScopes: readonly string[];
  readonly oidcClaims: readonly string[];
  /** Resource indicator → scopes requested for it. */
  readonly resourceScopes: Readonly<Record<string, readonly string[]>>;
}

export interface ConsentStep {
  /** GET: approve silently when the remembered grant covers the request, else render the page. */
  show(request: InteractionRequest, details: InteractionDetails): Promise<void>;
  /** POST `/consent`: check the CSRF token, then approve or deny. */
  decide(request: InteractionRequest, details: InteractionDetails): Promise<void>;
}

/** The approve/deny form's action, below the interaction URL. */
export const CONSENT_SUBPATH = '/consent';

const STYLE = 'body{font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;line-height:1.5}dt{font-weight:600}dd{margin:0 0 .75rem}code{word-break:break-all}button{font-size:1rem;padding:.5rem 1.25rem;margin-right:.75rem}';
/** Hash source for the one inline style block, so the CSP can stay `default-src 'none'`. */
const STYLE_HASH = `'sha256-${createHash('sha256').update(STYLE).digest('base64')}'`;

/**
 * @param csrfKey HMAC key of the CSRF tokens; random per process unless given (replicas behind
 * one load balancer must share it, or a user whose POST lands elsewhere must retry).
 */
export function createConsentStep(csrfKey: Uint8Array = randomBytes(32)): ConsentStep {
  // Bound to the interaction and the logged-in user: a token from one login is worthless in another.
  const csrfToken = (uid: string, accountId: string): string => createHmac('sha256', csrfKey).update(`consent\0${uid}\0${accountId}`).digest('base64url');

  return {
    async show(request, details) {
      const { provider, res } = request;
      const accountId = details.session?.accountId;
      const clientId = stringParam(details.params.client_id);
      if (!accountId || !clientId) return sendMessagePage(res, 400, 'Sign-in incomplete', 'This request has no signed-in user. Start again from the application.');
      const access = requestedAccess(details);
      const remembered = await rememberedGrant(provider, details, accountId, clientId);
      // A grant that oidc-provider already loaded and still found lacking cannot be re-offered
      // silently: that would loop between the prompt and this handler.
      if (remembered && remembered.jti !== details.grantId && covers(remembered, access) && access.oidcClaims.length === 0 && remembered.jti) {
        return provider.interactionFinished(request.req, res, { consent: { grantId: remembered.jti } }, { mergeWithLastSubmission: true });
      }
      const client = await provider.Client.find(clientId);
      if (!client) return sendMessagePage(res, 400, 'Unknown application', 'The application that sent you here is not registered.');
      const redirectUri = stringParam(details.params.redirect_uri) ?? '';
      const metadata = client.metadata();
      const html = consentHtml({
        action: `${request.issuer}/interaction/${encodeURIComponent(details.uid)}${CONSENT_SUBPATH}`,
        csrf: csrfToken(details.uid, accountId),
        clientName: typeof metadata.client_name === 'string' ? metadata.client_name : undefined,
        clientId,
        redirectHost: hostOf(redirectUri),
        resources: Object.keys(access.resourceScopes).length ? Object.keys(access.resourceScopes) : listParam(details.params.resource),
        scopes: [...new Set([...access.oidcScopes, ...Object.values(access.resourceScopes).flat()])],
        accountId,
      });
      sendHtml(res, 200, html, formTargets(redirectUri));
    },

    async decide(request, details) {
      const { provider, req, res } = request;
      const accountId = details.session?.accountId;
      const clientId = stringParam(details.params.client_id);
      if (!accountId || !clientId) return sendMessagePage(res, 400, 'Sign-in incomplete', 'This request has no signed-in user. Start again from the application.');
      if (!isSameOriginPost(req, request.issuer)) return sendMessagePage(res, 403, 'Request refused', 'The consent form must be submitted from this site.');
      const form = await readForm(req);
      if (!form || !sameSecret(form.get('csrf') ?? '', csrfToken(details.uid, accountId))) {
        return sendMessagePage(res, 403, 'Request refused', 'The consent form expired or was not submitted from this page. Start again from the application.');
      }
      const decision = form.get('decision');
      if (decision === 'deny') {
        return provider.interactionFinished(req, res, { error: 'access_denied', error_description: 'the user denied the request' }, { mergeWithLastSubmission: false });
      }
      if (decision !== 'approve') return sendMessagePage(res, 400, 'Request refused', 'Choose Allow or Deny.');
      const grant = (await rememberedGrant(provider, details, accountId, clientId)) ?? new provider.Grant({ jti: consentGrantId(accountId, clientId), accountId, clientId });
      const access = requestedAccess(details);
      if (access.oidcScopes.length) grant.addOIDCScope(access.oidcScopes.join(' '));
      if (access.oidcClaims.length) grant.addOIDCClaims([...access.oidcClaims]);
      for (const [resource, scopes] of Object.entries(access.resourceScopes)) grant.addResourceScope(resource, scopes.join(' '));
      const grantId = await grant.save();
      await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    },
  };
}

/** The id of the grant that remembers one user's consent for one client. Not a secret: grant ids never leave the server. */
export function consentGrantId(accountId: string, clientId: string): string {
  return `consent-${createHash('sha256').update(`${accountId}\0${clientId}`).digest('base64url')}`;
}

/** The grant oidc-provider loaded for this interaction, else the remembered (account, client) one; never another pair's. */
async function rememberedGrant(provider: Provider, details: InteractionDetails, accountId: string, clientId: string): Promise<GrantInstance | undefined> {
  const grant = await provider.Grant.find(details.grantId ?? consentGrantId(accountId, clientId));
  return grant && grant.accountId === accountId && grant.clientId === clientId ? grant : undefined;
}

function requestedAccess(details: InteractionDetails): RequestedAccess {
  const d = details.prompt.details;
  const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((s): s is string => typeof s === 'string') : []);
  const resourceScopes: Record<string, string[]> = {};
  if (d.missingResourceScopes && typeof d.missingResourceScopes === 'object') {
    for (const [resource, scopes] of Object.entries(d.missingResourceScopes)) resourceScopes[resource] = strings(scopes);
  }
  return { oidcScopes: strings(d.missingOIDCScope), oidcClaims: strings(d.missingOIDCClaims), resourceScopes };
}

/** Mirrors oidc-provider's own consent checks, so an approval here never sends it back to the prompt. */
function covers(grant: GrantInstance, access: RequestedAccess): boolean {
  const granted = new Set(grant.getOIDCScope().split(' '));
  if (!access.oidcScopes.every((s) => granted.has(s))) return false;
  return Object.entries(access.resourceScopes).every(([resource, scopes]) => {
    const have = new Set(grant.getResourceScope(resource).split(' '));
    return scopes.every((s) => have.has(s));
  });
}

interface ConsentView {
  readonly action: string;
  readonly csrf: string;
  readonly clientName: string | undefined;
  readonly clientId: string;
  readonly redirectHost: string;
  readonly resources: readonly string[];
  readonly scopes: readonly string[];
  readonly accountId: string;
}

/** The page. Every interpolated value is escaped: client names and URIs come from self-registered clients. */
export function consentHtml(v: ConsentView): string {
  const e = escapeHtml;
  const list = (items: readonly string[]): string => (items.length ? items.map((i) => `<code>${e(i)}</code>`).join('<br>') : '<em>none</em>');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><meta name="referrer" content="no-referrer">
<title>Allow access?</title><style>${STYLE}</style></head>
<body><h1>Allow ${e(v.clientName ?? v.clientId)} to use the gateway as you?</h1>
<p>Signed in as <strong>${e(v.accountId)}</strong>. Only continue if you started this from the application named here.</p>
<dl><dt>Application</dt><dd>${e(v.clientName ?? '(no name given)')}<br><code>${e(v.clientId)}</code></dd>
<dt>Will return you to</dt><dd><code>${e(v.redirectHost)}</code></dd>
<dt>Resource</dt><dd>${list(v.resources)}</dd>
<dt>Permissions (scopes)</dt><dd>${list(v.scopes)}</dd></dl>
<form method="post" action="${e(v.action)}"><input type="hidden" name="csrf" value="${e(v.csrf)}">
<button type="submit" name="decision" value="approve">Allow</button><button type="submit" name="decision" value="deny">Deny</button></form>
</body></html>`;
}

export function escapeHtml(value: string): string {
  return value.replace(/[&<>"'`]/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A short page for every refusal of the human flow; no detail beyond what the user can act on. */
export function sendMessagePage(res: ServerResponse, status: number, title: string, message: string): void {
  sendHtml(res, status, `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title><style>${STYLE}</style></head><body><h1>${escapeHtml(title)}</h1><p>${escapeHtml(message)}</p></body></html>`, []);
}

/**
 * Anti-clickjacking and a CSP with nothing to load. `form-action` also lists where the approve
 * POST ends up redirecting (the client's redirect URI, validated by oidc-provider): Chromium
 * applies form-action to the redirects that follow a form submission.
 */
function sendHtml(res: ServerResponse, status: number, html: string, extraFormTargets: readonly string[]): void {
  const formAction = ["'self'", ...extraFormTargets].join(' ');
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'content-length': Buffer.byteLength(html),
    'cache-control': 'no-store',
    'x-frame-options': 'DENY',
    'content-security-policy': `default-src 'none'; style-src ${STYLE_HASH}; form-action ${formAction}; frame-ancestors 'none'; base-uri 'none'`,
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
  });
  res.end(html);
}

/** CSP source for a redirect URI: its origin for http(s), its scheme for an app's custom scheme. */
function formTargets(redirectUri: string): string[] {
  try {
    const url = new URL(redirectUri);
    if (url.protocol === 'http:' || url.protocol === 'https:') return [url.origin];
    return /^[a-z][a-z0-9+.-]*:$/i.test(url.protocol) ? [url.protocol] : [];
  } catch {
    return [];
  }
}



function hostOf(uri: string): string {
  try {
    const url = new URL(uri);
    return url.host || `${url.protocol}${url.pathname}`;
  } catch {
    return uri;
  }
}

function stringParam(v: unknown): string | undefined {
  return typeof v === 'string' && v ? v : undefined;
}

function listParam(v: unknown): string[] {
  if (typeof v === 'string') return [v];
  return Array.isArray(v) ? v.filter((s): s is string => typeof s === 'string') : [];
}
