import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeJwt } from 'jose';
import { selfSignedCertificate } from '../../test/support/self-signed-certificate.ts';
import { autoLogin, Browser, pkcePair, postForm, startAs, testConfig, type AsFixture } from './oauth.fixtures.ts';

const REDIRECT = 'http://127.0.0.1:9/cb';
let dir: string;
let https: Server;
let docBase: string;
let fx: AsFixture;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-cimd-'));
  const { key, cert: ca } = selfSignedCertificate(dir);
  https = createServer({ key, cert: ca }, (req, res) => {
    const clientId = `${docBase}${req.url}`;
    const body = req.url === '/wrong.json' ? { client_id: `${docBase}/other.json`, redirect_uris: [REDIRECT] } : { client_id: clientId, client_name: 'CIMD agent', redirect_uris: [REDIRECT], token_endpoint_auth_method: 'none', grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'] };
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  });
  await new Promise<void>((resolve) => https.listen(0, '127.0.0.1', resolve));
  docBase = `https://127.0.0.1:${(https.address() as AddressInfo).port}`;
  fx = await startAs({ config: testConfig({ registration: { allowLoopbackMetadata: true } }), interactions: autoLogin('bob'), metadataFetchCa: ca });
  await fx.as.accounts.upsert({ id: 'bob', tenant: 'default', roles: ['viewer'], claims: {} });
});
afterAll(async () => {
  await fx?.close();
  https?.closeAllConnections();
  await new Promise<void>((resolve) => https.close(() => resolve()));
  rmSync(dir, { recursive: true, force: true });
});

function authorizeUrl(clientId: string, challenge: string): string {
  const url = new URL(`${fx.base}/oauth/auth`);
  const params = { client_id: clientId, redirect_uri: REDIRECT, response_type: 'code', scope: 'mcp', state: 's', resource: `${fx.base}/mcp`, code_challenge: challenge, code_challenge_method: 'S256' };
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
  return url.href;
}

describe('Client ID Metadata Documents', () => {
  it('accepts an https client_id whose document names it, through the guarded fetch', async () => {
    const clientId = `${docBase}/client.json`;
    const { verifier, challenge } = pkcePair();
    const { location, final } = await new Browser().follow(authorizeUrl(clientId, challenge), fx.base);
    expect(location, await final.text()).toBeDefined();
    const code = location!.searchParams.get('code');
    expect(code).toBeTruthy();
    const token = await postForm(`${fx.base}/oauth/token`, { grant_type: 'authorization_code', code: code!, redirect_uri: REDIRECT, code_verifier: verifier, client_id: clientId, resource: `${fx.base}/mcp` });
    expect(token.status, JSON.stringify(token.body)).toBe(200);
    expect(decodeJwt(String(token.body['access_token']))).toMatchObject({ client_id: clientId, sub: 'bob', roles: ['viewer'] });
  });

  it('refuses a document whose client_id differs, and a private-address client_id', async () => {
    const { challenge } = pkcePair();
    for (const clientId of [`${docBase}/wrong.json`, 'https://10.0.0.1/client.json']) {
      const { location, final } = await new Browser().follow(authorizeUrl(clientId, challenge), fx.base);
      expect(location).toBeUndefined();
      expect(final.status).toBe(400);
      expect(((await final.json()) as { error: string }).error).toMatch(/invalid_client/);
    }
  });
});
