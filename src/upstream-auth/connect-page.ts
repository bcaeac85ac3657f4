/**
 * The HTML of the upstream connect page: the consent form, and the short pages that end or
 * refuse a flow. Every value printed is escaped (target names, agent ids and scopes come from
 * config, registrations and upstream challenges). Every page is unframeable, uncached, sends no
 * Referer (the callback page's URL holds an authorization code) and loads nothing.
 */
import { createHash } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { escapeHtml } from '../auth/consent-page.ts';
import type { ConsentFlow } from './consent-flows.ts';

const STYLE = 'body{font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;line-height:1.5}dt{font-weight:600}dd{margin:0 0 .75rem}code{word-break:break-all}button{font-size:1rem;padding:.5rem 1.25rem;margin-right:.75rem}';
/** Hash source for the one inline style block, so the CSP can stay `default-src 'none'`. */
const STYLE_HASH = `'sha256-${createHash('sha256').update(STYLE).digest('base64')}'`;

/** What the consent form shows and posts. */
export interface ConsentView {
  readonly flow: ConsentFlow;
  readonly targetName: string;
  /** Absolute path of the form's POST. */
  readonly action: string;
  readonly csrf: string;
  /** `auth.mode: none`: nobody signed in (one anonymous local user). */
  readonly anonymous: boolean;
}

const REASONS: Record<ConsentFlow['reason'], string> = {
  not_authorized: 'The gateway has no authorization from you for this service yet.',
  reconsent: 'Your earlier authorization for this service expired or was revoked.',
  step_up: 'This request needs more permissions than you granted before.',
};

export function consentPageHtml(v: ConsentView): string {
  const e = escapeHtml;
  const { flow } = v;
  const scopes = flow.scopes === undefined || flow.scopes.length === 0 ? '<em>what the service asks for by default</em>' : flow.scopes.map((s) => `<code>${e(s)}</code>`).join('<br>');
  const service = v.targetName === flow.target ? `<code>${e(flow.target)}</code>` : `${e(v.targetName)}<br><code>${e(flow.target)}</code>`;
  return page(
    `Connect ${v.targetName}?`,
    `<p>${v.anonymous ? 'This gateway runs without sign-in (local use).' : `Signed in to the gateway as <strong>${e(flow.user)}</strong>.`} Only continue if you just asked the application named below to do something with this service.</p>
<p>${e(REASONS[flow.reason])}</p>
<dl><dt>Service</dt><dd>${service}</dd>
<dt>Application (agent)</dt><dd><code>${e(flow.agent)}</code></dd>
<dt>Permissions (scopes)</dt><dd>${scopes}</dd></dl>
<p>Approving sends you to the service to sign in there; the gateway keeps the authorization and uses it only for your requests.</p>
<form method="post" action="${e(v.action)}"><input type="hidden" name="csrf" value="${e(v.csrf)}">
<button type="submit" name="decision" value="approve">Approve</button><button type="submit" name="decision" value="deny">Deny</button></form>`,
  );
}

/** A page with a title and one paragraph: the end of a flow, or a refusal the user can act on. */
export function messagePageHtml(title: string, message: string): string {
  return page(title, `<p>${escapeHtml(message)}</p>`);
}

function page(title: string, body: string): string {
  const t = escapeHtml(title);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><meta name="referrer" content="no-referrer">
<title>${t}</title><style>${STYLE}</style></head>
<body><h1>${t}</h1>
${body}
</body></html>`;
}

/** Headers of every answer of the connect routes, redirects included. */
export function pageHeaders(formActions: readonly string[]): Record<string, string> {
  return {
    'cache-control': 'no-store',
    'x-frame-options': 'DENY',
    // form-action: the approve POST is answered with a redirect to the upstream authorization
    // server, and Chromium applies form-action to those redirects; that origin is discovered
    // only when the POST arrives, so the caller lists what it may be (https, dev loopback).
    'content-security-policy': `default-src 'none'; style-src ${STYLE_HASH}; form-action ${["'self'", ...formActions].join(' ')}; frame-ancestors 'none'; base-uri 'none'`,
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
  };
}

export function sendPage(res: ServerResponse, status: number, html: string, headers: Record<string, string>): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  res.writeHead(status, { ...headers, 'content-type': 'text/html; charset=utf-8', 'content-length': String(Buffer.byteLength(html)) });
  res.end(html);
}

export function sendRedirect(res: ServerResponse, location: string, headers: Record<string, string>): void {
  res.writeHead(303, { ...headers, location, 'content-length': '0' });
  res.end();
}
