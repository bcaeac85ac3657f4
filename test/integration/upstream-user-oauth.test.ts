/**
 * Per-user upstream OAuth (the third auth tier) end to end through the real gateway: two users
 * of the enterprise IdP (alice, bob), each signed in to the gateway in their own browser with
 * an agent holding a gateway access token, in front of a real OAuth-protected MCP server with
 * its own authorization server and users (`alice-up`, `bob-up`). The gateway registers itself
 * there dynamically (DCR), keeps each user's upstream tokens in the vault and sends each user's
 * calls with that user's token only.
 *
 * In order, sharing one deployment: the operator's first authorization, a second user's URL
 * elicitation (-32042), the phishing refusal, upstream revocation → re-consent, the 2026-07-28
 * InputRequiredResult, and the canary (no upstream secret in any log, audit row or admin
 * answer). Then an operator's revocation through the admin API. A second deployment runs the
 * 2026-07-28 retry against a target the gateway speaks 2025-11-25 to.
 */
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GatehouseConfig } from '../../src/config/schema.ts';
import { FRESH_TOKEN_MS } from '../../src/upstream-auth/oauth-credential.ts';
import { HeadlessBrowser } from '../fixtures/headless-browser.ts';
import { PROTECTED_TOOLS } from '../fixtures/protected-upstream.ts';
import type { TestIdpUser } from '../fixtures/test-idp.ts';
import {
  connectInBrowser, signIn, startUpstreamOAuthStack,
  type GatewayAgent, type JsonRpcAnswer, type NotificationStream, type UpstreamOAuthStack,
} from '../support/upstream-oauth-stack.ts';

const USERS: TestIdpUser[] = ['alice', 'bob', 'carol'].map((id) => ({ id, groups: ['staff'], email: `${id}@example.com` }));
const DISPLAY_NAME = 'Protected Files';
const URL_ELICITATION = { elicitation: { url: {} } };
const ELICITATION_ID = /^[A-Za-z0-9_-]{22}$/;
/** The longest a test waits for a notification the gateway should send (it comes within milliseconds). */
const NOTIFICATION_WAIT_MS = 3_000;

interface Elicitation {
  readonly mode: string;
  readonly elicitationId: string;
  readonly url: string;
  readonly message: string;
}

/** The `whoami` answer: the upstream token's subject and client. */
function whoami(answer: JsonRpcAnswer): { sub?: string; client_id?: string; scope?: string } {
  const content = answer.result?.['content'] as Array<{ type: string; text: string }> | undefined;
  if (content?.[0]?.type !== 'text') throw new Error(`whoami did not answer: ${JSON.stringify(answer)}`);
  return JSON.parse(content[0].text) as { sub?: string; client_id?: string; scope?: string };
}

function toolNames(answer: JsonRpcAnswer): string[] {
  return ((answer.result?.['tools'] ?? []) as Array<{ name: string }>).map((t) => t.name).sort();
}

/** The one URL elicitation of a -32042 answer. */
function elicitationOf(answer: JsonRpcAnswer): Elicitation {
  const list = answer.error?.data?.['elicitations'] as Elicitation[] | undefined;
  if (answer.error?.code !== -32042 || list?.length !== 1) throw new Error(`expected one URL elicitation, got ${JSON.stringify(answer)}`);
  return list[0]!;
}

describe('per-user upstream OAuth through the gateway: two users, two upstream identities', () => {
  let stack: UpstreamOAuthStack;
  const browsers = { alice: new HeadlessBrowser(), bob: new HeadlessBrowser(), carol: new HeadlessBrowser() };
  let alice: GatewayAgent;
  let bob: GatewayAgent;
  /** The third user's agent, who first meets the target through a 2026-07-28 request. */
  let carol: GatewayAgent;
  /** Their sessions' GET streams. */
  const streams: Record<string, NotificationStream> = {};
  /** The gateway's client id at the upstream AS (its dynamic registration). */
  let upstreamClientId: string;
  /** How many requests the gateway's tokenless probe made at start (they carry no token). */
  let probes = 0;
  /** Every upstream token and client secret the gateway held at some point (read from its vault). */
  const upstreamSecrets = new Set<string>();
  /** Pages the browsers saw at the end of each connect flow. */
  const donePages: string[] = [];

  const collectSecrets = async (): Promise<void> => {
    const stored = await stack.storedSecrets();
    for (const { access, refresh } of stored.tokens.values()) {
      upstreamSecrets.add(access);
      if (refresh !== undefined) upstreamSecrets.add(refresh);
    }
    if (stored.clientSecret !== undefined) upstreamSecrets.add(stored.clientSecret);
  };
  const rowOf = async (user: string): Promise<Record<string, unknown> | undefined> =>
    (await stack.credentialRows()).find((r) => r['subject'] === `user:${user}` && r['kind'] === 'oauth-tokens');
  const mcpWire = (): number => stack.wire.filter((w) => w.server === 'mcp').length;

  /** No request the upstream received carried a gateway token: every Bearer there is its own AS's. */
  const expectNoGatewayTokenUpstream = (agents: readonly GatewayAgent[]): void => {
    const bearers = stack.wire.flatMap((w) => (typeof w.headers['authorization'] === 'string' && w.server === 'mcp' ? [w.headers['authorization']] : []));
    expect(bearers.length).toBeGreaterThan(0);
    for (const header of bearers) {
      expect(header).toMatch(/^Bearer /);
      const claims = decodeJwt(header.slice('Bearer '.length));
      expect(claims.iss).toBe(stack.upstream.issuer);
      expect(claims.aud).toBe(stack.upstream.mcpUrl);
      expect(claims['client_id']).toBe(upstreamClientId);
    }
    const everything = JSON.stringify(stack.wire);
    for (const agent of agents) expect(everything).not.toContain(agent.accessToken);
  };

  beforeAll(async () => {
    stack = await startUpstreamOAuthStack({ users: USERS, credentials: { displayName: DISPLAY_NAME } });
    alice = await signIn(stack, browsers.alice, 'alice', 'Alice Agent');
    bob = await signIn(stack, browsers.bob, 'bob', 'Bob Agent');
    await alice.initialize();
    await bob.initialize();
    streams['alice'] = await alice.listen();
    streams['bob'] = await bob.listen();
  }, 60_000);

  afterAll(async () => {
    for (const stream of Object.values(streams)) stream.close();
    await stack?.stop();
  });

  it("bootstrap: the operator's link, alice's identity (SSO), consent, upstream login as alice-up; then the target lists its tools and whoami is alice-up", async () => {
    // Nobody has authorized the target: discovery had no token, so it lists nothing. The
    // upstream saw only the gateway's tokenless probe, which met the 401 the first
    // authorization learns the authorization server and scope from.
    expect(toolNames(await alice.request('tools/list'))).toEqual([]);
    expect(stack.upstream.requests.length).toBeGreaterThan(0);
    expect(stack.upstream.requests.every((r) => !r.authorization && r.status === 401)).toBe(true);
    probes = stack.upstream.requests.length;

    const res = await stack.operatorConnect('alice', alice.clientId);
    expect(res.status).toBe(200);
    const link = (await res.json()) as { elicitationId: string; url: string; expiresAt: number };
    expect(link.elicitationId).toMatch(ELICITATION_ID);
    expect(link.url).toBe(`${stack.gw.base}/upstream-auth/connect/${link.elicitationId}`);

    const pages = await connectInBrowser(stack, browsers.alice, link.url, 'alice-up');
    // Her gateway session from the agent's sign-in answered the identity step: no IdP form.
    expect(pages.consent.url).toBe(link.url);
    expect(pages.consent.body).toContain('Signed in to the gateway as <strong>alice</strong>');
    expect(pages.consent.body).toContain(DISPLAY_NAME);
    // The gateway registered itself at the upstream AS (DCR) and sent the browser there with PKCE and the resource.
    const registrations = stack.wire.filter((w) => w.server === 'as' && w.method === 'POST' && w.url === '/reg');
    expect(registrations).toHaveLength(1);
    const stored = await stack.storedSecrets();
    upstreamClientId = stored.clientId ?? '';
    expect(upstreamClientId).not.toBe('');
    expect(stored.clientSecret).toBeTruthy();
    const authorize = new URL(pages.toUpstream.location ?? '');
    expect(`${authorize.origin}${authorize.pathname}`).toBe(`${stack.upstream.issuer}/auth`);
    expect(Object.fromEntries(authorize.searchParams)).toMatchObject({
      response_type: 'code',
      client_id: upstreamClientId,
      code_challenge_method: 'S256',
      redirect_uri: `${stack.gw.base}/upstream-auth/callback`,
      resource: stack.upstream.mcpUrl,
    });
    expect(authorize.searchParams.get('state')).toMatch(/^[\w-]{43}$/);
    expect(pages.done.url.startsWith(`${stack.gw.base}/upstream-auth/callback?`)).toBe(true);
    expect(pages.done.status).toBe(200);
    expect(pages.done.body).toContain(`${DISPLAY_NAME} is connected`);
    donePages.push(pages.done.body);
    expect(stack.upstream.tokenRequests).toMatchObject([{ grantType: 'authorization_code', clientId: upstreamClientId, resource: stack.upstream.mcpUrl, status: 200 }]);
    expect(await rowOf('alice')).toMatchObject({ tenant: 'default', target: 'files', status: 'active', failures: 0, lastError: null });
    await collectSecrets();

    // What the first authorization is for: the target's tools appear, and sessions are told so.
    await streams['alice']!.next('notifications/tools/list_changed', NOTIFICATION_WAIT_MS);
    expect(toolNames(await alice.request('tools/list'))).toEqual([...PROTECTED_TOOLS].sort());
    expect(toolNames(await alice.request('tools/list'))).toEqual([...PROTECTED_TOOLS].sort());
    expect(whoami(await alice.callTool('whoami'))).toMatchObject({ sub: 'alice-up', client_id: upstreamClientId });
  });

  it('bob gets a URL elicitation to the gateway (-32042), connects as bob-up; each user keeps their own upstream identity and no gateway token goes upstream', async () => {
    const upstreamBefore = mcpWire();
    const refused = await bob.callTool('whoami');
    expect(refused.error).toMatchObject({ code: -32042, data: { type: 'upstream_authorization_required', target: 'files', reason: 'not_authorized' } });
    const e = elicitationOf(refused);
    expect(e.mode).toBe('url');
    expect(e.elicitationId).toMatch(ELICITATION_ID);
    // The gateway's connect page (which proves the user first), never the upstream's authorization URL.
    expect(e.url).toBe(`${stack.gw.base}/upstream-auth/connect/${e.elicitationId}`);
    expect(e.url.startsWith(stack.upstream.issuer)).toBe(false);
    expect(e.url).not.toContain('bob');
    expect(e.message).toContain(DISPLAY_NAME);
    // bob holds no token: refused before any request to the upstream.
    expect(mcpWire()).toBe(upstreamBefore);

    const pages = await connectInBrowser(stack, browsers.bob, e.url, 'bob-up');
    expect(pages.consent.body).toContain('Signed in to the gateway as <strong>bob</strong>');
    expect(pages.done.status).toBe(200);
    donePages.push(pages.done.body);
    // The session that was handed the elicitation is told it completed.
    const complete = await streams['bob']!.next('notifications/elicitation/complete', NOTIFICATION_WAIT_MS);
    expect(complete.params).toEqual({ elicitationId: e.elicitationId });
    expect(streams['alice']!.received.filter((n) => n.method === 'notifications/elicitation/complete')).toEqual([]);
    // The registration is the target's, reused: no second DCR.
    expect(stack.wire.filter((w) => w.server === 'as' && w.url === '/reg')).toHaveLength(1);
    await collectSecrets();

    expect(whoami(await bob.callTool('whoami'))).toMatchObject({ sub: 'bob-up', client_id: upstreamClientId });
    expect(whoami(await alice.callTool('whoami'))).toMatchObject({ sub: 'alice-up', client_id: upstreamClientId });
    expect(whoami(await bob.callTool('whoami'))).toMatchObject({ sub: 'bob-up' });

    // The upstream's own view: every request verified as one of its users, through the gateway's one client.
    const seen = stack.upstream.requests.slice(probes);
    expect(new Set(seen.map((r) => r.sub))).toEqual(new Set(['alice-up', 'bob-up']));
    for (const r of seen) expect(r).toMatchObject({ authorization: true, clientId: upstreamClientId });
    expect(seen.filter((r) => r.tool === 'whoami').map((r) => r.sub)).toEqual(['alice-up', 'bob-up', 'alice-up', 'bob-up']);
    expectNoGatewayTokenUpstream([alice, bob]);
  });

  it("phishing: alice's connect link opened in bob's signed-in browser is refused (403) and stores nothing for anyone", async () => {
    // For another agent than her own: a live flow of the same user, agent and target would be reused later.
    const link = (await (await stack.operatorConnect('alice', 'operator')).json()) as { url: string };
    const rowsBefore = await stack.credentialRows();
    const wireBefore = stack.wire.length;
    const tokensBefore = stack.upstream.tokenRequests.length;

    const refused = await browsers.bob.navigate(link.url);
    expect(refused.status).toBe(403);
    expect(refused.url.startsWith(`${stack.gw.base}/upstream-auth/identity`)).toBe(true);
    expect(refused.body).toContain('signed in as bob');
    expect(refused.body).not.toContain('alice');
    expect(refused.body).not.toContain('<form');
    // Nor can his browser approve it by posting the form.
    const posted = await browsers.bob.request(link.url, { form: { decision: 'approve', csrf: 'x'.repeat(43) } });
    expect(posted.status).toBe(403);

    expect(stack.gw.logLines.filter((l) => l['event'] === 'identity_mismatch')).toHaveLength(1);
    expect(await stack.credentialRows()).toEqual(rowsBefore);
    // Nothing reached the upstream: no authorization request, no token request.
    expect(stack.wire.length).toBe(wireBefore);
    expect(stack.upstream.tokenRequests.length).toBe(tokensBefore);
    expect(whoami(await bob.callTool('whoami'))).toMatchObject({ sub: 'bob-up' });
  });

  it("revocation at the upstream: alice's refresh meets invalid_grant, she is asked to consent again (reason reconsent), and after the connect flow her calls work", async () => {
    // Her token is past the gateway's "just obtained" window, so the 401 leads to a refresh (as it would hours later).
    stack.clock.offset += FRESH_TOKEN_MS + 1_000;
    const tokensBefore = stack.upstream.tokenRequests.length;
    expect(stack.upstream.revokeGrantsOf('alice-up')).toBe(1);

    const refused = await alice.callTool('whoami');
    expect(refused.error).toMatchObject({ code: -32042, data: { type: 'upstream_authorization_required', target: 'files', reason: 'reconsent' } });
    const e = elicitationOf(refused);
    expect(e.url).toBe(`${stack.gw.base}/upstream-auth/connect/${e.elicitationId}`);
    expect(e.message).toContain('expired or was revoked');
    expect(stack.upstream.tokenRequests.slice(tokensBefore)).toMatchObject([{ grantType: 'refresh_token', clientId: upstreamClientId, status: 400, error: 'invalid_grant' }]);
    expect(await rowOf('alice')).toMatchObject({ status: 'needs-consent', lastError: 'invalid_grant', refreshAt: null });
    // Known now: the next call is refused without another refresh.
    expect((await alice.callTool('whoami')).error?.data?.['reason']).toBe('reconsent');
    expect(stack.upstream.tokenRequests.length).toBe(tokensBefore + 1);
    // bob is untouched.
    expect(await rowOf('bob')).toMatchObject({ status: 'active' });
    expect(whoami(await bob.callTool('whoami'))).toMatchObject({ sub: 'bob-up' });

    // The revocation ended her upstream session too: the upstream login form comes back.
    const pages = await connectInBrowser(stack, browsers.alice, e.url, 'alice-up');
    expect(pages.done.status).toBe(200);
    donePages.push(pages.done.body);
    expect(stack.upstream.tokenRequests.at(-1)).toMatchObject({ grantType: 'authorization_code', status: 200 });
    expect(await rowOf('alice')).toMatchObject({ status: 'active', lastError: null });
    await collectSecrets();
    expect(whoami(await alice.callTool('whoami'))).toMatchObject({ sub: 'alice-up', client_id: upstreamClientId });
  });

  it('2026-07-28: a user without authorization gets an InputRequiredResult with the URL elicitation; the retry with its requestState after consent gets the result', async () => {
    carol = await signIn(stack, browsers.carol, 'carol', 'Carol Agent');
    // An agent that did not declare URL elicitation is never sent one (strict mrtr): -32021.
    const undeclared = await carol.modernCall('whoami', {}, {});
    expect(undeclared.answer.error).toMatchObject({ code: -32021, data: { requiredCapabilities: { elicitation: { url: {} } } } });

    const first = await carol.modernCall('whoami', {}, URL_ELICITATION);
    expect(first.status).toBe(200);
    const result = first.answer.result ?? {};
    expect(result['resultType']).toBe('input_required');
    const request = (result['inputRequests'] as Record<string, { method: string; params: Elicitation }>)['upstream-authorization'];
    expect(request?.method).toBe('elicitation/create');
    const e = request!.params;
    expect(e).toMatchObject({ mode: 'url', elicitationId: expect.stringMatching(ELICITATION_ID) });
    expect(e.url).toBe(`${stack.gw.base}/upstream-auth/connect/${e.elicitationId}`);
    expect(result['requestState']).toBe(`ghc1.${e.elicitationId}`);
    const retry = { requestState: result['requestState'], inputResponses: { 'upstream-authorization': { action: 'accept' } } };

    // Retried before she finished: asked again, nothing sent upstream.
    const upstreamBefore = mcpWire();
    expect((await carol.modernCall('whoami', {}, URL_ELICITATION, retry)).answer.result?.['resultType']).toBe('input_required');
    expect(mcpWire()).toBe(upstreamBefore);

    const pages = await connectInBrowser(stack, browsers.carol, e.url, 'carol-up');
    expect(pages.done.status).toBe(200);
    donePages.push(pages.done.body);
    await collectSecrets();
    const done = await carol.modernCall('whoami', {}, URL_ELICITATION, retry);
    expect(done.answer.error).toBeUndefined();
    expect(whoami(done.answer)).toMatchObject({ sub: 'carol-up', client_id: upstreamClientId });
    // Someone else's consent state is refused.
    const stolen = await alice.modernCall('whoami', {}, URL_ELICITATION, retry);
    expect(stolen.answer.error).toMatchObject({ code: -32602, data: { type: 'invalid_input_response' } });
  });

  it('canary: no upstream token or client secret in any log line, audit row, admin answer or page; no gateway token ever went upstream', async () => {
    // What was collected is real: the users' upstream tokens, issued by the upstream's AS to the gateway's client.
    const stored = await stack.storedSecrets();
    expect([...stored.tokens.keys()].sort()).toEqual(['user:alice', 'user:bob', 'user:carol']);
    for (const [subject, { access, refresh }] of stored.tokens) {
      expect(decodeJwt(access)).toMatchObject({ iss: stack.upstream.issuer, sub: `${subject.slice('user:'.length)}-up`, client_id: upstreamClientId });
      expect(refresh).toBeTruthy();
    }
    // alice's first and second token sets, bob's, carol's: access and refresh each, plus the client secret.
    expect(upstreamSecrets.size).toBe(4 * 2 + 1);
    const canaries = [...upstreamSecrets, stack.vaultKey];

    const audit = await fetch(`${stack.gw.adminBase}/audit`);
    expect(audit.status).toBe(200);
    const auditText = await audit.text();
    // The audit saw the calls (so its silence about the secrets means something).
    const rows = auditText.split('\n').filter(Boolean).map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(rows.filter((r) => r['tool'] === 'whoami' && r['errorType'] === 'upstream_authorization_required').map((r) => r['user'])).toEqual(expect.arrayContaining(['alice', 'bob']));
    expect(rows.some((r) => r['tool'] === 'whoami' && r['user'] === 'bob' && r['outcome'] === 'ok')).toBe(true);
    const answers = {
      logs: JSON.stringify(stack.gw.logLines),
      audit: auditText,
      credentials: await (await fetch(`${stack.gw.adminBase}/upstream-credentials`)).text(),
      metrics: await (await fetch(`${stack.gw.adminBase}/metrics`)).text(),
      readyz: await (await fetch(`${stack.gw.base}/readyz`)).text(),
      targets: JSON.stringify(stack.gw.gateway.targets()),
      pages: donePages.join('\n'),
    };
    expect(answers.credentials).toContain('user:carol');
    expect(answers.readyz).toContain('protected-files');
    for (const [where, text] of Object.entries(answers)) {
      for (const secret of canaries) expect(text.includes(secret), `a secret in ${where}`).toBe(false);
    }

    expectNoGatewayTokenUpstream([alice, bob, carol]);
    // Every token request the gateway made authenticated as its own registered client.
    for (const t of stack.upstream.tokenRequests) expect(t).toMatchObject({ clientId: upstreamClientId, clientAuth: 'client_secret_basic' });
  });

  it("an operator's DELETE of bob's upstream credential stops the gateway using it: bob is asked to authorize again, and the row stays deleted", async () => {
    const res = await fetch(`${stack.gw.adminBase}/upstream-credentials?tenant=default&target=files&subject=user:bob`, { method: 'DELETE' });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ deleted: 1 });
    expect(await rowOf('bob')).toBeUndefined();

    const after = await bob.callTool('whoami');
    expect(after.error?.data?.['reason'], `bob's call after the DELETE answered ${JSON.stringify(after.result ?? after.error)}`).toBe('not_authorized');
    // Once the old access token has expired, nothing may bring the deleted credential back.
    stack.clock.offset += 300_000;
    await bob.callTool('whoami');
    expect(await rowOf('bob'), "bob's row after his next call").toBeUndefined();
  });
});

describe('2026-07-28 consent retry against a target the gateway speaks 2025-11-25 to', () => {
  let stack: UpstreamOAuthStack;

  beforeAll(async () => {
    stack = await startUpstreamOAuthStack({ users: USERS.slice(0, 2), target: 'legacy-files' });
    const config = stack.gw.gateway.snapshot.config;
    await stack.gw.gateway.reload({ ...config, targets: { 'legacy-files': { ...config.targets['legacy-files']!, era: 'legacy' } } } as GatehouseConfig);
    // The first user, as in the bootstrap above.
    const browser = new HeadlessBrowser();
    const alice = await signIn(stack, browser, 'alice', 'Alice Agent');
    // Her session hears the target's tools arrive once she has authorized it.
    await alice.initialize();
    const stream = await alice.listen();
    const link = (await (await stack.operatorConnect('alice', alice.clientId)).json()) as { url: string };
    await connectInBrowser(stack, browser, link.url, 'alice-up');
    await stream.next('notifications/tools/list_changed', NOTIFICATION_WAIT_MS);
    stream.close();
  }, 60_000);

  afterAll(async () => {
    await stack?.stop();
  });

  it('the retry carrying the consent requestState gets the tool result, not invalid_input_response', async () => {
    expect(stack.gw.gateway.targets()[0]).toMatchObject({ name: 'legacy-files', era: 'legacy', tools: PROTECTED_TOOLS.length });
    const browser = new HeadlessBrowser();
    const bob = await signIn(stack, browser, 'bob', 'Bob Agent');
    const first = await bob.modernCall('whoami', {}, URL_ELICITATION);
    expect(first.answer.result?.['resultType']).toBe('input_required');
    const requestState = first.answer.result?.['requestState'];
    const e = (first.answer.result?.['inputRequests'] as Record<string, { params: Elicitation }>)['upstream-authorization']!.params;
    await connectInBrowser(stack, browser, e.url, 'bob-up');

    const done = await bob.modernCall('whoami', {}, URL_ELICITATION, { requestState, inputResponses: { 'upstream-authorization': { action: 'accept' } } });
    expect(done.answer.error).toBeUndefined();
    expect(whoami(done.answer)).toMatchObject({ sub: 'bob-up' });
  });
});
