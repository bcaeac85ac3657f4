import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLocalJWKSet, jwtVerify, SignJWT, exportJWK } from 'jose';
import { ManualClock } from '../clock.ts';
import { postForm, startAs, testConfig, type AsFixture } from './oauth.fixtures.ts';

const SECRET_ENV = 'GATEHOUSE_TEST_CC_SECRET';
const basicSecret = `basic-${randomBytes(12).toString('hex')}`;
const postSecret = `post-${randomBytes(12).toString('hex')}`;
const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });

let fx: AsFixture;
let mcp: string;

beforeAll(async () => {
  process.env[SECRET_ENV] = basicSecret;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-as-cc-'));
  writeFileSync(path.join(dir, 'post.secret'), `${postSecret}\n`);
  const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' };
  const config = testConfig({
    clients: {
      'svc-basic': { tenant: 'acme', roles: ['robot'], grantTypes: ['client_credentials'], tokenEndpointAuthMethod: 'client_secret_basic', secret: { env: SECRET_ENV } },
      'svc-post': { grantTypes: ['client_credentials'], tokenEndpointAuthMethod: 'client_secret_post', secret: { file: 'post.secret' }, scopes: ['mcp:tools'] },
      'svc-jwt': { tenant: 'beta', roles: ['a', 'b'], grantTypes: ['client_credentials'], tokenEndpointAuthMethod: 'private_key_jwt', jwks: { keys: [jwk] } },
    },
  });
  fx = await startAs({ config, dir });
  mcp = `${fx.base}/mcp`;
});
afterAll(async () => {
  delete process.env[SECRET_ENV];
  await fx?.close();
});

const basic = (id: string, secret: string): Record<string, string> => ({ authorization: `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}` });

describe('client credentials', () => {
  it('client_secret_basic (secret from env): sub is the client, tenant and roles from config, no gid', async () => {
    const token = await postForm(`${fx.base}/oauth/token`, { grant_type: 'client_credentials', resource: mcp, scope: 'mcp' }, basic('svc-basic', basicSecret));
    expect(token.status, JSON.stringify(token.body)).toBe(200);
    const { payload, protectedHeader } = await jwtVerify(String(token.body['access_token']), createLocalJWKSet(fx.as.verificationKeys()), { issuer: fx.as.issuer, audience: mcp, typ: 'at+jwt' });
    expect(protectedHeader.alg).toBe('ES256');
    expect(payload).toMatchObject({ sub: 'svc-basic', client_id: 'svc-basic', tenant: 'acme', roles: ['robot'], scope: 'mcp', aud: mcp });
    expect(payload['gid']).toBeUndefined();
  });

  it('refuses a wrong secret, a missing resource and a foreign resource', async () => {
    const wrong = await postForm(`${fx.base}/oauth/token`, { grant_type: 'client_credentials', resource: mcp }, basic('svc-basic', 'nope'));
    expect(wrong.body['error']).toBe('invalid_client');
    const noResource = await postForm(`${fx.base}/oauth/token`, { grant_type: 'client_credentials' }, basic('svc-basic', basicSecret));
    expect(noResource.body['error']).toBe('invalid_target');
    const foreign = await postForm(`${fx.base}/oauth/token`, { grant_type: 'client_credentials', resource: 'https://evil.example/mcp' }, basic('svc-basic', basicSecret));
    expect(foreign.body['error']).toBe('invalid_target');
  });

  it('client_secret_post (secret from a file) and the client scope restriction', async () => {
    const ok = await postForm(`${fx.base}/oauth/token`, { grant_type: 'client_credentials', resource: mcp, scope: 'mcp:tools', client_id: 'svc-post', client_secret: postSecret });
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    const refused = await postForm(`${fx.base}/oauth/token`, { grant_type: 'client_credentials', resource: mcp, scope: 'mcp:prompts', client_id: 'svc-post', client_secret: postSecret });
    expect(refused.status).toBe(400);
  });

  it('private_key_jwt', async () => {
    const now = Math.floor(Date.now() / 1000);
    const assertion = await new SignJWT({})
      .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
      .setIssuer('svc-jwt')
      .setSubject('svc-jwt')
      .setAudience(fx.as.issuer)
      .setJti(randomBytes(8).toString('hex'))
      .setIssuedAt(now)
      .setExpirationTime(now + 60)
      .sign(privateKey);
    const token = await postForm(`${fx.base}/oauth/token`, {
      grant_type: 'client_credentials',
      resource: `${mcp}/ops`,
      client_id: 'svc-jwt',
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: assertion,
    });
    expect(token.status, JSON.stringify(token.body)).toBe(200);
    const { payload } = await jwtVerify(String(token.body['access_token']), createLocalJWKSet(fx.as.verificationKeys()), { audience: `${mcp}/ops` });
    expect(payload).toMatchObject({ sub: 'svc-jwt', tenant: 'beta', roles: ['a', 'b'] });
  });

  it('signs with the new key right after rotation (no restart)', async () => {
    const { kid } = await fx.as.rotateSigningKeys();
    const token = await postForm(`${fx.base}/oauth/token`, { grant_type: 'client_credentials', resource: mcp }, basic('svc-basic', basicSecret));
    const { protectedHeader } = await jwtVerify(String(token.body['access_token']), createLocalJWKSet(fx.as.verificationKeys()));
    expect(protectedHeader.kid).toBe(kid);
  });

  it('never writes a client secret or token to the logs', async () => {
    await postForm(`${fx.base}/oauth/token`, { grant_type: 'client_credentials', resource: mcp }, basic('svc-basic', basicSecret));
    const all = fx.logs.join('\n');
    expect(all).not.toContain(basicSecret);
    expect(all).not.toContain(postSecret);
  });
});

describe('interactions without a login handler', () => {
  it('answer a typed error, never a login', async () => {
    const response = await fetch(`${fx.base}/oauth/interaction/abc`);
    expect(response.status).toBe(501);
    expect(await response.json()).toMatchObject({ error: 'login_not_configured' });
  });
});

describe('signing keys', () => {
  it('persist across restarts, rotate, and keep the retired key until the token TTL has passed', async () => {
    const clock = new ManualClock(Date.now());
    const dir = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-as-keys-'));
    const config = testConfig({ accessTokenTtlSeconds: 300 });
    const first = await startAs({ config, dir, clock });
    const resource = `${first.base}/mcp`;
    const minted = await first.as.mintAccessToken({ clientId: 'c', sub: 'u', tenant: 'default', roles: ['r'], scope: 'mcp', resource, gid: 'g1' });
    const kidBefore = first.as.verificationKeys().keys[0]!.kid;
    await first.close(false);

    const second = await startAs({ config, dir, clock });
    try {
      // A restart reuses the stored key: the token minted before verifies after (same resource URL not needed for signature).
      const { payload, protectedHeader } = await jwtVerify(minted.token, createLocalJWKSet(second.as.verificationKeys()), { typ: 'at+jwt', currentDate: new Date(clock.now()) });
      expect(protectedHeader.kid).toBe(kidBefore);
      expect(payload).toMatchObject({ sub: 'u', client_id: 'c', tenant: 'default', roles: ['r'], gid: 'g1', scope: 'mcp', jti: minted.jti });
      expect(payload.exp! - payload.iat!).toBe(300);
      await expect(second.as.mintAccessToken({ clientId: 'c', sub: 'u', tenant: 'default', roles: [], scope: '', resource: 'https://x.example/mcp' })).rejects.toThrow();

      const { kid } = await second.as.rotateSigningKeys();
      expect(kid).not.toBe(kidBefore);
      expect(second.as.verificationKeys().keys.map((k) => k.kid)).toEqual(expect.arrayContaining([kid, kidBefore]));
      // New tokens (also those oidc-provider signs) carry the new kid.
      const after = await second.as.mintAccessToken({ clientId: 'c', sub: 'u', tenant: 'default', roles: [], scope: 'mcp', resource: `${second.base}/mcp` });
      const verified = await jwtVerify(after.token, createLocalJWKSet(second.as.verificationKeys()), { currentDate: new Date(clock.now()) });
      expect(verified.protectedHeader.kid).toBe(kid);
      const jwks = (await (await fetch(`${second.base}/oauth/jwks`)).json()) as { keys: { kid: string }[] };
      expect(jwks.keys.map((k) => k.kid)).toEqual(expect.arrayContaining([kid, kidBefore]));
      clock.advance(301_000);
      expect(second.as.verificationKeys().keys.map((k) => k.kid)).toEqual([kid]);
    } finally {
      await second.close(true);
    }
  });
});
