import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose';
import { autoLogin, Browser, pkcePair, postForm, postJson, startAs, testConfig, type AsFixture } from './oauth.fixtures.ts';

const REDIRECT = 'http://127.0.0.1:9/callback';

let fx: AsFixture;
let mcp: string;

beforeAll(async () => {
  // Dynamically registered clients serve the users of auth.registration.tenant only: alice's.
  fx = await startAs({ config: testConfig({ accessTokenTtlSeconds: 300, tenants: ['default', 'acme'], registration: { tenant: 'acme' } }), interactions: autoLogin('alice') });
  mcp = `${fx.base}/mcp`;
  await fx.as.accounts.upsert({ id: 'alice', tenant: 'acme', roles: ['dev'], claims: { email: 'alice@example.com' } });
});
afterAll(async () => {
  await fx?.close();
});

async function register(): Promise<string> {
  const reg = await postJson(`${fx.base}/oauth/reg`, { redirect_uris: [REDIRECT], token_endpoint_auth_method: 'none', grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'] });
  expect(reg.status).toBe(201);
  return String(reg.body['client_id']);
}

function authorizeUrl(clientId: string, params: Record<string, string | undefined>): string {
  const url = new URL(`${fx.base}/oauth/auth`);
  const all: Record<string, string | undefined> = { client_id: clientId, redirect_uri: REDIRECT, response_type: 'code', scope: 'mcp', state: 'st', resource: mcp, ...params };
  for (const [k, v] of Object.entries(all)) if (v !== undefined) url.searchParams.set(k, v);
  return url.href;
}

async function authorize(clientId: string, params: Record<string, string | undefined> = {}): Promise<URL> {
  const { location, final } = await new Browser().follow(authorizeUrl(clientId, params), fx.base);
  if (location === undefined) throw new Error(`no redirect to the client: ${final.status} ${await final.text()}`);
  return location;
}

async function codeFlow(clientId: string): Promise<{ access: string; refresh: string; body: Record<string, unknown> }> {
  const { verifier, challenge } = pkcePair();
  const back = await authorize(clientId, { code_challenge: challenge, code_challenge_method: 'S256' });
  const code = back.searchParams.get('code');
  expect(code).toBeTruthy();
  const token = await postForm(`${fx.base}/oauth/token`, { grant_type: 'authorization_code', code: code!, redirect_uri: REDIRECT, code_verifier: verifier, client_id: clientId, resource: mcp });
  expect(token.status, JSON.stringify(token.body)).toBe(200);
  return { access: String(token.body['access_token']), refresh: String(token.body['refresh_token']), body: token.body };
}

describe('authorization server metadata', () => {
  it('serves RFC 8414 metadata and OpenID discovery at every agreed URL', async () => {
    for (const path of ['/.well-known/oauth-authorization-server/oauth', '/.well-known/openid-configuration/oauth', '/oauth/.well-known/openid-configuration']) {
      const response = await fetch(`${fx.base}${path}`);
      expect(response.status, path).toBe(200);
      const meta = (await response.json()) as Record<string, unknown>;
      expect(meta['issuer']).toBe(`${fx.base}/oauth`);
      expect(meta['code_challenge_methods_supported']).toEqual(['S256']);
      // Only what the gateway can honour: the code flow, and no DPoP (the resource server takes Bearer only) or PAR.
      expect(meta['response_types_supported']).toEqual(['code']);
      expect(meta['dpop_signing_alg_values_supported']).toBeUndefined();
      expect(meta['pushed_authorization_request_endpoint']).toBeUndefined();
      expect(meta['registration_endpoint']).toBe(`${fx.base}/oauth/reg`);
      expect(meta['revocation_endpoint']).toBe(`${fx.base}/oauth/token/revocation`);
      expect(meta['token_endpoint']).toBe(`${fx.base}/oauth/token`);
      expect(meta['client_id_metadata_document_supported']).toBe(true);
      expect(meta['jwks_uri']).toBe(`${fx.base}/oauth/jwks`);
    }
  });

  it('answers false for paths that are not its own', async () => {
    expect((await fetch(`${fx.base}/mcp`)).status).toBe(404);
    expect((await fetch(`${fx.base}/oauthx`)).status).toBe(404);
  });

  it('serves the verification keys at jwks_uri', async () => {
    const jwks = (await (await fetch(`${fx.base}/oauth/jwks`)).json()) as { keys: Record<string, unknown>[] };
    expect(jwks.keys.length).toBeGreaterThan(0);
    for (const key of jwks.keys) expect(key['d']).toBeUndefined();
  });
});

describe('authorization code + PKCE', () => {
  it('issues an RFC 9068 access token for the requested resource', async () => {
    const clientId = await register();
    const { access, refresh, body } = await codeFlow(clientId);
    expect(refresh).not.toBe('undefined');
    expect(body['token_type']).toBe('Bearer');
    const header = decodeProtectedHeader(access);
    expect(header).toMatchObject({ typ: 'at+jwt', alg: 'ES256' });
    expect(typeof header.kid).toBe('string');
    const { payload } = await jwtVerify(access, createLocalJWKSet(fx.as.verificationKeys()), { issuer: fx.as.issuer, audience: mcp, typ: 'at+jwt' });
    expect(payload.aud).toBe(mcp);
    expect(payload).toMatchObject({ sub: 'alice', client_id: clientId, scope: 'mcp', tenant: 'acme', roles: ['dev'] });
    expect(typeof payload.gid).toBe('string');
    expect(typeof payload.jti).toBe('string');
    expect(payload.exp! - payload.iat!).toBe(300);
  });
});

describe('client and user tenants', () => {
  it('refuses the code of a user who is no longer in the client\'s tenant with invalid_grant, and logs it', async () => {
    const clientId = await register();
    const { verifier, challenge } = pkcePair();
    const code = (await authorize(clientId, { code_challenge: challenge, code_challenge_method: 'S256' })).searchParams.get('code');
    expect(code).toBeTruthy();
    // Between login and redemption the IdP moved alice to another tenant.
    await fx.as.accounts.upsert({ id: 'alice', tenant: 'default', roles: ['dev'], claims: { email: 'alice@example.com' } });
    try {
      const token = await postForm(`${fx.base}/oauth/token`, { grant_type: 'authorization_code', code: code!, redirect_uri: REDIRECT, code_verifier: verifier, client_id: clientId, resource: mcp });
      expect(token).toMatchObject({ status: 400, body: { error: 'invalid_grant', error_description: 'the user belongs to another tenant than this client' } });
      expect(token.body['access_token']).toBeUndefined();
      const line = fx.logs.find((l) => l.includes('refused a user of another tenant'));
      expect(line).toContain(clientId);
      expect(line).not.toContain(code!);
      expect(line).not.toContain(verifier);
    } finally {
      await fx.as.accounts.upsert({ id: 'alice', tenant: 'acme', roles: ['dev'], claims: { email: 'alice@example.com' } });
    }
  });
});

describe('PKCE, redirect_uri and code replay', () => {
  it('refuses an authorization request without code_challenge, and with plain', async () => {
    const clientId = await register();
    const missing = await authorize(clientId, {});
    expect(missing.searchParams.get('error')).toBe('invalid_request');
    expect(missing.searchParams.get('code')).toBeNull();
    const plain = await authorize(clientId, { code_challenge: 'a'.repeat(43), code_challenge_method: 'plain' });
    expect(plain.searchParams.get('error')).toBe('invalid_request');
  });

  it('refuses a wrong code_verifier', async () => {
    const clientId = await register();
    const { challenge } = pkcePair();
    const back = await authorize(clientId, { code_challenge: challenge, code_challenge_method: 'S256' });
    const token = await postForm(`${fx.base}/oauth/token`, { grant_type: 'authorization_code', code: back.searchParams.get('code')!, redirect_uri: REDIRECT, code_verifier: pkcePair().verifier, client_id: clientId, resource: mcp });
    expect(token.status).toBe(400);
    expect(token.body['error']).toBe('invalid_grant');
  });

  it('refuses a redirect_uri that is not registered exactly (no redirect to it)', async () => {
    const clientId = await register();
    const { challenge } = pkcePair();
    const { final, location } = await new Browser().follow(authorizeUrl(clientId, { redirect_uri: `${REDIRECT}/other`, code_challenge: challenge, code_challenge_method: 'S256' }), fx.base);
    expect(location).toBeUndefined();
    expect(final.status).toBe(400);
  });

  it('refuses a replayed code and revokes the tokens issued from it', async () => {
    const clientId = await register();
    const { verifier, challenge } = pkcePair();
    const back = await authorize(clientId, { code_challenge: challenge, code_challenge_method: 'S256' });
    const form = { grant_type: 'authorization_code', code: back.searchParams.get('code')!, redirect_uri: REDIRECT, code_verifier: verifier, client_id: clientId, resource: mcp };
    const first = await postForm(`${fx.base}/oauth/token`, form);
    expect(first.status).toBe(200);
    const claims = decodeJwt(String(first.body['access_token']));
    expect(fx.as.isRevoked({ jti: claims.jti, gid: claims['gid'] as string })).toBe(false);
    const replay = await postForm(`${fx.base}/oauth/token`, form);
    expect(replay.status).toBe(400);
    expect(replay.body['error']).toBe('invalid_grant');
    expect(fx.as.isRevoked({ jti: claims.jti, gid: claims['gid'] as string })).toBe(true);
    const refresh = await postForm(`${fx.base}/oauth/token`, { grant_type: 'refresh_token', refresh_token: String(first.body['refresh_token']), client_id: clientId, resource: mcp });
    expect(refresh.body['error']).toBe('invalid_grant');
  });
});

describe('RFC 8707 resource indicators', () => {
  it('requires resource on the authorization request and refuses a foreign one', async () => {
    const clientId = await register();
    const { challenge } = pkcePair();
    const none = await authorize(clientId, { resource: undefined, code_challenge: challenge, code_challenge_method: 'S256' });
    expect(none.searchParams.get('error')).toBe('invalid_target');
    const foreign = await authorize(clientId, { resource: 'https://elsewhere.example/mcp', code_challenge: challenge, code_challenge_method: 'S256' });
    expect(foreign.searchParams.get('error')).toBe('invalid_target');
  });

  it('requires resource on the token request and issues aud = the toolset resource', async () => {
    const clientId = await register();
    const ops = `${mcp}/ops`;
    const tokenFor = async (resource: string | undefined): Promise<{ status: number; body: Record<string, unknown> }> => {
      const { verifier, challenge } = pkcePair();
      const back = await authorize(clientId, { resource: ops, code_challenge: challenge, code_challenge_method: 'S256' });
      const form: Record<string, string> = { grant_type: 'authorization_code', code: back.searchParams.get('code')!, redirect_uri: REDIRECT, code_verifier: verifier, client_id: clientId };
      if (resource !== undefined) form['resource'] = resource;
      return postForm(`${fx.base}/oauth/token`, form);
    };
    const without = await tokenFor(undefined);
    expect(without.status).toBe(400);
    expect(without.body['error']).toBe('invalid_target');
    expect((await tokenFor(mcp)).body['error']).toBe('invalid_target');
    const ok = await tokenFor(ops);
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    expect(decodeJwt(String(ok.body['access_token'])).aud).toBe(ops);
  });
});

describe('refresh tokens', () => {
  it('rotates on every use; a reused old refresh token revokes the grant', async () => {
    const clientId = await register();
    const { refresh, access } = await codeFlow(clientId);
    const gid = decodeJwt(access)['gid'] as string;
    const refreshWith = (token: string, extra: Record<string, string> = {}) =>
      postForm(`${fx.base}/oauth/token`, { grant_type: 'refresh_token', refresh_token: token, client_id: clientId, resource: mcp, ...extra });
    const noResource = await postForm(`${fx.base}/oauth/token`, { grant_type: 'refresh_token', refresh_token: refresh, client_id: clientId });
    expect(noResource.body['error']).toBe('invalid_target');
    // Neither a missing nor a foreign resource burns the refresh token.
    expect((await refreshWith(refresh, { resource: `${mcp}/ops` })).body['error']).toBe('invalid_target');
    const second = await refreshWith(refresh);
    expect(second.status, JSON.stringify(second.body)).toBe(200);
    const rotated = String(second.body['refresh_token']);
    expect(rotated).not.toBe(refresh);
    expect(decodeJwt(String(second.body['access_token']))['gid']).toBe(gid);
    const reuse = await refreshWith(refresh);
    expect(reuse.body['error']).toBe('invalid_grant');
    expect(fx.as.isRevoked({ gid })).toBe(true);
    expect((await refreshWith(rotated)).body['error']).toBe('invalid_grant');
  });
});

describe('revocation (RFC 7009)', () => {
  it('revoking a refresh token revokes its grant; revoking an access token lists its jti', async () => {
    const clientId = await register();
    const one = await codeFlow(clientId);
    const gid = decodeJwt(one.access)['gid'] as string;
    const r1 = await postForm(`${fx.base}/oauth/token/revocation`, { token: one.refresh, client_id: clientId });
    expect(r1.status).toBe(200);
    expect(fx.as.isRevoked({ gid })).toBe(true);

    const two = await codeFlow(clientId);
    const claims = decodeJwt(two.access);
    expect(fx.as.isRevoked({ jti: claims.jti })).toBe(false);
    const r2 = await postForm(`${fx.base}/oauth/token/revocation`, { token: two.access, token_type_hint: 'access_token', client_id: clientId });
    expect(r2.status).toBe(200);
    expect(fx.as.isRevoked({ jti: claims.jti })).toBe(true);
    expect(fx.as.isRevoked({ gid: claims['gid'] as string })).toBe(false);
    // Persisted: another instance on the same database sees both.
    const rows = await fx.store.oauthStore().listRevocations(Date.now());
    expect(rows.map((r) => `${r.kind}:${r.id}`)).toEqual(expect.arrayContaining([`gid:${gid}`, `jti:${claims.jti}`]));
  });

  it('answers 200 and revokes nothing for a token that is not valid', async () => {
    const clientId = await register();
    const r = await postForm(`${fx.base}/oauth/token/revocation`, { token: 'eyJhbGciOiJFUzI1NiJ9.eyJqdGkiOiJ4In0.AAAA', client_id: clientId });
    expect(r.status).toBe(200);
    expect(fx.as.isRevoked({ jti: 'x' })).toBe(false);
  });
});

describe('dynamic client registration', () => {
  it('registers public clients only and refuses oversized metadata', async () => {
    const confidential = await postJson(`${fx.base}/oauth/reg`, { redirect_uris: [REDIRECT], token_endpoint_auth_method: 'client_secret_basic' });
    expect(confidential.status).toBe(400);
    expect(confidential.body['error']).toBe('invalid_client_metadata');
    const cc = await postJson(`${fx.base}/oauth/reg`, { redirect_uris: [REDIRECT], grant_types: ['client_credentials'], response_types: [] });
    expect(cc.body['error']).toBe('invalid_client_metadata');
    const big = await postJson(`${fx.base}/oauth/reg`, { redirect_uris: [REDIRECT], client_name: 'x'.repeat(17 * 1024) });
    expect(big.status).toBe(413);
    const ok = await postJson(`${fx.base}/oauth/reg`, { redirect_uris: [REDIRECT] });
    expect(ok.status).toBe(201);
    expect(ok.body['token_endpoint_auth_method']).toBe('none');
    expect(ok.body['client_secret']).toBeUndefined();
  });
});
