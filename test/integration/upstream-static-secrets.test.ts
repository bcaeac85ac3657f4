// Static upstream secrets end to end: a stdio target gets its secret in its environment (the
// child proves it by the hash), an HTTP target gets it in a header, and a canary secret is
// grepped from everything the gateway prints or serves: log lines, audit rows, admin output.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { post, INIT, startGateway, type TestGateway } from '../support/gateway-harness.ts';
import { startRecordingProxy, type RecordingProxy } from '../support/recording-proxy.ts';
import { startHttpFixture, type HttpFixture } from '../fixtures/fixture-process.ts';
import { secretEchoStdioCommand, secretFingerprint } from '../fixtures/secret-echo-stdio.ts';
import { generateVaultKey } from '../../src/vault/vault-cipher.ts';

const CANARY = `canary-${randomBytes(16).toString('hex')}`;
const SECRET_VAR = `GH_TEST_UPSTREAM_SECRET_${randomBytes(4).toString('hex')}`;
const KEY_VAR = `GH_TEST_VAULT_KEY_${randomBytes(4).toString('hex')}`;

async function rpc(gw: TestGateway, session: string, id: number, method: string, params: Record<string, unknown>): Promise<Record<string, unknown>> {
  const res = await post(gw.url, { jsonrpc: '2.0', id, method, params }, { 'mcp-session-id': session, 'mcp-protocol-version': '2025-11-25' });
  const text = await res.text();
  const data = text.startsWith('event:') || text.startsWith('data:') ? text.split('\n').find((l) => l.startsWith('data:'))!.slice(5) : text;
  return JSON.parse(data) as Record<string, unknown>;
}

describe('static upstream secrets', () => {
  let gw: TestGateway;
  let fixture: HttpFixture;
  let proxy: RecordingProxy;
  let session: string;

  beforeAll(async () => {
    process.env[SECRET_VAR] = CANARY;
    process.env[KEY_VAR] = generateVaultKey();
    fixture = await startHttpFixture({ mode: 'http', part: 'a', name: 'static-upstream' });
    proxy = await startRecordingProxy(fixture.url);
    const echo = secretEchoStdioCommand();
    gw = await startGateway({
      vault: { keys: [{ id: 'k1', secret: { env: KEY_VAR } }] },
      targets: {
        secret: {
          transport: 'stdio',
          command: echo.command,
          args: echo.args,
          cwd: echo.cwd,
          era: 'legacy',
          // Names only: the child learns which variable to hash; the value comes from the credential.
          env: { SECRET_ENV: 'UPSTREAM_TOKEN' },
          credentials: { mode: 'static', secret: { env: SECRET_VAR }, envVar: 'UPSTREAM_TOKEN' },
        },
        web: { transport: 'streamable-http', url: proxy.url, era: 'legacy', credentials: { mode: 'static', secret: { env: SECRET_VAR }, header: 'x-api-key', scheme: '' } },
      },
    });
    const init = await post(gw.url, INIT);
    session = init.headers.get('mcp-session-id')!;
    await post(gw.url, { jsonrpc: '2.0', method: 'notifications/initialized' }, { 'mcp-session-id': session, 'mcp-protocol-version': '2025-11-25' });
  });
  afterAll(async () => {
    await gw?.stop();
    await proxy?.stop();
    await fixture?.stop();
    delete process.env[SECRET_VAR];
    delete process.env[KEY_VAR];
  });

  it('the stdio child receives the secret in the variable it was given, and only its hash comes back', async () => {
    const reply = await rpc(gw, session, 2, 'tools/call', { name: 'secret_fingerprint', arguments: {} });
    expect(reply).toMatchObject({ result: { content: [{ type: 'text', text: secretFingerprint(CANARY) }] } });
  });

  it('an HTTP target receives the secret in its header on every request, the agent never sees it', async () => {
    const list = await rpc(gw, session, 3, 'tools/list', {});
    expect(JSON.stringify(list)).not.toContain(CANARY);
    const upstream = proxy.seen.filter((r) => r.method === 'POST');
    expect(upstream.length).toBeGreaterThan(0);
    for (const request of upstream) expect(request.headers['x-api-key']).toBe(CANARY);
  });

  it('the canary appears in no log line, audit row or admin answer', async () => {
    // Make sure there is something to search: calls, a failing one, an admin action.
    await rpc(gw, session, 4, 'tools/call', { name: 'secret_fingerprint', arguments: { note: 'x' } });
    await rpc(gw, session, 5, 'tools/call', { name: 'no_such_tool', arguments: {} });
    const admin = ['/audit', '/metrics', '/slos', '/upstream-credentials'];
    const bodies: string[] = [];
    for (const route of admin) {
      const res = await fetch(`${gw.adminBase}${route}`);
      bodies.push(`${route} ${res.status} ${await res.text()}`);
    }
    bodies.push(JSON.stringify(gw.gateway.targets()));
    bodies.push(await (await fetch(`${gw.base}/readyz`)).text());
    const everything = [...bodies, ...gw.logLines.map((l) => JSON.stringify(l))].join('\n');
    expect(everything).toContain('secret_fingerprint'); // the search looked at real content
    expect(everything).not.toContain(CANARY);
    expect(everything).not.toContain(Buffer.from(CANARY).toString('base64'));
  });
});
