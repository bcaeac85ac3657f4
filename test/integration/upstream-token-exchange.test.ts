/**
 * RFC 8693 token exchange toward an upstream authorization server, end to end through the real
 * gateway: a `user-oauth` target with `tokenExchange: { subjectToken: gateway-assertion }` in
 * front of the protected MCP server, whose AS trusts the gateway's issuer (its JWKS). No
 * consent page and no browser for the upstream: the gateway signs a short-lived assertion of
 * the user (the agent as `act`) and the upstream AS exchanges it, with the gateway's
 * pre-registered client authenticated, for an access token whose `sub` is the user and which
 * carries the agent as `act`. Two users, and two agents for one of them (each agent its own
 * upstream token); a user the upstream refuses gets a typed error; canary: no assertion,
 * upstream token or client secret in any log line, audit row or admin answer.
 *
 * Then cross-app access (`subjectToken: idp-id-token`, SEP-990) with the test IdP: the gateway
 * keeps each user's ID token from their gateway login (encrypted, in the vault), exchanges it
 * at the IdP for an ID-JAG and redeems that at the upstream (jwt-bearer). A user whose ID token
 * is gone is asked (-32042) to sign in again; the connect link's fresh IdP login keeps a new one.
 */
import { SUBJECT_ASSERTION_TTL_SECONDS } from '../../src/auth/authorization-server.ts';
import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose';
import type { GatehouseConfig } from '../../src/config/schema.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HeadlessBrowser } from '../fixtures/headless-browser.ts';
import { ID_JAG_TYP, JWT_BEARER_GRANT, JWT_TOKEN_TYPE, TOKEN_EXCHANGE_GRANT } from '../fixtures/protected-upstream-as.ts';
import { PROTECTED_TOOLS } from '../fixtures/protected-upstream.ts';
import type { TestIdpUser } from '../fixtures/test-idp.ts';
import { signIn, startUpstreamOAuthStack, type GatewayAgent, type JsonRpcAnswer, type UpstreamOAuthStack } from '../support/upstream-oauth-stack.ts';

const USERS: TestIdpUser[] = ['alice', 'bob', 'carol'].map((id) => ({ id, groups: ['staff'], email: `${id}@example.com` }));
const CLIENT_ID = 'gatehouse-at-files';
const SECRET_ENV = `GH_TX_CLIENT_SECRET_${process.pid}`;
const CLIENT_SECRET = `tx-client-secret-${process.pid}-${Date.now().toString(36)}`;
/** How long a test waits for the discovery the operator's link starts (it takes milliseconds). */
const DISCOVERY_WAIT_MS = 5_000;

function whoami(answer: JsonRpcAnswer): { sub?: string; client_id?: string; scope?: string; act?: { sub: string } } {
  const content = answer.result?.['content'] as Array<{ type: string; text: string }> | undefined;
  if (content?.[0]?.type !== 'text') throw new Error(`whoami did not answer: ${JSON.stringify(answer)}`);
  return JSON.parse(content[0].text) as { sub?: string; client_id?: string; scope?: string; act?: { sub: string } };
}

function toolNames(answer: JsonRpcAnswer): string[] {
  return ((answer.result?.['tools'] ?? []) as Array<{ name: string }>).map((t) => t.name).sort();
}

/** Until the gateway lists the target's tools (the discovery an operator's link starts). */
async function untilListed(stack: UpstreamOAuthStack): Promise<void> {
  const deadline = Date.now() + DISCOVERY_WAIT_MS;
  while (!stack.gw.gateway.catalog.all.toolByName.has('whoami') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
}

describe('token exchange with gateway assertions: the user as sub, the agent as act, no browser upstream', () => {
  let stack: UpstreamOAuthStack;
  let gatewayIssuer: string;
  let alice: GatewayAgent;
  /** Alice's second agent (its own client at the gateway): its own upstream token. */
  let aliceCli: GatewayAgent;
  let bob: GatewayAgent;
  let carol: GatewayAgent;
  const exchanges = () => stack.upstream.tokenRequests.filter((t) => t.grantType === TOKEN_EXCHANGE_GRANT);

  beforeAll(async () => {
    process.env[SECRET_ENV] = CLIENT_SECRET;
    stack = await startUpstreamOAuthStack({
      users: USERS,
      upstream: { clientId: CLIENT_ID, clientSecret: CLIENT_SECRET },
      credentials: { client: { id: CLIENT_ID, secret: { env: SECRET_ENV } }, tokenExchange: { subjectToken: 'gateway-assertion' }, displayName: 'Protected Files' },
    });
    // The upstream AS learns the gateway's issuer once the gateway listens (its URL is known only then).
    gatewayIssuer = `${stack.gw.gateway.publicBase}/oauth`;
    stack.upstream.trustAssertionIssuer(gatewayIssuer, `${gatewayIssuer}/jwks`);
    alice = await signIn(stack, new HeadlessBrowser(), 'alice', 'Alice Agent');
    aliceCli = await signIn(stack, new HeadlessBrowser(), 'alice', 'Alice CLI');
    bob = await signIn(stack, new HeadlessBrowser(), 'bob', 'Bob Agent');
    carol = await signIn(stack, new HeadlessBrowser(), 'carol', 'Carol Agent');
    for (const agent of [alice, aliceCli, bob, carol]) await agent.initialize();
  }, 60_000);

  afterAll(async () => {
    await stack?.stop();
    delete process.env[SECRET_ENV];
  });

  it("bootstrap: the operator's link for alice's agent exchanges at once (no browser, no consent page) and the target lists its tools", async () => {
    expect(toolNames(await alice.request('tools/list'))).toEqual([]);
    const res = await stack.operatorConnect('alice', alice.clientId);
    expect(res.status).toBe(200);
    await untilListed(stack);
    expect(toolNames(await alice.request('tools/list'))).toEqual([...PROTECTED_TOOLS].sort());
    // Nothing to show a browser: the link says the request is finished.
    const page = await new HeadlessBrowser().navigate(((await res.json()) as { url: string }).url);
    expect(page.status).toBe(410);
    expect(exchanges()).toMatchObject([{ clientId: CLIENT_ID, clientAuth: 'client_secret_basic', status: 200, subjectTokenType: JWT_TOKEN_TYPE, audience: stack.upstream.issuer, resource: stack.upstream.mcpUrl }]);
  });

  it('whoami shows each user as sub and the calling agent as act; each user × agent holds its own upstream token', async () => {
    expect(whoami(await alice.callTool('whoami'))).toMatchObject({ sub: 'alice', act: { sub: alice.clientId }, client_id: CLIENT_ID });
    expect(whoami(await aliceCli.callTool('whoami'))).toMatchObject({ sub: 'alice', act: { sub: aliceCli.clientId }, client_id: CLIENT_ID });
    expect(whoami(await bob.callTool('whoami'))).toMatchObject({ sub: 'bob', act: { sub: bob.clientId }, client_id: CLIENT_ID });
    // Again: from the tokens held, no new exchange.
    const before = exchanges().length;
    expect(whoami(await alice.callTool('whoami'))).toMatchObject({ sub: 'alice', act: { sub: alice.clientId } });
    expect(whoami(await bob.callTool('whoami'))).toMatchObject({ sub: 'bob', act: { sub: bob.clientId } });
    expect(exchanges()).toHaveLength(before);
    expect(exchanges()).toHaveLength(3);

    const rows = (await stack.credentialRows()).filter((r) => r['kind'] === 'oauth-tokens').map((r) => r['subject']).sort();
    expect(rows).toEqual([`user:alice#agent=${encodeURIComponent(alice.clientId)}`, `user:alice#agent=${encodeURIComponent(aliceCli.clientId)}`, `user:bob#agent=${encodeURIComponent(bob.clientId)}`].sort());
    // The upstream's own view: every call verified as the user, through the agent, by the gateway's one client.
    const calls = stack.upstream.requests.filter((r) => r.tool === 'whoami');
    expect(calls.map((r) => [r.sub, r.act])).toEqual([
      ['alice', alice.clientId], ['alice', aliceCli.clientId], ['bob', bob.clientId], ['alice', alice.clientId], ['bob', bob.clientId],
    ]);
    for (const r of calls) expect(r).toMatchObject({ authorization: true, clientId: CLIENT_ID, status: 200 });
  });

  it('every exchange authenticated the pre-registered client and presented a short-lived gateway assertion, never a gateway access token', async () => {
    const gatewayKeys = createRemoteJWKSet(new URL(`${gatewayIssuer}/jwks`));
    const agents = new Map([[alice.clientId, 'alice'], [aliceCli.clientId, 'alice'], [bob.clientId, 'bob']]);
    for (const exchange of exchanges()) {
      expect(exchange).toMatchObject({ clientId: CLIENT_ID, clientAuth: 'client_secret_basic', subjectTokenType: JWT_TOKEN_TYPE, requestedTokenType: 'urn:ietf:params:oauth:token-type:access_token', audience: stack.upstream.issuer, status: 200 });
      const assertion = exchange.subjectToken!;
      const { payload, protectedHeader } = await jwtVerify(assertion, gatewayKeys, { issuer: gatewayIssuer, audience: stack.upstream.issuer, algorithms: ['ES256'] });
      expect(protectedHeader.typ).toBe('JWT');
      expect(payload.exp! - payload.iat!).toBe(SUBJECT_ASSERTION_TTL_SECONDS);
      expect(payload).toMatchObject({ tenant: 'default', jti: expect.any(String) });
      const act = (payload['act'] as { sub: string }).sub;
      expect(agents.get(act)).toBe(payload.sub);
    }
    // No agent's gateway token ever reached the upstream: not as a subject token, not in any header or body it recorded.
    const upstreamSaw = JSON.stringify([stack.wire, stack.upstream.tokenRequests, stack.upstream.requests]);
    for (const agent of [alice, aliceCli, bob, carol]) expect(upstreamSaw).not.toContain(agent.accessToken);
    for (const exchange of exchanges()) expect(decodeProtectedHeader(exchange.subjectToken!).typ).not.toBe('at+jwt');
    // Every Bearer at the MCP server is the upstream AS's own token; no browser ever went to the upstream AS.
    for (const w of stack.wire.filter((x) => x.server === 'mcp' && typeof x.headers['authorization'] === 'string')) {
      expect(decodeJwt(String(w.headers['authorization']).slice('Bearer '.length))).toMatchObject({ iss: stack.upstream.issuer, aud: stack.upstream.mcpUrl });
    }
    expect(stack.wire.filter((w) => w.server === 'as' && (w.url.startsWith('/auth') || w.url.startsWith('/interaction')))).toEqual([]);
    expect(stack.upstream.tokenRequests.every((t) => t.grantType === TOKEN_EXCHANGE_GRANT)).toBe(true);
  });

  it('a user whose assertion the upstream refuses gets a typed error (upstream_credential_unavailable), others keep working', async () => {
    stack.upstream.refuseExchangeFor('carol');
    const refused = await carol.callTool('whoami');
    expect(refused.error).toMatchObject({ code: -32603, data: { type: 'upstream_credential_unavailable' } });
    expect(exchanges().filter((t) => t.status !== 200)).toEqual(expect.arrayContaining([expect.objectContaining({ error: 'invalid_grant', clientId: CLIENT_ID })]));
    expect(stack.upstream.requests.some((r) => r.sub === 'carol')).toBe(false);
    expect((await stack.credentialRows()).some((r) => String(r['subject']).startsWith('user:carol'))).toBe(false);
    expect(stack.gw.logLines.some((l) => l['user'] === 'carol' && l['reason'] === 'invalid_grant')).toBe(true);
    expect(whoami(await bob.callTool('whoami'))).toMatchObject({ sub: 'bob', act: { sub: bob.clientId } });
  });

  it('canary: no assertion, upstream token or client secret in any log line, audit row or admin answer', async () => {
    const stored = await stack.storedSecrets();
    expect(stored.tokens.size).toBe(3);
    const canaries = [
      ...exchanges().map((t) => t.subjectToken!),
      ...[...stored.tokens.values()].flatMap(({ access, refresh }) => (refresh === undefined ? [access] : [access, refresh])),
      CLIENT_SECRET,
      stack.vaultKey,
    ];
    expect(canaries.length).toBeGreaterThan(3 + 3 + 2);
    for (const { access } of stored.tokens.values()) expect(decodeJwt(access)).toMatchObject({ iss: stack.upstream.issuer, act: { sub: expect.any(String) } });

    const auditText = await (await fetch(`${stack.gw.adminBase}/audit`)).text();
    const rows = auditText.split('\n').filter(Boolean).map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(rows.some((r) => r['tool'] === 'whoami' && r['user'] === 'bob' && r['outcome'] === 'ok')).toBe(true);
    expect(rows.some((r) => r['tool'] === 'whoami' && r['user'] === 'carol' && r['errorType'] === 'upstream_credential_unavailable')).toBe(true);
    const answers = {
      logs: JSON.stringify(stack.gw.logLines),
      audit: auditText,
      credentials: await (await fetch(`${stack.gw.adminBase}/upstream-credentials`)).text(),
      metrics: await (await fetch(`${stack.gw.adminBase}/metrics`)).text(),
      readyz: await (await fetch(`${stack.gw.base}/readyz`)).text(),
      targets: JSON.stringify(stack.gw.gateway.targets()),
    };
    expect(answers.logs).toContain('upstream token obtained');
    expect(answers.credentials).toContain('user:bob#agent=');
    for (const [where, text] of Object.entries(answers)) {
      for (const secret of canaries) expect(text.includes(secret), `a secret in ${where}`).toBe(false);
    }
  });

  it("an operator's DELETE of user:alice drops every agent's token of hers (and their connections); the next call exchanges anew", async () => {
    const res = await fetch(`${stack.gw.adminBase}/upstream-credentials?tenant=default&target=${stack.target}&subject=user:alice`, { method: 'DELETE' });
    expect(await res.json()).toEqual({ deleted: 2 });
    const subjects = (await stack.credentialRows()).filter((r) => r['kind'] === 'oauth-tokens').map((r) => r['subject']);
    expect(subjects).toEqual([`user:bob#agent=${encodeURIComponent(bob.clientId)}`]);
    const before = exchanges().length;
    expect(whoami(await aliceCli.callTool('whoami'))).toMatchObject({ sub: 'alice', act: { sub: aliceCli.clientId } });
    expect(exchanges().slice(before)).toMatchObject([{ status: 200 }]);
    expect(decodeJwt(exchanges().at(-1)!.subjectToken!)).toMatchObject({ sub: 'alice', act: { sub: aliceCli.clientId } });
  });
});

describe('cross-app access (idp-id-token): the ID token kept from the gateway login, exchanged at the IdP for an ID-JAG', () => {
  const IDP_SECRET_ENV = `GH_XAA_IDP_SECRET_${process.pid}`;
  const IDP_SECRET = `xaa-idp-secret-${process.pid}-${Date.now().toString(36)}`;
  const UPSTREAM_SECRET_ENV = `GH_XAA_UPSTREAM_SECRET_${process.pid}`;
  const UPSTREAM_SECRET = `xaa-upstream-secret-${process.pid}-${Date.now().toString(36)}`;
  /** The same client id at the IdP and at the upstream AS: the ID-JAG names it as `client_id`. */
  const XAA_CLIENT = 'gatehouse';
  let stack: UpstreamOAuthStack;
  let dave: GatewayAgent;
  let erin: GatewayAgent;
  const erinBrowser = new HeadlessBrowser();
  const identityRows = async (): Promise<Array<Record<string, unknown>>> =>
    ((await (await fetch(`${stack.gw.adminBase}/upstream-credentials?target=${encodeURIComponent('@idp')}`)).json()) as { credentials: Array<Record<string, unknown>> }).credentials;

  beforeAll(async () => {
    process.env[IDP_SECRET_ENV] = IDP_SECRET;
    process.env[UPSTREAM_SECRET_ENV] = UPSTREAM_SECRET;
    stack = await startUpstreamOAuthStack({
      users: [...USERS, { id: 'dave', groups: ['staff'], email: 'dave@example.com' }, { id: 'erin', groups: ['staff'], email: 'erin@example.com' }],
      idp: { clientId: XAA_CLIENT, clientSecret: IDP_SECRET },
      upstream: { clientId: XAA_CLIENT, clientSecret: UPSTREAM_SECRET },
      credentials: { client: { id: XAA_CLIENT, secret: { env: UPSTREAM_SECRET_ENV } }, tokenExchange: { subjectToken: 'gateway-assertion' } },
    });
    // The IdP's URL is known only now: the operator points the target at it (a reload), the upstream trusts it.
    const config = stack.gw.gateway.snapshot.config;
    const target = config.targets[stack.target]!;
    const tokenExchange = { subjectToken: 'idp-id-token', requestedTokenType: 'urn:ietf:params:oauth:token-type:access_token', idp: { issuer: stack.idp.issuer, clientId: XAA_CLIENT, clientSecret: { env: IDP_SECRET_ENV } } };
    await stack.gw.gateway.reload({ ...config, targets: { [stack.target]: { ...target, credentials: { ...target.credentials, tokenExchange } } } } as GatehouseConfig);
    stack.upstream.trustIdJagIssuer(stack.idp.issuer, stack.idp.jwksUri);
    dave = await signIn(stack, new HeadlessBrowser(), 'dave', 'Dave Agent');
    erin = await signIn(stack, erinBrowser, 'erin', 'Erin Agent');
    await dave.initialize();
    await erin.initialize();
  }, 60_000);

  afterAll(async () => {
    await stack?.stop();
    delete process.env[IDP_SECRET_ENV];
    delete process.env[UPSTREAM_SECRET_ENV];
  });

  it("keeps each user's ID token from the gateway login in the vault, expiring with the token", async () => {
    const rows = await identityRows();
    expect(rows.map((r) => [r['subject'], r['kind'], r['tenant'], r['status']]).sort()).toEqual([
      ['user:dave', 'identity-token', 'default', 'active'],
      ['user:erin', 'identity-token', 'default', 'active'],
    ]);
    const kept = await stack.storedIdentityTokens();
    const daves = decodeJwt(kept.get('user:dave')!);
    expect(daves).toMatchObject({ iss: stack.idp.issuer, sub: 'dave', aud: XAA_CLIENT });
    expect(rows.find((r) => r['subject'] === 'user:dave')?.['expiresAt']).toBe(daves.exp! * 1000);
  });

  it('the ID-JAG path: dave is the upstream sub, with no browser and no consent', async () => {
    expect((await stack.operatorConnect('dave', dave.clientId)).status).toBe(200);
    await untilListed(stack);
    expect(whoami(await dave.callTool('whoami'))).toMatchObject({ sub: 'dave', client_id: XAA_CLIENT });
    const redeemed = stack.upstream.tokenRequests.filter((t) => t.grantType === JWT_BEARER_GRANT);
    expect(redeemed).toMatchObject([{ clientId: XAA_CLIENT, clientAuth: 'client_secret_basic', status: 200 }]);
    const grant = redeemed[0]!.assertion!;
    expect(decodeProtectedHeader(grant).typ).toBe(ID_JAG_TYP);
    expect(decodeJwt(grant)).toMatchObject({ iss: stack.idp.issuer, sub: 'dave', aud: stack.upstream.issuer, resource: stack.upstream.mcpUrl, client_id: XAA_CLIENT });
    expect(stack.upstream.tokenRequests.every((t) => t.grantType === JWT_BEARER_GRANT)).toBe(true);
  });

  it('without a kept ID token the call asks the user to sign in again (-32042); the link signs in at the IdP afresh and the retry works', async () => {
    const deleted = await fetch(`${stack.gw.adminBase}/upstream-credentials?tenant=default&target=${encodeURIComponent('@idp')}&subject=user:erin`, { method: 'DELETE' });
    expect(await deleted.json()).toEqual({ deleted: 1 });
    const refused = await erin.callTool('whoami');
    expect(refused.error).toMatchObject({ code: -32042, data: { type: 'upstream_authorization_required', target: stack.target, reason: 'not_authorized' } });
    const url = (refused.error!.data!['elicitations'] as Array<{ url: string }>)[0]!.url;
    expect(stack.upstream.requests.some((r) => r.sub === 'erin')).toBe(false);

    // prompt=login: her gateway session is not enough, the IdP asks again (that login keeps a fresh ID token).
    const login = await erinBrowser.navigate(url);
    expect(login.url.startsWith(stack.idp.issuer)).toBe(true);
    const done = await stack.idp.loginAs(erinBrowser, login, 'erin');
    expect(done.status).toBe(200);
    expect(done.url).toBe(url);
    expect(done.body).toContain('Signed in');
    expect((await identityRows()).map((r) => r['subject'])).toContain('user:erin');
    expect(whoami(await erin.callTool('whoami'))).toMatchObject({ sub: 'erin', client_id: XAA_CLIENT });
  });

  it('canary: no ID token, ID-JAG, upstream token or client secret in any log line, audit row or admin answer', async () => {
    const kept = await stack.storedIdentityTokens();
    const stored = await stack.storedSecrets();
    const canaries = [
      ...kept.values(),
      ...stack.upstream.tokenRequests.flatMap((t) => (t.assertion === undefined ? [] : [t.assertion])),
      ...[...stored.tokens.values()].map(({ access }) => access),
      IDP_SECRET,
      UPSTREAM_SECRET,
    ];
    expect(kept.size).toBe(2);
    expect(stored.tokens.size).toBe(2);
    const answers = {
      logs: JSON.stringify(stack.gw.logLines),
      audit: await (await fetch(`${stack.gw.adminBase}/audit`)).text(),
      credentials: await (await fetch(`${stack.gw.adminBase}/upstream-credentials`)).text(),
      metrics: await (await fetch(`${stack.gw.adminBase}/metrics`)).text(),
      targets: JSON.stringify(stack.gw.gateway.targets()),
    };
    expect(answers.credentials).toContain('identity-token');
    for (const [where, text] of Object.entries(answers)) {
      for (const secret of canaries) expect(text.includes(secret), `a secret in ${where}`).toBe(false);
    }
  });
});
