// Step-up (insufficient_scope answered as HTTP 403 with its challenge) and client certificates
// (mTLS on an HTTPS listener). Certificates are made in the test with the openssl CLI.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixtureStdioCommand, REPO_ROOT } from '../fixtures/fixture-process.ts';
import { INIT, post, startGateway, type TestGateway } from '../support/gateway-harness.ts';
import { createTestIssuer, type TestIssuer } from '../support/token-issuer.ts';

const MODERN_META = { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientCapabilities': {} };
const fixture = fixtureStdioCommand('a');
const target = { transport: 'stdio' as const, command: fixture.command, args: fixture.args, cwd: REPO_ROOT, era: 'legacy' as const };

function modernEcho(id: number): { body: unknown; headers: Record<string, string> } {
  return {
    body: { jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'echo', arguments: { message: `m${id}` }, _meta: MODERN_META } },
    headers: { 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'tools/call', 'mcp-name': 'echo' },
  };
}

describe('insufficient_scope answers HTTP 403 with the step-up challenge', () => {
  let gw: TestGateway;
  let issuer: TestIssuer;

  beforeAll(async () => {
    issuer = await createTestIssuer('pending');
    gw = await startGateway(
      {
        auth: { mode: 'oauth' },
        policy: { roles: { writer: { grants: [{ targets: ['*'], tools: ['echo'], scopes: ['mcp:tools'] }] } } },
        targets: { up: target },
      },
      { tokenIssuer: issuer },
    );
    issuer.issuer = `${gw.gateway.publicBase}/oauth`;
  }, 60_000);
  afterAll(async () => {
    await gw?.stop();
  });

  it('2026-07-28 request: 403, error="insufficient_scope", the scope needed and resource_metadata', async () => {
    const narrow = await issuer.sign(gw.url, { roles: ['writer'], scope: 'mcp' });
    const { body, headers } = modernEcho(1);
    const res = await post(gw.url, body, { ...headers, authorization: `Bearer ${narrow}` });
    expect(res.status).toBe(403);
    expect(res.headers.get('www-authenticate')).toBe(`Bearer error="insufficient_scope", scope="mcp:tools", resource_metadata="${gw.base}/.well-known/oauth-protected-resource/mcp"`);
    expect(((await res.json()) as { error: { data: unknown } }).error.data).toMatchObject({ type: 'insufficient_scope', scope: 'mcp:tools' });
    // With the scope the same call goes through.
    const wide = await issuer.sign(gw.url, { roles: ['writer'], scope: 'mcp mcp:tools' });
    const ok = await post(gw.url, modernEcho(2).body, { ...modernEcho(2).headers, authorization: `Bearer ${wide}` });
    expect(ok.status).toBe(200);
  });

  it('legacy session: the POST answers 403 with the challenge, the session stays usable after step-up', async () => {
    const narrow = await issuer.sign(gw.url, { roles: ['writer'], scope: 'mcp' });
    const init = await post(gw.url, INIT, { authorization: `Bearer ${narrow}` });
    expect(init.status).toBe(200);
    const sid = init.headers.get('mcp-session-id')!;
    const call = { jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'echo', arguments: { message: 'x' } } };
    const res = await post(gw.url, call, { authorization: `Bearer ${narrow}`, 'mcp-session-id': sid });
    expect(res.status).toBe(403);
    expect(res.headers.get('www-authenticate')).toContain('error="insufficient_scope", scope="mcp:tools"');
    const stepped = await issuer.sign(gw.url, { roles: ['writer'], scope: 'mcp mcp:tools' });
    const ok = await post(gw.url, call, { authorization: `Bearer ${stepped}`, 'mcp-session-id': sid });
    expect(ok.status).toBe(200);
  });
});

/** Run openssl in `dir`. */
function openssl(dir: string, args: string[]): string {
  return execFileSync('openssl', args, { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function makeCa(dir: string, name: string): void {
  openssl(dir, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.crt`, '-subj', `/CN=${name}`, '-days', '2']);
}

function makeLeaf(dir: string, name: string, ca: string, ext: string): void {
  writeFileSync(path.join(dir, `${name}.ext`), ext);
  openssl(dir, ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`]);
  openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`]);
}

function fingerprint(dir: string, name: string): string {
  return openssl(dir, ['x509', '-in', `${name}.crt`, '-noout', '-fingerprint', '-sha256']).trim().split('=')[1]!;
}

interface TlsAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function tlsPost(url: string, body: unknown, headers: Record<string, string>, tls: { ca: Buffer; cert?: Buffer; key?: Buffer }): Promise<TlsAnswer> {
  return new Promise((resolve, reject) => {
    const text = JSON.stringify(body);
    const req = request(
      url,
      { method: 'POST', ...tls, headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'content-length': String(Buffer.byteLength(text)), ...headers } },
      (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (data += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: data }));
      },
    );
    req.on('error', reject);
    req.end(text);
  });
}

describe('mTLS: client certificates authenticate agents on an HTTPS listener', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'gh-mtls-'));
  let gw: TestGateway;
  let strict: TestGateway;
  let ca: Buffer;
  const pem = (name: string): Buffer => readFileSync(path.join(dir, name));

  beforeAll(async () => {
    makeCa(dir, 'ca');
    makeCa(dir, 'rogue-ca');
    makeLeaf(dir, 'server', 'ca', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
    makeLeaf(dir, 'robot', 'ca', 'extendedKeyUsage=clientAuth\n');
    makeLeaf(dir, 'stranger', 'ca', 'extendedKeyUsage=clientAuth\n');
    makeLeaf(dir, 'rogue', 'rogue-ca', 'extendedKeyUsage=clientAuth\n');
    ca = pem('ca.crt');
    const tls = { certFile: path.join(dir, 'server.crt'), keyFile: path.join(dir, 'server.key'), clientCaFile: path.join(dir, 'ca.crt') };
    // The rogue certificate is listed too: it must still fail, since no trusted CA signed it.
    const mtls = {
      [fingerprint(dir, 'robot')]: { agent: 'robot', tenant: 'default', roles: ['admin'] },
      [fingerprint(dir, 'rogue')]: { agent: 'rogue', tenant: 'default', roles: ['admin'] },
    };
    gw = await startGateway({ listener: { tls }, auth: { mode: 'oauth', mtls }, targets: { up: target } });
    strict = await startGateway({ listener: { tls: { ...tls, requireClientCert: true } }, auth: { mode: 'oauth', mtls }, targets: { up: target } });
  }, 60_000);
  afterAll(async () => {
    await gw?.stop();
    await strict?.stop();
  });

  it('the listener is HTTPS', () => {
    expect(gw.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+\/mcp$/);
  });

  it('a verified, listed certificate authenticates its agent (method mtls)', async () => {
    const { body, headers } = modernEcho(10);
    const res = await tlsPost(gw.url, body, headers, { ca, cert: pem('robot.crt'), key: pem('robot.key') });
    expect(res.status).toBe(200);
    expect(res.body).toContain('Echo: m10');
    expect(gw.records.find((r) => r.method === 'tools/call')).toMatchObject({ agent: 'robot', tenant: 'default' });
  });

  it('an unlisted certificate, an untrusted one, or none falls back to bearer auth (401)', async () => {
    const { body, headers } = modernEcho(11);
    for (const client of [{ cert: pem('stranger.crt'), key: pem('stranger.key') }, { cert: pem('rogue.crt'), key: pem('rogue.key') }, {}]) {
      const res = await tlsPost(gw.url, body, headers, { ca, ...client });
      expect(res.status).toBe(401);
      expect(res.headers['www-authenticate']).toContain('resource_metadata=');
    }
  });

  it('requireClientCert: no certificate fails the handshake; a listed one is served', async () => {
    const { body, headers } = modernEcho(12);
    await expect(tlsPost(strict.url, body, headers, { ca })).rejects.toThrow();
    const res = await tlsPost(strict.url, body, headers, { ca, cert: pem('robot.crt'), key: pem('robot.key') });
    expect(res.status).toBe(200);
  });
});
