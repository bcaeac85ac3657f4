/**
 * The jwt-bearer grant with Identity Assertion JWT Authorization Grants, over real HTTP: the
 * stand-in enterprise IdP signs assertions with the key it publishes at its jwks_uri, agents
 * redeem them at the gateway's token endpoint, and every way an assertion can be wrong is
 * refused with the RFC 6749 §5.2 error.
 */
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestIdp, type IdJagRequest, type TestIdp } from '../fixtures/test-idp.ts';
import { JAG_AGENT, OTHER_JAG_AGENT, AGENT, startIdpGateway, type IdpGateway } from '../support/idp-gateway.ts';

const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const USERS = [{ id: 'alice', groups: ['eng', 'ops'], email: 'alice@example.com' }];

async function redeem(gw: IdpGateway, assertion: string, options: { client?: { id: string; secret: string }; scope?: string; resource?: string } = {}) {
  const client = options.client ?? JAG_AGENT;
  const body = new URLSearchParams({ grant_type: JWT_BEARER, assertion });
  if (options.scope !== undefined) body.set('scope', options.scope);
  if (options.resource !== undefined) body.set('resource', options.resource);
  const res = await fetch(`${gw.issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${client.id}:${client.secret}`).toString('base64')}` },
    body,
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('ID-JAG (jwt-bearer) grant', () => {
  let gw: IdpGateway;
  let untrusted: TestIdp;
  const jag = (overrides: Partial<IdJagRequest> = {}): Promise<string> =>
    gw.idp.issueIdJag({ sub: 'alice', audience: gw.issuer, clientId: JAG_AGENT.id, resource: gw.resource, scope: 'mcp mcp:tools', ...overrides });

  beforeAll(async () => {
    gw = await startIdpGateway(USERS);
    untrusted = await startTestIdp({ users: USERS });
  });
  afterAll(async () => {
    await untrusted?.stop();
    await gw?.stop();
  });

  it('mints an access token for the asserted user with groups mapped to roles, and no refresh token', async () => {
    const { status, body } = await redeem(gw, await jag());
    expect(status, JSON.stringify(body)).toBe(200);
    expect(body).toMatchObject({ token_type: 'Bearer', scope: 'mcp mcp:tools' });
    expect(body.refresh_token).toBeUndefined();
    const claims = decodeJwt(String(body.access_token));
    expect(claims).toMatchObject({ iss: gw.issuer, aud: gw.resource, sub: 'alice', client_id: JAG_AGENT.id, tenant: 'default', scope: 'mcp mcp:tools' });
    expect([...(claims.roles as string[])].sort()).toEqual(['developer', 'operator']);
  });

  it('narrows to a requested subset of the scopes, and refuses more than the assertion grants', async () => {
    const narrowed = await redeem(gw, await jag(), { scope: 'mcp', resource: gw.resource });
    expect(narrowed.status).toBe(200);
    expect(decodeJwt(String(narrowed.body.access_token)).scope).toBe('mcp');
    const wider = await redeem(gw, await jag({ scope: 'mcp' }), { scope: 'mcp mcp:tools' });
    expect(wider).toMatchObject({ status: 400, body: { error: 'invalid_scope' } });
    // Beyond what the client may ask for (its config allows mcp and mcp:tools only).
    const beyondClient = await redeem(gw, await jag({ scope: 'mcp mcp:prompts' }), { scope: 'mcp:prompts' });
    expect(beyondClient).toMatchObject({ status: 400, body: { error: 'invalid_scope' } });
  });

  const refusals: [string, () => Promise<string>, string, RegExp][] = [
    ['a wrong typ', () => jag({ typ: 'JWT' }), 'invalid_grant', /typ/],
    ['a wrong audience', () => jag({ audience: 'https://other.example/oauth' }), 'invalid_grant', /addressed/],
    ['an expired assertion', () => jag({ issuedAt: Math.floor(Date.now() / 1000) - 600, lifetimeSeconds: 300 }), 'invalid_grant', /expired/],
    ['an assertion issued in the future', () => jag({ issuedAt: Math.floor(Date.now() / 1000) + 600 }), 'invalid_grant', /future/],
    ['an over-long lifetime', () => jag({ lifetimeSeconds: 86_400 }), 'invalid_grant', /longer/],
    ['a resource the gateway does not serve', () => jag({ resource: 'https://elsewhere.example/mcp' }), 'invalid_target', /resource/],
    ['an assertion issued to another client', () => jag({ clientId: OTHER_JAG_AGENT.id }), 'invalid_grant', /another client/],
    ['an untrusted issuer', () => untrusted.issueIdJag({ sub: 'alice', audience: gw.issuer, clientId: JAG_AGENT.id, resource: gw.resource, scope: 'mcp' }), 'invalid_grant', /not trusted/],
    // The trusted issuer's name on another IdP's key: the signature gives it away.
    ['a trusted issuer name signed with another key', () => untrusted.issueIdJag({ issuer: gw.idp.issuer, sub: 'alice', audience: gw.issuer, clientId: JAG_AGENT.id, resource: gw.resource, scope: 'mcp' }), 'invalid_grant', /signature/],
    ['something that is not a JWT', async () => 'not-a-jwt', 'invalid_grant', /not a JWT/],
  ];
  it.each(refusals)('refuses %s', async (_name, make, error, description) => {
    const { status, body } = await redeem(gw, await make());
    expect(status).toBe(400);
    expect(body.error).toBe(error);
    expect(String(body.error_description)).toMatch(description);
    expect(body.access_token).toBeUndefined();
  });

  it('refuses a replayed jti', async () => {
    const assertion = await jag();
    expect((await redeem(gw, assertion)).status).toBe(200);
    const replay = await redeem(gw, assertion);
    expect(replay).toMatchObject({ status: 400, body: { error: 'invalid_grant' } });
    expect(String(replay.body.error_description)).toMatch(/already used/);
    // Concurrent redemptions of one fresh assertion: exactly one wins.
    const fresh = await jag();
    const results = await Promise.all([redeem(gw, fresh), redeem(gw, fresh), redeem(gw, fresh)]);
    expect(results.filter((r) => r.status === 200)).toHaveLength(1);
  });

  it('refuses the client it was issued to when that client presents the wrong secret', async () => {
    const { status, body } = await redeem(gw, await jag(), { client: { id: JAG_AGENT.id, secret: 'wrong' } });
    expect(status).toBe(401);
    expect(body.error).toBe('invalid_client');
  });

  it('refuses a client not allowed the grant type', async () => {
    const res = await fetch(`${gw.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: JWT_BEARER, assertion: await jag({ clientId: AGENT.id }), client_id: AGENT.id }),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toMatch(/^(unauthorized_client|invalid_request)$/);
  });
});

describe('ID-JAG grant with a client allow-list on the trusted issuer', () => {
  let gw: IdpGateway;
  beforeAll(async () => {
    gw = await startIdpGateway(USERS, { trustedIssuer: { clients: [OTHER_JAG_AGENT.id] } });
  });
  afterAll(async () => {
    await gw?.stop();
  });

  it('answers unauthorized_client to a client the issuer is not trusted for', async () => {
    const assertion = await gw.idp.issueIdJag({ sub: 'alice', audience: gw.issuer, clientId: JAG_AGENT.id, resource: gw.resource, scope: 'mcp' });
    expect(await redeem(gw, assertion)).toMatchObject({ status: 400, body: { error: 'unauthorized_client' } });
    const allowed = await gw.idp.issueIdJag({ sub: 'alice', audience: gw.issuer, clientId: OTHER_JAG_AGENT.id, resource: gw.resource, scope: 'mcp' });
    expect((await redeem(gw, allowed, { client: OTHER_JAG_AGENT })).status).toBe(200);
  });
});

describe('ID-JAG grant from an issuer of another tenant than the client', () => {
  let gw: IdpGateway;
  beforeAll(async () => {
    gw = await startIdpGateway(USERS, { trustedIssuer: { tenant: 'acme' } });
  });
  afterAll(async () => {
    await gw?.stop();
  });

  it('answers invalid_grant to a client of tenant default presenting an assertion for a user of acme, and logs it', async () => {
    const assertion = await gw.idp.issueIdJag({ sub: 'alice', audience: gw.issuer, clientId: JAG_AGENT.id, resource: gw.resource, scope: 'mcp' });
    const refused = await redeem(gw, assertion);
    expect(refused).toMatchObject({ status: 400, body: { error: 'invalid_grant', error_description: 'the user belongs to another tenant than this client' } });
    expect(refused.body.access_token).toBeUndefined();
    const logged = gw.logLines.find((l) => l['msg'] === 'oauth: refused a user of another tenant than the client');
    expect(logged).toMatchObject({ kind: 'auth', client_id: JAG_AGENT.id, error: 'invalid_grant' });
    expect(JSON.stringify(logged)).not.toContain(assertion.slice(0, 20));
    expect(JSON.stringify(logged)).not.toContain(JAG_AGENT.secret);
  });
});
