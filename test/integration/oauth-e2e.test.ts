/**
 * OAuth end to end through a real MCP client: the SDK v2 client's own OAuth support against
 * the gateway (`auth.mode: oauth`, the AS wired as src/main.ts wires it), the stand-in
 * enterprise IdP (a real oidc-provider) and a real fixture MCP server, all on 127.0.0.1.
 *
 * 401 → Protected Resource Metadata → AS metadata → dynamic client registration →
 * authorization URL (PKCE S256, resource) → IdP login and the gateway's consent page in a
 * headless browser → code → token → tools/list and tools/call → refresh through the SDK's own
 * path → revocation of the refresh token, effective on the very next request → audit rows and
 * no token passthrough upstream. The tests run in order and share one agent.
 */
import { createHash } from 'node:crypto';
import { Client, StreamableHTTPClientTransport, UnauthorizedError } from '@modelcontextprotocol/client';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/storage/sqlite-store.ts';
import type { AuditRow } from '../../src/storage/store.ts';
import { HeadlessBrowser } from '../fixtures/headless-browser.ts';
import { post } from '../support/gateway-harness.ts';
import { startOAuthStack, type OAuthStack } from '../support/oauth-stack.ts';
import { InMemoryOAuthProvider, recordingFetch, type SeenExchange } from '../support/oauth-test-client.ts';

/** Nothing listens here: the browser stops at the redirect and the test reads the code. */
const REDIRECT = 'http://127.0.0.1:1/e2e-callback';
const GRANTED_TOOLS = ['add_numbers', 'echo', 'test_simple_text'];
const MODERN = '2026-07-28';
const MODERN_META = { 'io.modelcontextprotocol/protocolVersion': MODERN, 'io.modelcontextprotocol/clientCapabilities': {} };

describe('OAuth end to end with the SDK client, the enterprise IdP and a real upstream', () => {
  let stack: OAuthStack;
  const provider = new InMemoryOAuthProvider(REDIRECT, 'E2E Agent');
  const seen: SeenExchange[] = [];
  /** Every access and refresh token the agent held: none may reach the upstream. */
  const secrets = new Set<string>();
  let client: Client | undefined;

  const transport = (): StreamableHTTPClientTransport =>
    new StreamableHTTPClientTransport(new URL(stack.gw.url), { authProvider: provider, fetch: recordingFetch(seen) });
  const asMetadata = (): Record<string, unknown> => {
    const metadata = provider.discoveryState()?.authorizationServerMetadata as Record<string, unknown> | undefined;
    if (metadata === undefined) throw new Error('no AS metadata discovered');
    return metadata;
  };
  const keepSecrets = (): void => {
    for (const t of provider.savedTokens) {
      secrets.add(t.access_token);
      if (t.refresh_token !== undefined) secrets.add(t.refresh_token);
    }
  };
  const form = (body: string | undefined): URLSearchParams => new URLSearchParams(body ?? '');
  const upstreamCalls = (): number => stack.upstream.seen.filter((r) => r.body?.['method'] === 'tools/call').length;
  /** A stateless 2026-07-28 tools/list with this access token, outside the SDK. */
  const rawList = (accessToken: string): Promise<Response> =>
    post(stack.gw.url, { jsonrpc: '2.0', id: 1, method: 'tools/list', params: { _meta: MODERN_META } }, { authorization: `Bearer ${accessToken}`, 'mcp-protocol-version': MODERN, 'mcp-method': 'tools/list' });

  beforeAll(async () => {
    stack = await startOAuthStack({
      users: [{ id: 'alice', groups: ['eng'], email: 'alice@example.com' }],
      groupRoles: { eng: ['developer'] },
      policy: { roles: { developer: { grants: [{ targets: ['up'], tools: GRANTED_TOOLS }] } } },
    });
  }, 60_000);

  afterAll(async () => {
    await client?.close().catch(() => undefined);
    await stack?.stop();
  });

  it('401 → PRM → AS metadata → registration → PKCE authorization URL with the resource', async () => {
    const first = new Client({ name: 'e2e-agent', version: '1.0.0' });
    await expect(first.connect(transport())).rejects.toBeInstanceOf(UnauthorizedError);

    const [challenge, prm, metadata, registration] = seen;
    expect(challenge).toMatchObject({ method: 'POST', url: stack.gw.url, status: 401, authorization: null });
    expect(prm).toMatchObject({ method: 'GET', url: `${stack.gw.base}/.well-known/oauth-protected-resource/mcp`, status: 200 });
    expect(metadata).toMatchObject({ method: 'GET', url: `${stack.gw.base}/.well-known/oauth-authorization-server/oauth`, status: 200 });
    expect(registration).toMatchObject({ method: 'POST', url: String(asMetadata()['registration_endpoint']), status: 201 });
    expect(provider.discoveryState()?.resourceMetadata).toMatchObject({ resource: stack.gw.url, authorization_servers: [stack.issuer] });
    expect(asMetadata()['issuer']).toBe(stack.issuer);
    const clientId = provider.clientInformation()?.client_id ?? '';
    expect(clientId).toMatch(/^dyn-/);

    expect(provider.authorizationUrls).toHaveLength(1);
    const url = provider.authorizationUrls[0]!;
    expect(url.href.startsWith(String(asMetadata()['authorization_endpoint']))).toBe(true);
    expect(Object.fromEntries(url.searchParams)).toMatchObject({
      response_type: 'code',
      client_id: clientId,
      redirect_uri: REDIRECT,
      code_challenge_method: 'S256',
      resource: stack.gw.url,
    });
    expect(url.searchParams.get('code_challenge')).toMatch(/^[\w-]{43}$/);
    expect(url.searchParams.get('code_challenge')).toBe(createHash('sha256').update(provider.codeVerifier()).digest('base64url'));
  });

  it('IdP login and the gateway consent page in a browser → code → token → tools/list and tools/call', async () => {
    const browser = new HeadlessBrowser();
    const atClient = (location: string): boolean => location.startsWith(REDIRECT);
    const idpPage = await browser.navigate(provider.authorizationUrls[0]!.href, atClient);
    expect(idpPage.status).toBe(200);
    expect(idpPage.url.startsWith(stack.idp.issuer)).toBe(true);
    const consent = await stack.idp.loginAs(browser, idpPage, 'alice', { stopAt: atClient });
    expect(consent.status).toBe(200);
    expect(consent.url.startsWith(`${stack.issuer}/interaction/`)).toBe(true);
    expect(consent.body).toContain('E2E Agent');
    expect(consent.body).toContain(stack.gw.url);
    const back = await browser.submitForm(consent, /\/consent$/, { decision: 'approve' }, atClient);
    const callback = new URL(back.location ?? '');
    expect(callback.searchParams.get('code')).toBeTruthy();

    const before = seen.length;
    const finishing = transport();
    await finishing.finishAuth(callback.searchParams);
    const tokenRequest = seen.slice(before).find((e) => e.url === asMetadata()['token_endpoint']);
    expect(tokenRequest?.status).toBe(200);
    const sent = form(tokenRequest?.body);
    expect(sent.get('grant_type')).toBe('authorization_code');
    expect(sent.get('resource')).toBe(stack.gw.url);
    expect(createHash('sha256').update(sent.get('code_verifier') ?? '').digest('base64url')).toBe(provider.authorizationUrls[0]!.searchParams.get('code_challenge'));

    const tokens = provider.tokens();
    expect(tokens?.refresh_token).toBeTruthy();
    keepSecrets();
    const claims = decodeJwt(tokens?.access_token ?? '');
    expect(claims).toMatchObject({ iss: stack.issuer, aud: stack.gw.url, sub: 'alice', client_id: provider.clientInformation()?.client_id, tenant: 'default', roles: ['developer'] });

    client = new Client({ name: 'e2e-agent', version: '1.0.0' });
    await client.connect(transport());
    const listed = await client.listTools();
    expect(listed.tools.map((t) => t.name).sort()).toEqual(GRANTED_TOOLS);
    const echoed = await client.callTool({ name: 'echo', arguments: { message: 'through the gateway' } });
    expect(echoed.content).toEqual([{ type: 'text', text: 'Echo: through the gateway' }]);
    // A tool the role was not granted: refused by policy, never forwarded.
    const calls = upstreamCalls();
    await expect(client.callTool({ name: 'big', arguments: {} })).rejects.toThrow();
    expect(upstreamCalls()).toBe(calls);
  });

  it('refreshes through the SDK when the access token stops working (rotation, resource on the refresh)', async () => {
    const before = provider.tokens()!;
    const mark = seen.length;
    provider.spoilAccessToken();
    const sum = await client!.callTool({ name: 'add_numbers', arguments: { a: 2, b: 40 } });
    expect(sum.content).toEqual([{ type: 'text', text: '42' }]);

    const after = provider.tokens()!;
    keepSecrets();
    expect(after.access_token).not.toBe(before.access_token);
    expect(after.access_token).not.toBe('spoiled-access-token');
    expect(after.refresh_token).toBeTruthy();
    expect(after.refresh_token).not.toBe(before.refresh_token);
    const exchanges = seen.slice(mark);
    expect(exchanges.find((e) => e.url === stack.gw.url && e.authorization === 'Bearer spoiled-access-token')?.status).toBe(401);
    const refresh = exchanges.find((e) => e.url === asMetadata()['token_endpoint']);
    expect(refresh?.status).toBe(200);
    expect(form(refresh?.body).get('grant_type')).toBe('refresh_token');
    expect(form(refresh?.body).get('refresh_token')).toBe(before.refresh_token);
    expect(form(refresh?.body).get('resource')).toBe(stack.gw.url);
    expect(exchanges.at(-1)).toMatchObject({ url: stack.gw.url, status: 200, authorization: `Bearer ${after.access_token}` });
    expect(decodeJwt(after.access_token)).toMatchObject({ sub: 'alice', roles: ['developer'] });
    // The refreshed access token is a real one outside the SDK too.
    expect((await rawList(after.access_token)).status).toBe(200);
  });

  it('revoking the refresh token at the AS refuses the unexpired access token on the next request', async () => {
    const { access_token: accessToken, refresh_token: refreshToken } = provider.tokens()!;
    expect((decodeJwt(accessToken).exp ?? 0) * 1000).toBeGreaterThan(Date.now() + 60_000);
    expect((await rawList(accessToken)).status).toBe(200);

    const revocation = await fetch(String(asMetadata()['revocation_endpoint']), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: refreshToken ?? '', token_type_hint: 'refresh_token', client_id: provider.clientInformation()?.client_id ?? '' }),
    });
    expect(revocation.status).toBe(200);

    const refused = await rawList(accessToken);
    expect(refused.status).toBe(401);
    expect(refused.headers.get('www-authenticate')).toMatch(/^Bearer .*error="invalid_token"/);
    expect(refused.headers.get('www-authenticate')).toContain(`resource_metadata="${stack.gw.base}/.well-known/oauth-protected-resource/mcp"`);

    // The SDK client: 401, its refresh is refused (invalid_grant), so it falls back to a new
    // authorization request; the call fails and never reaches the upstream.
    const calls = upstreamCalls();
    const mark = seen.length;
    await expect(client!.callTool({ name: 'echo', arguments: { message: 'after revocation' } })).rejects.toThrow();
    expect(upstreamCalls()).toBe(calls);
    const exchanges = seen.slice(mark);
    expect(exchanges[0]).toMatchObject({ url: stack.gw.url, status: 401, authorization: `Bearer ${accessToken}` });
    const refresh = exchanges.find((e) => e.url === asMetadata()['token_endpoint']);
    expect(refresh?.status).toBe(400);
    expect(form(refresh?.body).get('refresh_token')).toBe(refreshToken);
    expect(provider.authorizationUrls).toHaveLength(2);
    expect(provider.tokens()).toBeUndefined();
  });

  it('the upstream never saw an Authorization header or any token; audit rows carry user, agent and tenant', async () => {
    keepSecrets();
    expect(secrets.size).toBeGreaterThanOrEqual(4);
    expect(stack.upstream.seen.length).toBeGreaterThan(0);
    for (const request of stack.upstream.seen) {
      expect(request.headers['authorization']).toBeUndefined();
      const text = JSON.stringify(request);
      for (const secret of secrets) expect(text).not.toContain(secret);
    }

    // Stopping the gateway flushes the audit queue; then read its store.
    await client?.close().catch(() => undefined);
    client = undefined;
    await stack.gw.stop();
    const store = SqliteStore.open({ file: stack.dbFile });
    try {
      const rows: AuditRow[] = [];
      for await (const row of store.queryAudit({})) rows.push(row);
      const agent = provider.clientInformation()?.client_id;
      const calls = rows.filter((r) => r.method === 'tools/call' && r.outcome === 'ok');
      expect(calls.map((r) => r.tool).sort()).toEqual(['add_numbers', 'echo']);
      for (const row of calls) expect(row).toMatchObject({ user: 'alice', agent, tenant: 'default', target: 'up' });
      const listing = rows.find((r) => r.method === 'tools/list' && r.outcome === 'ok');
      expect(listing).toMatchObject({ user: 'alice', agent, tenant: 'default' });
      // The ungranted tool is refused as unknown (policy hides it), on alice's row.
      expect(rows.find((r) => r.method === 'tools/call' && r.tool === 'big')).toMatchObject({ outcome: 'error', errorType: 'tool_not_found', user: 'alice', agent });
      // Refusals before any principal: the first tokenless request, then the spoiled token and
      // the revoked one (raw, then the SDK's).
      const refused = rows.filter((r) => r.outcome === 'rejected');
      expect(refused.map((r) => r.errorType)).toEqual(['unauthenticated', 'invalid_token', 'invalid_token', 'invalid_token']);
      for (const row of refused) expect(row).toMatchObject({ user: null, agent: null });
      const text = JSON.stringify(rows);
      for (const secret of secrets) expect(text).not.toContain(secret);
    } finally {
      await store.close();
    }
  });
});
