/**
 * The upstream connect page under `auth.mode: oauth`, over real HTTP on 127.0.0.1: the
 * gateway's authorization server (wired as the composition root wires it, with the stand-in
 * enterprise IdP as its login) and the connect routes on one listener, the upstream authorizer
 * faked. Proves the identity step: the browser that opens a connect URL must sign in (or hold
 * an SSO session) as the flow's user; another user's browser is refused and nothing starts
 * (MCP 2025-11-25 elicitation, "Phishing").
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.ts';
import { configSchema } from '../../src/config/schema.ts';
import { createAuthorizationServer, type AuthorizationServer } from '../../src/auth/authorization-server.ts';
import { createEnterpriseAuth } from '../../src/auth/enterprise-auth.ts';
import { idpRedirectUri } from '../../src/auth/idp-login.ts';
import { connectClientId } from '../../src/auth/connect-identity.ts';
import { SqliteStore } from '../../src/storage/sqlite-store.ts';
import { ConsentFlows, type ConsentFlowRequest } from '../../src/upstream-auth/consent-flows.ts';
import { createConnectRoutes } from '../../src/upstream-auth/connect-routes.ts';
import { FAKE_AUTHORIZE_URL, fakeUpstreamAuthorizations, recordingLogger, type FakeUpstreamAuthorizations, type LogLine } from '../../src/upstream-auth/connect.fixtures.ts';
import { HeadlessBrowser, type BrowserResponse } from '../fixtures/headless-browser.ts';
import { startTestIdp, type TestIdp } from '../fixtures/test-idp.ts';

const USERS = [
  { id: 'alice', groups: [], email: 'alice@example.com', tenant: 'default' },
  { id: 'bob', groups: [], email: 'bob@example.com', tenant: 'default' },
  { id: 'carol', groups: [], email: 'carol@example.com', tenant: 'acme' },
];

interface ConnectGateway {
  readonly idp: TestIdp;
  readonly as: AuthorizationServer;
  readonly base: string;
  readonly flows: ConsentFlows;
  readonly upstream: FakeUpstreamAuthorizations;
  readonly logLines: LogLine[];
  stop(): Promise<void>;
}

/** The AS and the connect routes on one 127.0.0.1 listener, in the order the HTTP listener mounts them. */
async function startConnectGateway(): Promise<ConnectGateway> {
  const idp = await startTestIdp({ users: USERS });
  const dir = await mkdtemp(path.join(tmpdir(), 'gh-connect-'));
  const secretEnv = `GH_CONNECT_IDP_${createHash('sha256').update(dir).digest('hex').slice(0, 10)}`;
  process.env[secretEnv] = idp.clientSecret;
  const store = SqliteStore.open({ file: path.join(dir, 'gatehouse.db'), synchronous: 'normal', busyTimeoutMs: 5000 });
  await store.migrate();
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const config = configSchema.parse({
    listener: { host: '127.0.0.1', port: 0 },
    targets: { files: { transport: 'streamable-http', url: 'https://files.example/mcp', credentials: { mode: 'user-oauth', displayName: 'Example Files' } } },
    auth: {
      mode: 'oauth',
      tenants: ['default', 'acme'],
      idp: { issuer: idp.issuer, clientId: idp.clientId, clientSecret: { env: secretEnv }, tenantClaim: 'tenant' },
      clients: { agent: { name: 'Test Agent', redirectUris: ['http://127.0.0.1:1/cb'] } },
    },
  });
  const enterprise = createEnterpriseAuth({ auth: config.auth, configDir: dir, clock: systemClock });
  const as = await createAuthorizationServer({ config, publicBase: base, store: store.oauthStore(), configDir: dir, clock: systemClock, logger: pino({ level: 'silent' }), interactions: enterprise.interactions });
  await enterprise.install(as);
  await idp.allowRedirectUri(idpRedirectUri(as.issuer));

  const flows = new ConsentFlows({ clock: systemClock, publicBase: () => base, config: () => config });
  const upstream = fakeUpstreamAuthorizations();
  const log = recordingLogger();
  const routes = createConnectRoutes({ flows, clock: systemClock, config: () => config, publicBase: () => base, upstream: () => upstream, identity: () => as.browserIdentity, logger: log });
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    void (async () => {
      if (await as.handle(req, res)) return;
      if (await routes.handle(req, res)) return;
      res.writeHead(404).end();
    })().catch(() => {
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });
  return {
    idp,
    as,
    base,
    flows,
    upstream,
    logLines: log.lines,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await as.close();
      await store.close();
      await idp.stop();
      delete process.env[secretEnv];
      await rm(dir, { recursive: true, force: true });
    },
  };
}

const flowFor = (user: string, agent: string, tenant = 'default'): ConsentFlowRequest => ({ tenant, user, agent, target: 'files', reason: 'not_authorized', scopes: ['files:read'] });
const atIdentityReturn = (loc: string): boolean => new URL(loc).pathname === '/upstream-auth/identity';

describe('the connect page under auth.mode oauth', () => {
  let gw: ConnectGateway;
  beforeAll(async () => {
    gw = await startConnectGateway();
  });
  afterAll(async () => {
    await gw?.stop();
  });

  /** Open a connect URL in `browser`; sign in at the IdP as `user` when the AS asks for a login. */
  async function open(browser: HeadlessBrowser, url: string, user: string): Promise<BrowserResponse> {
    const first = await browser.navigate(url);
    if (!first.url.startsWith(gw.idp.issuer)) return first;
    return gw.idp.loginAs(browser, first, user);
  }

  it("signs the flow's own user in, shows consent, and completes", async () => {
    const e = gw.flows.create(flowFor('alice', 'agent'));
    const browser = new HeadlessBrowser();
    const loginPage = await browser.navigate(e.url);
    // No session yet: the round trip through the gateway's AS ends at the IdP's login form.
    expect(loginPage.status).toBe(200);
    expect(loginPage.url.startsWith(gw.idp.issuer)).toBe(true);
    const consent = await gw.idp.loginAs(browser, loginPage, 'alice');
    expect(consent.status).toBe(200);
    expect(consent.url).toBe(e.url);
    expect(consent.body).toContain('Signed in to the gateway as <strong>alice</strong>');
    expect(consent.body).toContain('Example Files');
    expect(consent.headers.get('x-frame-options')).toBe('DENY');

    const approved = await browser.submitForm(consent, /\/upstream-auth\/connect\//, { decision: 'approve' }, (loc) => loc.startsWith(FAKE_AUTHORIZE_URL));
    expect(approved.status).toBe(303);
    const state = new URL(approved.location ?? '').searchParams.get('state');
    expect(gw.upstream.begun.at(-1)).toMatchObject({ target: 'files', who: { tenant: 'default', user: 'alice' }, scopes: ['files:read'], redirectUri: `${gw.base}/upstream-auth/callback` });
    const done = await browser.request(`${gw.base}/upstream-auth/callback?code=upstream-code&state=${state}`);
    expect(done.status).toBe(200);
    expect(done.body).toContain('Example Files is connected');
    expect(gw.flows.get(e.elicitationId)?.status).toBe('completed');
  });

  it('uses an existing SSO session silently', async () => {
    const browser = new HeadlessBrowser();
    await open(browser, gw.flows.create(flowFor('alice', 'sso-agent-1')).url, 'alice');
    const e = gw.flows.create(flowFor('alice', 'sso-agent-2'));
    const consent = await browser.navigate(e.url);
    expect(consent.status).toBe(200);
    expect(consent.url).toBe(e.url);
    expect(consent.body).toContain('<form');
  });

  it("refuses another user's browser (403) and starts nothing, naming neither the flow's user nor its agent", async () => {
    const begun = gw.upstream.begun.length;
    const e = gw.flows.create(flowFor('alice', 'phish-agent'));
    const bob = new HeadlessBrowser();
    const refused = await open(bob, e.url, 'bob');
    expect(refused.status).toBe(403);
    expect(refused.url.startsWith(`${gw.base}/upstream-auth/identity`)).toBe(true);
    expect(refused.body).toContain('another user');
    expect(refused.body).toContain('bob');
    expect(refused.body).not.toContain('alice');
    expect(refused.body).not.toContain('phish-agent');
    expect(refused.body).not.toContain('<form');
    expect(refused.headers.get('x-frame-options')).toBe('DENY');
    expect(gw.logLines.map((l) => l.fields['event'])).toContain('identity_mismatch');

    // Opening it again in bob's browser (now with an SSO session) is refused the same way.
    const again = await bob.navigate(e.url);
    expect(again.status).toBe(403);
    // A POST from bob's browser cannot skip the identity step.
    const post = await bob.request(e.url, { form: { decision: 'approve', csrf: 'x'.repeat(43) } });
    expect(post.status).toBe(403);
    expect(gw.upstream.begun.length).toBe(begun);
    expect(gw.flows.get(e.elicitationId)?.status).toBe('pending');

    // The right user still can.
    const alice = await open(new HeadlessBrowser(), e.url, 'alice');
    expect(alice.status).toBe(200);
    expect(alice.body).toContain('<form');
  });

  it('refuses a user of another tenant with the same flow shape', async () => {
    const e = gw.flows.create(flowFor('carol', 'tenant-agent', 'default'));
    const refused = await open(new HeadlessBrowser(), e.url, 'carol');
    // carol belongs to acme: the login for the default tenant's connect client refuses her.
    expect(refused.status).toBe(403);
    expect(refused.body).not.toContain('<form');
    // Her own tenant's flow works.
    const own = gw.flows.create(flowFor('carol', 'tenant-agent', 'acme'));
    const consent = await open(new HeadlessBrowser(), own.url, 'carol');
    expect(consent.status).toBe(200);
    expect(consent.body).toContain('<form');
  });

  it('refuses the identity answer in another browser, and its code never buys a token', async () => {
    const alice = new HeadlessBrowser();
    await open(alice, gw.flows.create(flowFor('alice', 'replay-agent-1')).url, 'alice');
    const e = gw.flows.create(flowFor('alice', 'replay-agent-2'));
    const back = await alice.navigate(e.url, atIdentityReturn);
    expect(back.status).toBe(303);
    const identityUrl = back.location ?? '';
    const code = new URL(identityUrl).searchParams.get('code') ?? '';
    expect(code).not.toBe('');

    // The connect client is confidential with a secret nobody holds: no token from its codes.
    const token = await fetch(`${gw.as.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'authorization_code', code, client_id: connectClientId('default'), redirect_uri: `${gw.base}/upstream-auth/identity`, code_verifier: 'x'.repeat(43) }),
    });
    expect(token.status).toBe(401);

    const stranger = await new HeadlessBrowser().request(identityUrl);
    expect(stranger.status).toBe(403);
    expect(stranger.body).not.toContain(code);
    // Single use: the state is spent for alice too; she starts again from the link.
    expect((await alice.request(identityUrl)).status).toBe(400);
    const retry = await alice.navigate(e.url);
    expect(retry.status).toBe(200);
    expect(retry.body).toContain('<form');
  });
});
