// The gateway as an OAuth resource server (auth.mode: oauth): every MCP request authenticated
// before anything reaches an upstream, one typed refusal per bad credential, sessions bound to
// their principal, Protected Resource Metadata, and no token ever passed through upstream.
// The upstream is the HTTP fixture behind a recording proxy; time is an injected clock.
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock, type Clock } from '../../src/clock.ts';
import { SqliteStore } from '../../src/storage/sqlite-store.ts';
import type { AuditRow } from '../../src/storage/store.ts';
import { startHttpFixture, type HttpFixture } from '../fixtures/fixture-process.ts';
import { INIT, post, startGateway, type TestGateway } from '../support/gateway-harness.ts';
import { startRecordingProxy, type RecordingProxy } from '../support/recording-proxy.ts';
import { b64, createTestIssuer, type TestIssuer } from '../support/token-issuer.ts';

/** The system clock, shifted by the test (expiry without sleeping). */
class ShiftedClock implements Clock {
  offset = 0;
  now = (): number => Date.now() + this.offset;
  monotonic = (): number => systemClock.monotonic();
  setTimeout = systemClock.setTimeout;
  clearTimeout = systemClock.clearTimeout;
}

const MODERN = { 'mcp-protocol-version': '2026-07-28' };
const META = { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientCapabilities': {} };

describe('authentication on every MCP request (auth.mode: oauth)', () => {
  let fixture: HttpFixture;
  let proxy: RecordingProxy;
  let gw: TestGateway;
  let issuer: TestIssuer;
  const clock = new ShiftedClock();
  let dbFile: string;
  let seq = 0;
  /** Every credential the test sent: none may ever appear upstream. */
  const secrets: string[] = [];

  beforeAll(async () => {
    fixture = await startHttpFixture({ mode: 'http', part: 'a', name: 'up' });
    proxy = await startRecordingProxy(fixture.url);
    issuer = await createTestIssuer('pending', () => clock.now());
    dbFile = path.join(mkdtempSync(path.join(os.tmpdir(), 'gh-auth-')), 'gatehouse.db');
    gw = await startGateway(
      {
        auth: { mode: 'oauth', tenants: ['default', 'other'] },
        storage: { driver: 'sqlite', path: dbFile },
        targets: { up: { transport: 'streamable-http', url: proxy.url, era: 'legacy' } },
        toolsets: { mine: { tools: ['up/*'] }, theirs: { tools: ['up/*'], tenant: 'other' } },
      },
      { clock, tokenIssuer: issuer },
    );
    // The issuer is `<publicBase>/oauth`, known once the port is bound.
    issuer.issuer = `${gw.gateway.publicBase}/oauth`;
  }, 60_000);

  afterAll(async () => {
    await gw?.stop();
    await proxy?.stop();
    await fixture?.stop();
  });

  const toolset = (name: string): string => `${gw.url}/${name}`;
  const metadataUrl = (name?: string): string => `${gw.base}/.well-known/oauth-protected-resource/mcp${name === undefined ? '' : `/${name}`}`;

  async function token(claims: Record<string, unknown> = {}, audience = gw.url, header: Record<string, unknown> = {}): Promise<string> {
    const t = await issuer.sign(audience, claims, header, Math.floor(clock.now() / 1000));
    secrets.push(t);
    return t;
  }

  /** A 2026-07-28 tools/call carrying a unique marker, so we can tell whether it reached the upstream. */
  function modernCall(url: string, authorization: string | undefined, extra: Record<string, string> = {}): { marker: string; response: Promise<Response> } {
    const marker = `marker-${++seq}`;
    const headers: Record<string, string> = { ...MODERN, 'mcp-method': 'tools/call', 'mcp-name': 'echo', ...extra };
    if (authorization !== undefined) headers['authorization'] = authorization;
    const body = { jsonrpc: '2.0', id: seq, method: 'tools/call', params: { name: 'echo', arguments: { message: marker }, _meta: META } };
    return { marker, response: post(url, body, headers) };
  }

  function reachedUpstream(marker: string): boolean {
    return proxy.seen.some((r) => JSON.stringify(r.body ?? {}).includes(marker));
  }

  async function stillServing(): Promise<void> {
    const { marker, response } = modernCall(gw.url, `Bearer ${await token()}`);
    const res = await response;
    expect(res.status).toBe(200);
    expect(JSON.stringify(await res.json())).toContain(marker);
  }

  /** A refused request: status, typed error, challenge, nothing upstream, gateway still serving. */
  async function expectRefused(url: string, authorization: string | undefined, status: number, type: string, extra: Record<string, string> = {}): Promise<Response> {
    const { marker, response } = modernCall(url, authorization, extra);
    const res = await response;
    expect(res.status).toBe(status);
    const body = (await res.clone().json()) as { error: { data: { type: string } } };
    expect(body.error.data.type).toBe(type);
    expect(reachedUpstream(marker)).toBe(false);
    await stillServing();
    return res;
  }

  it('serves Protected Resource Metadata for /mcp and each toolset, unauthenticated', async () => {
    const main = await fetch(metadataUrl());
    expect(main.status).toBe(200);
    expect(await main.json()).toMatchObject({
      resource: gw.url,
      authorization_servers: [`${gw.gateway.publicBase}/oauth`],
      scopes_supported: ['mcp', 'mcp:tools', 'mcp:resources', 'mcp:prompts'],
      bearer_methods_supported: ['header'],
    });
    expect(await (await fetch(metadataUrl('mine'))).json()).toMatchObject({ resource: toolset('mine') });
    expect((await fetch(metadataUrl('nope'))).status).toBe(404);
    expect((await fetch(`${gw.base}/healthz`)).status).toBe(200);
    expect((await fetch(`${gw.base}/readyz`)).status).toBe(200);
  });

  it('a valid access token reaches the upstream; the call is attributed to its principal', async () => {
    const { marker, response } = modernCall(gw.url, `Bearer ${await token({ sub: 'alice', client_id: 'cli-a' })}`);
    const res = await response;
    expect(res.status).toBe(200);
    expect(JSON.stringify(await res.json())).toContain(`Echo: ${marker}`);
    expect(reachedUpstream(marker)).toBe(true);
    const record = gw.records.find((r) => r.method === 'tools/call' && r.user === 'alice');
    expect(record).toMatchObject({ user: 'alice', agent: 'cli-a', tenant: 'default' });
  });

  it('missing token → 401 with the resource_metadata challenge and scope guidance', async () => {
    const res = await expectRefused(gw.url, undefined, 401, 'unauthenticated');
    expect(res.headers.get('www-authenticate')).toBe(`Bearer scope="mcp mcp:tools mcp:resources mcp:prompts", resource_metadata="${metadataUrl()}"`);
    const atToolset = await expectRefused(toolset('mine'), undefined, 401, 'unauthenticated');
    expect(atToolset.headers.get('www-authenticate')).toContain(`resource_metadata="${metadataUrl('mine')}"`);
  });

  it('malformed credentials → 401 invalid_token', async () => {
    for (const authorization of ['Bearer not-a-jwt', 'Basic YWxpY2U6c2VjcmV0', 'Bearer', `Bearer ${b64({ alg: 'ES256' })}.e30.`]) {
      const res = await expectRefused(gw.url, authorization, 401, 'invalid_token');
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer error="invalid_token", scope="[^"]+", resource_metadata="/);
    }
  });

  it('expired, wrong audience (both ways), wrong issuer → 401 invalid_token, the agent not told which', async () => {
    const now = Math.floor(clock.now() / 1000);
    const cases = [
      [gw.url, await token({ iat: now - 1000, exp: now - 600 })],
      [toolset('mine'), await token({}, gw.url)],
      [gw.url, await token({}, toolset('mine'))],
      [gw.url, await token({ iss: 'https://evil.example.com/oauth' })],
    ] as const;
    const messages = new Set<string>();
    for (const [url, t] of cases) {
      const res = await expectRefused(url, `Bearer ${t}`, 401, 'invalid_token');
      messages.add(((await res.json()) as { error: { message: string } }).error.message);
    }
    expect([...messages]).toEqual(['The access token is invalid, expired, revoked or not meant for this resource']);
  });

  it('alg none, HS256 with the public key as secret, unknown kid → 401 invalid_token', async () => {
    const now = Math.floor(clock.now() / 1000);
    const claims = { iss: issuer.issuer, aud: gw.url, sub: 'mallory', client_id: 'x', jti: 'j', iat: now, exp: now + 60, tenant: 'default', roles: ['admin'] };
    await expectRefused(gw.url, `Bearer ${b64({ alg: 'none', typ: 'at+jwt', kid: 'k1' })}.${b64(claims)}.`, 401, 'invalid_token');
    const hs = await new SignJWT(claims).setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: 'k1' }).sign(new TextEncoder().encode(issuer.publicPem));
    await expectRefused(gw.url, `Bearer ${hs}`, 401, 'invalid_token');
    await expectRefused(gw.url, `Bearer ${await token({}, gw.url, { kid: 'k-unknown' })}`, 401, 'invalid_token');
  });

  it('revoked token (by jti and by grant) → 401 invalid_token, immediately', async () => {
    const byJti = await token({ jti: 'revoke-me' });
    expect((await modernCall(gw.url, `Bearer ${byJti}`).response).status).toBe(200);
    issuer.revoked.add('jti:revoke-me');
    await expectRefused(gw.url, `Bearer ${byJti}`, 401, 'invalid_token');
    const byGrant = await token({ gid: 'grant-7' });
    issuer.revoked.add('gid:grant-7');
    await expectRefused(gw.url, `Bearer ${byGrant}`, 401, 'invalid_token');
  });

  it('a token in the query string or a form body → 400 token_in_query, even beside a valid header', async () => {
    const t = await token();
    await expectRefused(`${gw.url}?access_token=${t}`, `Bearer ${t}`, 400, 'token_in_query');
    await expectRefused(`${gw.url}?access_token=${t}`, undefined, 400, 'token_in_query');
    const form = await fetch(gw.url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `access_token=${t}` });
    expect(form.status).toBe(400);
    expect(((await form.json()) as { error: { data: { type: string } } }).error.data.type).toBe('token_in_query');
  });

  it('API keys: valid works; expired and revoked → 401 invalid_token', async () => {
    const keys = gw.gateway.apiKeys!;
    const { key, secret } = await keys.create({ user: 'svc', agent: 'robot', tenant: 'default', roles: ['admin'], ttlDays: 1 });
    secrets.push(secret);
    const { marker, response } = modernCall(gw.url, `Bearer ${secret}`);
    expect((await response).status).toBe(200);
    expect(reachedUpstream(marker)).toBe(true);
    expect(gw.records.some((r) => r.user === 'svc' && r.agent === 'robot')).toBe(true);
    await keys.revoke(key.id);
    await expectRefused(gw.url, `Bearer ${secret}`, 401, 'invalid_token');
    const short = await keys.create({ user: 'svc2', agent: 'robot', tenant: 'default', roles: ['admin'], ttlDays: 1 });
    secrets.push(short.secret);
    expect((await modernCall(gw.url, `Bearer ${short.secret}`).response).status).toBe(200);
    clock.offset += 24 * 60 * 60_000 + 1;
    try {
      await expectRefused(gw.url, `Bearer ${short.secret}`, 401, 'invalid_token');
    } finally {
      clock.offset -= 24 * 60 * 60_000 + 1;
    }
  });

  it("another tenant's toolset answers 404, exactly like an unknown one", async () => {
    const theirs = await modernCall(toolset('theirs'), `Bearer ${await token({}, toolset('theirs'))}`).response;
    const unknown = await modernCall(toolset('nope'), `Bearer ${await token({}, toolset('nope'))}`).response;
    expect(theirs.status).toBe(404);
    expect(unknown.status).toBe(404);
    expect(await theirs.json()).toEqual(await unknown.json());
    const mine = await modernCall(toolset('mine'), `Bearer ${await token({}, toolset('mine'))}`).response;
    expect(mine.status).toBe(200);
    const otherTenant = await modernCall(toolset('theirs'), `Bearer ${await token({ tenant: 'other' }, toolset('theirs'))}`).response;
    expect(otherTenant.status).toBe(200);
  });

  it('Streamable HTTP: a session is bound to its principal; another principal sees 404 like an unknown session', async () => {
    const alice = `Bearer ${await token({ sub: 'alice', client_id: 'cli-a' })}`;
    const bob = `Bearer ${await token({ sub: 'bob', client_id: 'cli-b' })}`;
    const init = await post(gw.url, INIT, { authorization: alice });
    expect(init.status).toBe(200);
    const sid = init.headers.get('mcp-session-id')!;
    const inSession = (authorization: string, body: unknown, id = sid): Promise<Response> =>
      post(gw.url, body, { authorization, 'mcp-session-id': id, 'mcp-protocol-version': '2025-11-25' });
    const marker = `session-${++seq}`;
    const call = { jsonrpc: '2.0', id: 5, method: 'tools/call', params: { name: 'echo', arguments: { message: marker } } };
    const stolen = await inSession(bob, call);
    const unknown = await inSession(bob, call, '0'.repeat(32));
    expect(stolen.status).toBe(404);
    expect(await stolen.json()).toEqual(await unknown.json());
    expect(reachedUpstream(marker)).toBe(false);
    for (const method of ['GET', 'DELETE']) {
      const res = await fetch(gw.url, { method, headers: { authorization: bob, 'mcp-session-id': sid, accept: 'text/event-stream' } });
      expect(res.status).toBe(404);
    }
    // Without a credential it is 401 before the session is even looked at.
    expect((await post(gw.url, call, { 'mcp-session-id': sid })).status).toBe(401);
    // The owner, even with a refreshed token, still gets through; the session survived.
    const refreshed = `Bearer ${await token({ sub: 'alice', client_id: 'cli-a' })}`;
    const ok = await inSession(refreshed, call);
    expect(ok.status).toBe(200);
    expect(JSON.stringify(await ok.json())).toContain(marker);
  });

  it('legacy SSE: a session is bound to its principal too', async () => {
    const alice = `Bearer ${await token({ sub: 'alice', client_id: 'cli-a' })}`;
    const bob = `Bearer ${await token({ sub: 'bob', client_id: 'cli-b' })}`;
    expect((await fetch(`${gw.base}/sse`, { headers: { accept: 'text/event-stream' } })).status).toBe(401);
    const controller = new AbortController();
    const stream = await fetch(`${gw.base}/sse`, { headers: { accept: 'text/event-stream', authorization: alice }, signal: controller.signal });
    expect(stream.status).toBe(200);
    const reader = stream.body!.getReader();
    let text = '';
    while (!text.includes('sessionId=')) text += new TextDecoder().decode((await reader.read()).value);
    const sid = /sessionId=([0-9a-f]+)/.exec(text)![1]!;
    try {
      const message = (authorization: string, id = sid): Promise<Response> =>
        post(`${gw.base}/messages?sessionId=${id}`, { jsonrpc: '2.0', id: 1, method: 'ping' }, { authorization });
      const stolen = await message(bob);
      const unknown = await message(bob, 'f'.repeat(32));
      expect(stolen.status).toBe(404);
      expect(await stolen.json()).toEqual(await unknown.json());
      expect((await message(alice)).status).toBe(202);
    } finally {
      controller.abort();
    }
  });

  it('audit rows carry user, agent and tenant; refusals carry the principal when it is known', async () => {
    const store = SqliteStore.open({ file: dbFile });
    try {
      const rows: AuditRow[] = [];
      for await (const row of store.queryAudit({})) rows.push(row);
      expect(rows.some((r) => r.method === 'tools/call' && r.user === 'alice' && r.agent === 'cli-a' && r.tenant === 'default' && r.outcome === 'ok')).toBe(true);
      // The stolen session id: refused, and audited as bob's attempt.
      expect(rows.some((r) => r.errorType === 'session_not_found' && r.user === 'bob' && r.agent === 'cli-b')).toBe(true);
      // No credential: refused and audited without a principal.
      expect(rows.some((r) => r.errorType === 'unauthenticated' && r.user === null)).toBe(true);
      // No credential ever lands in the trail.
      const text = JSON.stringify(rows);
      for (const secret of secrets) expect(text).not.toContain(secret);
    } finally {
      await store.close();
    }
  });

  it('no token passthrough: the upstream never saw the Authorization header or any credential', async () => {
    expect(proxy.seen.length).toBeGreaterThan(0);
    for (const request of proxy.seen) {
      expect(request.headers['authorization']).toBeUndefined();
      const text = JSON.stringify(request);
      for (const secret of secrets) expect(text).not.toContain(secret);
    }
    // And the debug log names why a token was refused, never the token.
    const log = JSON.stringify(gw.logLines);
    expect(gw.logLines.some((l) => l['kind'] === 'auth')).toBe(true);
    for (const secret of secrets) expect(log).not.toContain(secret);
  });
});
