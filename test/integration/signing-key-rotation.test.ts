// Rotating the access-token signing key on a live gateway (admin route): tokens signed before
// keep working until they expire, new ones carry the new key, and the rotation is audited.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeProtectedHeader } from 'jose';
import { composeAuthorizationServer } from '../../src/auth/compose-authorization-server.ts';
import { fixtureStdioCommand } from '../fixtures/fixture-process.ts';
import { clientCredentialsTokens, suiteClient, type SuiteClient } from '../conformance/suite-credential.ts';
import { startGateway, type TestGateway } from '../support/gateway-harness.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'gh-rotate-'));

describe('signing-key rotation through the admin listener', () => {
  let gw: TestGateway;
  let client: SuiteClient;

  beforeAll(async () => {
    client = suiteClient();
    const stdio = fixtureStdioCommand('a');
    gw = await startGateway(
      { targets: { a: { transport: 'stdio', command: stdio.command, args: stdio.args, era: 'legacy' } }, auth: { mode: 'oauth', clients: client.clients }, storage: { driver: 'sqlite', path: path.join(dir, 'gh.db') } },
      { authorizationServer: composeAuthorizationServer(dir) },
    );
  }, 60_000);

  afterAll(async () => {
    await gw?.stop();
    client?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  const toolsList = (token: string): Promise<Response> =>
    fetch(gw.url, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${token}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-protocol-version': '2026-07-28',
        'mcp-method': 'tools/list',
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: { _meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientCapabilities': {} } } }),
    });

  it('makes a new key current while tokens signed by the old one still verify', async () => {
    const issuer = `${gw.base}/oauth`;
    const before = await clientCredentialsTokens(issuer, gw.url, client.clients)();
    expect((await toolsList(before)).status).toBe(200);
    const oldKid = decodeProtectedHeader(before).kid;

    const rotated = await fetch(`${gw.adminBase}/auth/signing-keys/rotate`, { method: 'POST' });
    expect(rotated.status).toBe(200);
    const { kid } = (await rotated.json()) as { kid: string };
    expect(kid).not.toBe(oldKid);

    const jwks = (await (await fetch(`${issuer}/jwks`)).json()) as { keys: Array<{ kid: string; d?: unknown }> };
    expect(jwks.keys.map((k) => k.kid).sort()).toEqual([kid, oldKid].sort());
    expect(jwks.keys.every((k) => k.d === undefined)).toBe(true);

    // A fresh token source: the cached one would hand back the token minted before the rotation.
    const after = await clientCredentialsTokens(issuer, gw.url, client.clients)();
    expect(decodeProtectedHeader(after).kid).toBe(kid);
    expect((await toolsList(after)).status).toBe(200);
    expect((await toolsList(before)).status).toBe(200);

    const rows = (await (await fetch(`${gw.adminBase}/audit`)).text()).split('\n').filter(Boolean).map((l) => JSON.parse(l) as { kind: string; method: string });
    expect(rows.filter((r) => r.kind === 'admin').map((r) => r.method)).toContain('auth/signing-keys/rotate');
  });

  it('answers 404 where no authorization server runs, and only to POST', async () => {
    expect((await fetch(`${gw.adminBase}/auth/signing-keys/rotate`)).status).toBe(405);
    const none = await startGateway({ targets: { a: { transport: 'stdio', command: fixtureStdioCommand('a').command, args: fixtureStdioCommand('a').args, era: 'legacy' } } });
    try {
      expect((await fetch(`${none.adminBase}/auth/signing-keys/rotate`, { method: 'POST' })).status).toBe(404);
    } finally {
      await none.stop();
    }
  });
});
