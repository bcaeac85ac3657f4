/**
 * The connect routes over real HTTP on 127.0.0.1 under `auth.mode: none` (no identity step),
 * with a fake upstream authorizer: the whole happy path, and every refusal of the browser side
 * (CSRF, cookie binding, callbacks in another browser, expiry), with the page headers. The
 * identity step of `auth.mode: oauth` is proven in test/integration/connect-page.test.ts.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../clock.ts';
import { configSchema, type ConfigInput } from '../config/schema.ts';
import { HeadlessBrowser, type BrowserResponse } from '../../test/fixtures/headless-browser.ts';
import { ConsentFlows, type ConsentFlow, type ConsentFlowRequest } from './consent-flows.ts';
import { createConnectRoutes } from './connect-routes.ts';
import { FAKE_AUTHORIZE_URL, fakeUpstreamAuthorizations, recordingLogger, type FakeUpstreamAuthorizations, type LogLine } from './connect.fixtures.ts';

interface Harness {
  readonly base: string;
  readonly clock: ManualClock;
  readonly flows: ConsentFlows;
  readonly upstream: FakeUpstreamAuthorizations;
  readonly logLines: LogLine[];
  readonly ended: ConsentFlow[];
}

const servers: Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

async function start(options: { publicBase?: string; auth?: ConfigInput['auth'] } = {}): Promise<Harness> {
  const clock = new ManualClock();
  const config = configSchema.parse({
    targets: { files: { transport: 'streamable-http', url: 'https://files.example/mcp', credentials: { mode: 'user-oauth', displayName: '<b>Files</b> & "Co"' } } },
    ...(options.auth === undefined ? {} : { auth: options.auth }),
  });
  const server = createServer();
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const publicBase = options.publicBase ?? base;
  const flows = new ConsentFlows({ clock, publicBase: () => publicBase, config: () => config });
  const ended: ConsentFlow[] = [];
  flows.onComplete((f) => ended.push(f));
  const upstream = fakeUpstreamAuthorizations();
  const log = recordingLogger();
  const routes = createConnectRoutes({ flows, clock, config: () => config, publicBase: () => publicBase, upstream: () => upstream, identity: () => undefined, logger: log });
  server.on('request', (req, res) => {
    void routes.handle(req, res).then((handled) => {
      if (!handled) res.writeHead(404).end();
    });
  });
  return { base, clock, flows, upstream, logLines: log.lines, ended };
}

const REQUEST: ConsentFlowRequest = { tenant: 'default', user: 'anonymous', agent: 'agent <x>', target: 'files', reason: 'not_authorized', scopes: ['files:read', 'files:<write>'] };

/** The connect page's URL on the test server (the flow's own URL may name another public base). */
function pageUrl(h: Harness, id: string): string {
  return `${h.base}/upstream-auth/connect/${id}`;
}

const atUpstream = (loc: string): boolean => loc.startsWith(FAKE_AUTHORIZE_URL);

async function approve(h: Harness, browser: HeadlessBrowser, page: BrowserResponse): Promise<{ res: BrowserResponse; state: string }> {
  const res = await browser.submitForm(page, /\/upstream-auth\/connect\//, { decision: 'approve' }, atUpstream);
  expect(res.status).toBe(303);
  return { res, state: new URL(res.location ?? '').searchParams.get('state') ?? '' };
}

function expectPageHeaders(res: BrowserResponse): void {
  expect(res.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
  expect(res.headers.get('content-security-policy')).toContain("default-src 'none'");
  expect(res.headers.get('x-frame-options')).toBe('DENY');
  expect(res.headers.get('cache-control')).toBe('no-store');
  expect(res.headers.get('referrer-policy')).toBe('no-referrer');
}

describe('the connect page (auth.mode none)', () => {
  it('runs the whole flow: consent page, approve, upstream, callback, completed', async () => {
    const h = await start();
    const e = h.flows.create(REQUEST);
    const browser = new HeadlessBrowser();

    const page = await browser.request(pageUrl(h, e.elicitationId));
    expect(page.status).toBe(200);
    expectPageHeaders(page);
    expect(page.headers.get('set-cookie')).toMatch(/^gatehouse_connect=[A-Za-z0-9_-]{43}; Path=\/upstream-auth\/; HttpOnly; SameSite=Lax; Max-Age=1200$/);
    // Everything printed is escaped.
    expect(page.body).toContain('&#60;b&#62;Files&#60;/b&#62; &#38; &#34;Co&#34;');
    expect(page.body).not.toContain('<b>Files');
    expect(page.body).toContain('<code>agent &#60;x&#62;</code>');
    expect(page.body).toContain('<code>files:&#60;write&#62;</code>');
    expect(page.body).toContain('without sign-in');

    const { res, state } = await approve(h, browser, page);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(h.upstream.begun).toEqual([{ target: 'files', who: { tenant: 'default', user: 'anonymous' }, scopes: ['files:read', 'files:<write>'], redirectUri: `${h.base}/upstream-auth/callback`, state }]);
    expect(h.flows.get(e.elicitationId)?.status).toBe('pending');

    // The upstream authorization server sends the browser back.
    const done = await browser.request(`${h.base}/upstream-auth/callback?code=c0de&state=${state}&iss=https%3A%2F%2Fupstream-as.example`);
    expect(done.status).toBe(200);
    expectPageHeaders(done);
    expect(done.body).toContain('Connected');
    expect(done.body).toContain('retry');
    expect(h.upstream.completed.map((u) => u.href)).toEqual([`${h.base}/upstream-auth/callback?code=c0de&state=${state}&iss=https%3A%2F%2Fupstream-as.example`]);
    expect(h.flows.get(e.elicitationId)?.status).toBe('completed');
    expect(h.ended.map((f) => [f.elicitationId, f.status])).toEqual([[e.elicitationId, 'completed']]);

    // The link is spent.
    expect((await browser.request(pageUrl(h, e.elicitationId))).status).toBe(410);
  });

  it('refuses a POST without the CSRF token, with a wrong one, without the cookie, or marked cross-site (403)', async () => {
    const h = await start();
    const e = h.flows.create(REQUEST);
    const browser = new HeadlessBrowser();
    const page = await browser.request(pageUrl(h, e.elicitationId));
    const csrf = /name="csrf" value="([^"]+)"/.exec(page.body)?.[1] ?? '';
    expect(csrf).not.toBe('');
    const url = pageUrl(h, e.elicitationId);

    const refusals = [
      await browser.request(url, { form: { decision: 'approve' } }),
      await browser.request(url, { form: { decision: 'approve', csrf: `${csrf.slice(0, -2)}AA` } }),
      await new HeadlessBrowser().request(url, { form: { decision: 'approve', csrf } }),
      await browser.request(url, { form: { decision: 'approve', csrf }, headers: { 'sec-fetch-site': 'cross-site' } }),
      await browser.request(url, { form: { decision: 'approve', csrf }, headers: { origin: 'https://evil.example' } }),
    ];
    for (const res of refusals) {
      expect(res.status).toBe(403);
      expectPageHeaders(res);
    }
    expect(h.upstream.begun).toHaveLength(0);
    expect(h.flows.get(e.elicitationId)?.status).toBe('pending');

    // The same browser with its token goes through.
    const ok = await browser.request(url, { form: { decision: 'approve', csrf }, headers: { 'sec-fetch-site': 'same-origin', origin: h.base } });
    expect(ok.status).toBe(303);
  });

  it('refuses a callback delivered to another browser, without redeeming it', async () => {
    const h = await start();
    const e = h.flows.create(REQUEST);
    const alice = new HeadlessBrowser();
    const { state } = await approve(h, alice, await alice.request(pageUrl(h, e.elicitationId)));

    // The phishing shape: the approver sends the upstream URL to someone else, whose browser comes back.
    const other = await new HeadlessBrowser().request(`${h.base}/upstream-auth/callback?code=victim-code&state=${state}`);
    expect(other.status).toBe(403);
    expectPageHeaders(other);
    expect(other.body).not.toContain('victim-code');
    expect(h.upstream.completed).toHaveLength(0);
    expect(h.flows.get(e.elicitationId)?.status).toBe('pending');
    expect(h.logLines.map((l) => l.fields['event'])).toContain('callback_wrong_browser');
    expect(JSON.stringify(h.logLines)).not.toContain('victim-code');

    // The state was single-use: even the right browser cannot replay it now.
    expect((await alice.request(`${h.base}/upstream-auth/callback?code=c&state=${state}`)).status).toBe(400);
    expect((await alice.request(`${h.base}/upstream-auth/callback?code=c&state=made-up`)).status).toBe(400);
    expect(h.upstream.completed).toHaveLength(0);
  });

  it('answers 410 for an expired flow and 400 for an unknown one', async () => {
    const h = await start();
    const e = h.flows.create(REQUEST);
    const browser = new HeadlessBrowser();
    const page = await browser.request(pageUrl(h, e.elicitationId));
    h.clock.advance(10 * 60_000);
    const expired = await browser.request(pageUrl(h, e.elicitationId));
    expect(expired.status).toBe(410);
    expectPageHeaders(expired);
    expect(expired.body).toContain('expired');
    expect((await browser.submitForm(page, /\/upstream-auth\/connect\//, { decision: 'approve' })).status).toBe(410);
    expect(h.upstream.begun).toHaveLength(0);

    expect((await browser.request(pageUrl(h, 'AAAAAAAAAAAAAAAAAAAAAA'))).status).toBe(400);
    expect((await browser.request(pageUrl(h, '..%2F..%2Fetc'))).status).toBe(400);
    // One TTL after expiry the flow is forgotten.
    h.clock.advance(10 * 60_000);
    h.flows.create({ ...REQUEST, user: 'someone-else' });
    expect((await browser.request(pageUrl(h, e.elicitationId))).status).toBe(400);
  });

  it('ends the flow declined on Deny', async () => {
    const h = await start();
    const e = h.flows.create(REQUEST);
    const browser = new HeadlessBrowser();
    const page = await browser.request(pageUrl(h, e.elicitationId));
    const res = await browser.submitForm(page, /\/upstream-auth\/connect\//, { decision: 'deny' });
    expect(res.status).toBe(200);
    expect(res.body).toContain('Nothing was connected');
    expect(h.upstream.begun).toHaveLength(0);
    expect(h.ended.map((f) => f.status)).toEqual(['declined']);
    expect((await browser.request(pageUrl(h, e.elicitationId))).status).toBe(410);
  });

  it('never echoes upstream errors, codes or tokens on its pages or in its logs', async () => {
    const h = await start();
    const e = h.flows.create(REQUEST);
    const browser = new HeadlessBrowser();
    const page = await browser.request(pageUrl(h, e.elicitationId));

    h.upstream.failBegin = new Error('upstream body: secret-registration-XYZ');
    const failed = await browser.submitForm(page, /\/upstream-auth\/connect\//, { decision: 'approve' }, atUpstream);
    expect(failed.status).toBe(502);
    expectPageHeaders(failed);
    expect(failed.body).not.toContain('secret-registration-XYZ');

    h.upstream.failBegin = undefined;
    const { state } = await approve(h, browser, await browser.request(pageUrl(h, e.elicitationId)));
    h.upstream.failComplete = new Error('token endpoint said: access_token=tok-SECRET');
    const res = await browser.request(`${h.base}/upstream-auth/callback?code=code-SECRET&state=${state}&error_description=%3Cscript%3Ealert(1)%3C%2Fscript%3E`);
    expect(res.status).toBe(502);
    expectPageHeaders(res);
    for (const secret of ['tok-SECRET', 'code-SECRET', '<script>', state]) {
      expect(res.body).not.toContain(secret);
      expect(JSON.stringify(h.logLines)).not.toContain(secret);
    }
    expect(JSON.stringify(h.logLines)).not.toContain('secret-registration-XYZ');
    expect(h.flows.get(e.elicitationId)?.status).toBe('pending');

    // The user denied at the upstream: a refusal page, and still nothing echoed.
    h.upstream.failComplete = undefined;
    const again = await approve(h, browser, await browser.request(pageUrl(h, e.elicitationId)));
    const denied = await browser.request(`${h.base}/upstream-auth/callback?error=access_denied&error_description=%3Cscript%3E&state=${again.state}`);
    expect(denied.status).toBe(403);
    expect(denied.body).not.toContain('<script>');
  });

  it('under https the cookie is __Host- (Secure, Path=/): no sibling subdomain can plant a browser id', async () => {
    const h = await start({ publicBase: 'https://gw.example' });
    const e = h.flows.create(REQUEST);
    expect(e.url).toBe(`https://gw.example/upstream-auth/connect/${e.elicitationId}`);
    const page = await new HeadlessBrowser().request(pageUrl(h, e.elicitationId));
    expect(page.headers.get('set-cookie')).toMatch(/^__Host-gatehouse_connect=[\w-]{43}; Path=\/; HttpOnly; SameSite=Lax; Max-Age=\d+; Secure$/);
  });

  it('over loopback http the cookie stays under /upstream-auth/ and is not Secure', async () => {
    const h = await start();
    const page = await new HeadlessBrowser().request(pageUrl(h, h.flows.create(REQUEST).elicitationId));
    expect(page.headers.get('set-cookie')).toMatch(/^gatehouse_connect=[\w-]{43}; Path=\/upstream-auth\/; HttpOnly; SameSite=Lax; Max-Age=\d+$/);
  });

  it('answers its own paths only, with pages for what it does not serve', async () => {
    const h = await start();
    const browser = new HeadlessBrowser();
    expect((await browser.request(`${h.base}/upstream-auth/elsewhere`)).status).toBe(404);
    const put = await browser.request(pageUrl(h, h.flows.create(REQUEST).elicitationId), { method: 'PUT' });
    expect(put.status).toBe(405);
    expectPageHeaders(put);
    const outside = await browser.request(`${h.base}/upstream-authx`);
    expect(outside.status).toBe(404);
    expect(outside.body).toBe('');
  });

  it('fails closed under auth.mode oauth when no browser identity is available', async () => {
    const h = await start({ auth: { mode: 'oauth' } });
    const e = h.flows.create(REQUEST);
    const res = await new HeadlessBrowser().request(pageUrl(h, e.elicitationId));
    expect(res.status).toBe(503);
    expectPageHeaders(res);
    expect(res.body).not.toContain('<form');
  });
});
