/**
 * Human login end to end over real HTTP on 127.0.0.1: a client's authorization code + PKCE
 * request at the gateway's AS → the enterprise IdP (a real oidc-provider) → the gateway's
 * callback → the gateway's own consent page → code → access token carrying the IdP groups as
 * gateway roles. Then the consent page's defences: CSRF, framing, escaping, per-client consent.
 */
import { createHash, randomBytes } from 'node:crypto';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HeadlessBrowser, readForms, type BrowserResponse } from '../fixtures/headless-browser.ts';
import { ACME_AGENT, AGENT, startIdpGateway, type IdpGateway } from '../support/idp-gateway.ts';

const USERS = [
  { id: 'alice', groups: ['eng', 'ops'], email: 'alice@example.com' },
  { id: 'bob', groups: ['sales'], email: 'bob@example.com' },
  // One user per test below: consent is remembered per (user, client) across tests.
  { id: 'erin', groups: [], email: 'erin@example.com' },
  { id: 'frank', groups: ['admins'], email: 'frank@example.com' },
  { id: 'grace', groups: [], email: 'grace@example.com' },
];

interface Flow {
  readonly gw: IdpGateway;
  readonly browser: HeadlessBrowser;
  readonly verifier: string;
  readonly state: string;
  readonly clientId: string;
  readonly redirectUri: string;
}

function newFlow(gw: IdpGateway, browser = new HeadlessBrowser(), clientId: string = AGENT.id, redirectUri: string = AGENT.redirectUri): Flow {
  return { gw, browser, verifier: randomBytes(32).toString('base64url'), state: randomBytes(8).toString('hex'), clientId, redirectUri };
}

function authorizeUrl(flow: Flow, scope = 'mcp'): string {
  const url = new URL(`${flow.gw.issuer}/auth`);
  url.search = new URLSearchParams({
    client_id: flow.clientId,
    redirect_uri: flow.redirectUri,
    response_type: 'code',
    scope,
    resource: flow.gw.resource,
    state: flow.state,
    code_challenge: createHash('sha256').update(flow.verifier).digest('base64url'),
    code_challenge_method: 'S256',
  }).toString();
  return url.href;
}

/** Stop before following a redirect to the client (nothing serves its redirect URI). */
const atClient = (flow: Flow) => (loc: string) => loc.startsWith(flow.redirectUri);

/** From the client's authorization request to the page after the IdP login (consent, or the client redirect). */
async function loginAt(flow: Flow, user: string): Promise<BrowserResponse> {
  const idpPage = await flow.browser.navigate(authorizeUrl(flow), atClient(flow));
  expect(idpPage.status).toBe(200);
  expect(idpPage.url.startsWith(flow.gw.idp.issuer)).toBe(true);
  return flow.gw.idp.loginAs(flow.browser, idpPage, user, { stopAt: atClient(flow) });
}

async function approve(flow: Flow, consent: BrowserResponse): Promise<BrowserResponse> {
  return flow.browser.submitForm(consent, /\/consent$/, { decision: 'approve' }, atClient(flow));
}

async function redeem(flow: Flow, atClientRedirect: BrowserResponse): Promise<Record<string, unknown>> {
  const back = new URL(atClientRedirect.location ?? '');
  expect(back.searchParams.get('state')).toBe(flow.state);
  const code = back.searchParams.get('code');
  expect(code).toBeTruthy();
  const res = await fetch(`${flow.gw.issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'authorization_code', code: code ?? '', redirect_uri: flow.redirectUri, code_verifier: flow.verifier, client_id: flow.clientId, resource: flow.gw.resource }),
  });
  const body = (await res.json()) as Record<string, unknown>;
  expect(res.status, JSON.stringify(body)).toBe(200);
  return body;
}

describe('login through the enterprise IdP', () => {
  let gw: IdpGateway;
  beforeAll(async () => {
    gw = await startIdpGateway(USERS);
  });
  afterAll(async () => {
    await gw?.stop();
  });

  it('logs alice in, asks consent once, and mints a token with her groups as roles', async () => {
    const flow = newFlow(gw);
    const consent = await loginAt(flow, 'alice');
    expect(consent.status).toBe(200);
    expect(consent.url).toMatch(/\/oauth\/interaction\/[^/]+$/);
    expect(consent.body).toContain('Test Agent');
    expect(consent.body).toContain(AGENT.id);
    expect(consent.body).toContain('127.0.0.1:1');
    expect(consent.body).toContain(gw.resource);
    expect(consent.body).toContain('<code>mcp</code>');
    expect(consent.body).toContain('alice');

    const back = await approve(flow, consent);
    const tokens = await redeem(flow, back);
    const claims = decodeJwt(String(tokens.access_token));
    expect(claims).toMatchObject({ iss: gw.issuer, aud: gw.resource, sub: 'alice', client_id: AGENT.id, tenant: 'default', scope: 'mcp' });
    expect([...(claims.roles as string[])].sort()).toEqual(['developer', 'operator']);
    expect(await gw.as.accounts.find('alice')).toMatchObject({ id: 'alice', tenant: 'default', claims: { email: 'alice@example.com', groups: ['eng', 'ops'] } });

    // A second login of the same user for the same client, in a fresh browser: no consent page.
    const again = newFlow(gw);
    const direct = await loginAt(again, 'alice');
    expect(direct.status).toBe(303);
    expect(direct.location?.startsWith(AGENT.redirectUri)).toBe(true);
    const second = await redeem(again, direct);
    expect(decodeJwt(String(second.access_token)).sub).toBe('alice');
  });

  it('serves the consent page unframeable, with a CSP that loads nothing', async () => {
    const consent = await loginAt(newFlow(gw), 'bob');
    expect(consent.status).toBe(200);
    expect(consent.headers.get('x-frame-options')).toBe('DENY');
    const csp = consent.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("form-action 'self'");
    expect(consent.headers.get('cache-control')).toBe('no-store');
    expect(consent.headers.get('x-content-type-options')).toBe('nosniff');
  });

  it('refuses a consent POST without the CSRF token, with a wrong one, with another login\'s, or from another origin', async () => {
    const flow = newFlow(gw);
    const consent = await loginAt(flow, 'bob');
    const form = readForms(consent.body)[0];
    const token = form?.fields.csrf ?? '';
    expect(token).toMatch(/^[\w-]{43}$/);
    const action = new URL(form?.action ?? '', consent.url).href;

    const missing = await flow.browser.request(action, { form: { decision: 'approve' } });
    const wrong = await flow.browser.request(action, { form: { decision: 'approve', csrf: 'A'.repeat(43) } });
    const otherConsent = await loginAt(newFlow(gw), 'bob');
    const otherToken = readForms(otherConsent.body)[0]?.fields.csrf ?? '';
    expect(otherToken).not.toBe(token);
    const foreign = await flow.browser.request(action, { form: { decision: 'approve', csrf: otherToken } });
    const crossSite = await flow.browser.request(action, { form: { decision: 'approve', csrf: token }, headers: { origin: 'https://evil.example' } });
    for (const refused of [missing, wrong, foreign, crossSite]) {
      expect(refused.status).toBe(403);
      expect(refused.location).toBeUndefined();
      expect(refused.headers.get('x-frame-options')).toBe('DENY');
    }
    // The refusals did not end the interaction: the real form still works.
    const back = await approve(flow, consent);
    expect(new URL(back.location ?? '').searchParams.get('code')).toBeTruthy();
  });

  it('sends access_denied back to the client when the user denies', async () => {
    const flow = newFlow(gw);
    const consent = await loginAt(flow, 'erin');
    const back = await flow.browser.submitForm(consent, /\/consent$/, { decision: 'deny' }, atClient(flow));
    const params = new URL(back.location ?? '').searchParams;
    expect(params.get('error')).toBe('access_denied');
    expect(params.get('state')).toBe(flow.state);
    expect(params.get('code')).toBeNull();
  });

  it('asks again for another client in the same browser (per-client consent), escaping its self-chosen name', async () => {
    const reg = await fetch(`${gw.issuer}/reg`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ client_name: '<script>alert("x")</script> & Co', redirect_uris: ['http://127.0.0.1:2/evil'], token_endpoint_auth_method: 'none', grant_types: ['authorization_code'], response_types: ['code'] }),
    });
    expect(reg.status).toBe(201);
    const registered = (await reg.json()) as { client_id: string };

    const browser = new HeadlessBrowser();
    const first = newFlow(gw, browser);
    await approve(first, await loginAt(first, 'frank'));

    // Same browser, gateway session and IdP session: no login step, but the new client still needs consent.
    const evil = newFlow(gw, browser, registered.client_id, 'http://127.0.0.1:2/evil');
    const page = await browser.navigate(authorizeUrl(evil), atClient(evil));
    expect(page.status).toBe(200);
    expect(page.url.startsWith(gw.issuer)).toBe(true);
    expect(page.body).not.toContain('<script>');
    expect(page.body).toContain('&#60;script&#62;alert(&#34;x&#34;)&#60;/script&#62; &#38; Co');
    expect(page.body).toContain('127.0.0.1:2');
    expect(page.headers.get('content-security-policy')).toContain("form-action 'self' http://127.0.0.1:2");
  });

  it('sends access_denied back to the client when the user cancels at the IdP', async () => {
    const flow = newFlow(gw);
    const idpPage = await flow.browser.navigate(authorizeUrl(flow), atClient(flow));
    const back = await flow.browser.submitForm(idpPage, /\/login$/, { deny: '1' }, atClient(flow));
    const params = new URL(back.location ?? '').searchParams;
    expect(params.get('error')).toBe('access_denied');
    expect(params.get('state')).toBe(flow.state);
  });

  it('refuses an IdP callback whose state it never issued, one forced into another browser, and one replayed', async () => {
    const unknown = await new HeadlessBrowser().request(`${gw.issuer}/interaction/idp-callback?code=x&state=forged`);
    expect(unknown.status).toBe(400);
    expect(unknown.headers.get('x-frame-options')).toBe('DENY');

    const flow = newFlow(gw);
    const idpPage = await flow.browser.navigate(authorizeUrl(flow), atClient(flow));
    const callback = await gw.idp.loginAs(flow.browser, idpPage, 'grace', { stopAt: (loc) => loc.includes('/oauth/interaction/idp-callback') });
    const callbackUrl = callback.location ?? '';
    expect(callbackUrl).toContain('/oauth/interaction/idp-callback?');
    // Login CSRF: the victim's browser holds no interaction, so the code is never redeemed there.
    const victim = await new HeadlessBrowser().navigate(callbackUrl);
    expect(victim.status).toBe(400);
    const consent = await flow.browser.navigate(callbackUrl, atClient(flow));
    expect(consent.status).toBe(200);
    expect(consent.body).toContain('Allow');
    // The state is single use.
    const replay = await flow.browser.navigate(callbackUrl, atClient(flow));
    expect(replay.status).toBe(400);
  });
});

describe('login through the enterprise IdP with a tenant claim', () => {
  let gw: IdpGateway;
  beforeAll(async () => {
    gw = await startIdpGateway(
      [
        { id: 'carol', groups: ['eng'], email: 'carol@example.com', tenant: 'globex' },
        { id: 'dave', groups: ['eng'], email: 'dave@example.com', tenant: 'acme' },
        { id: 'ed', groups: [], email: 'ed@example.com', tenant: 'acme' },
        { id: 'fay', groups: [], email: 'fay@example.com', tenant: 'acme' },
      ],
      { idp: { tenantClaim: 'tenant' } },
    );
  });
  afterAll(async () => {
    await gw?.stop();
  });

  it('fails the login of a user whose tenant the gateway does not serve', async () => {
    const flow = newFlow(gw);
    const back = await loginAt(flow, 'carol');
    const params = new URL(back.location ?? '').searchParams;
    expect(params.get('error')).toBe('access_denied');
    expect(params.get('error_description')).toMatch(/tenant/);
    expect(await gw.as.accounts.find('carol')).toBeUndefined();
  });

  it('puts a served tenant on the account and the token', async () => {
    const flow = newFlow(gw, undefined, ACME_AGENT.id, ACME_AGENT.redirectUri);
    const tokens = await redeem(flow, await approve(flow, await loginAt(flow, 'dave')));
    expect(decodeJwt(String(tokens.access_token))).toMatchObject({ sub: 'dave', tenant: 'acme', roles: ['developer'] });
    expect(await gw.as.accounts.find('dave')).toMatchObject({ tenant: 'acme', roles: ['developer'] });
  });

  it('refuses a user of another tenant than the client with access_denied, and logs it without secrets', async () => {
    const flow = newFlow(gw);
    const back = await loginAt(flow, 'ed');
    const params = new URL(back.location ?? '').searchParams;
    expect(params.get('error')).toBe('access_denied');
    expect(params.get('error_description')).toBe('the user belongs to another tenant than this client');
    expect(params.get('code')).toBeNull();
    expect(await gw.as.accounts.find('ed')).toBeUndefined();
    const logged = gw.logLines.filter((l) => l['msg'] === 'oauth: refused a user of another tenant than the client');
    expect(logged.at(-1)).toMatchObject({ kind: 'auth', client_id: AGENT.id, error: 'access_denied' });
    expect(JSON.stringify(logged)).not.toMatch(/code=|state=|secret/i);
  });

  it('refuses it too when the user is already signed in at the gateway through a client of their tenant', async () => {
    const browser = new HeadlessBrowser();
    const own = newFlow(gw, browser, ACME_AGENT.id, ACME_AGENT.redirectUri);
    await redeem(own, await approve(own, await loginAt(own, 'fay')));
    // Same browser, same gateway session: no login step, straight to the (refused) consent.
    const other = newFlow(gw, browser);
    const back = await browser.navigate(authorizeUrl(other), atClient(other));
    const params = new URL(back.location ?? '').searchParams;
    expect(params.get('error')).toBe('access_denied');
    expect(params.get('state')).toBe(other.state);
    expect(params.get('code')).toBeNull();
  });
});

describe('login while the enterprise IdP is down', () => {
  it('answers temporarily_unavailable to the client, not a client fault', async () => {
    const gw = await startIdpGateway([{ id: 'zoe', groups: [], email: 'zoe@example.com' }]);
    try {
      await gw.idp.stop();
      const flow = newFlow(gw);
      const back = await flow.browser.navigate(authorizeUrl(flow), atClient(flow));
      const params = new URL(back.location ?? '').searchParams;
      expect(params.get('error')).toBe('temporarily_unavailable');
      expect(params.get('state')).toBe(flow.state);
    } finally {
      await gw.stop();
    }
  });
});
