import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { systemClock } from '../clock.ts';
import { GatehouseError } from '../protocol/errors.ts';
import { SUBJECT_ASSERTION_TTL_SECONDS } from './authorization-server.ts';
import { BearerVerifier } from './bearer-token.ts';
import { startAs, testConfig, type AsFixture } from './oauth.fixtures.ts';

const UPSTREAM_AS = 'https://as.upstream.example';

let fx: AsFixture;

beforeAll(async () => {
  fx = await startAs({ config: testConfig({ accessTokenTtlSeconds: 300 }) });
});
afterAll(async () => {
  await fx?.close();
});

describe('subject assertions for token exchange at upstream authorization servers', () => {
  it('signs the user for one audience with the current key, the agent as act, for two minutes', async () => {
    const assertion = await fx.as.mintSubjectAssertion({ tenant: 'default', user: 'alice', agent: 'dyn-42', audience: UPSTREAM_AS });
    const { payload, protectedHeader } = await jwtVerify(assertion, createLocalJWKSet(fx.as.verificationKeys()), { issuer: fx.as.issuer, audience: UPSTREAM_AS, algorithms: ['ES256'] });
    expect(protectedHeader).toEqual({ alg: 'ES256', typ: 'JWT', kid: fx.as.verificationKeys().keys[0]!.kid });
    expect(payload).toMatchObject({ iss: `${fx.base}/oauth`, sub: 'alice', aud: UPSTREAM_AS, tenant: 'default', act: { sub: 'dyn-42' } });
    expect(payload.exp! - payload.iat!).toBe(SUBJECT_ASSERTION_TTL_SECONDS);
    expect(SUBJECT_ASSERTION_TTL_SECONDS).toBeLessThanOrEqual(300);
    expect(payload.jti).toMatch(/^[\w-]{43}$/);
    // Single-use material: every assertion has its own jti.
    const again = await fx.as.mintSubjectAssertion({ tenant: 'default', user: 'alice', agent: 'dyn-42', audience: UPSTREAM_AS });
    expect(decodeProtectedHeader(again).kid).toBe(protectedHeader.kid);
    expect((await jwtVerify(again, createLocalJWKSet(fx.as.verificationKeys()))).payload.jti).not.toBe(payload.jti);
  });

  it('names no actor when the agent is unknown, and follows a key rotation', async () => {
    const { kid } = await fx.as.rotateSigningKeys();
    const assertion = await fx.as.mintSubjectAssertion({ tenant: 'acme', user: 'bob', audience: UPSTREAM_AS });
    expect(decodeProtectedHeader(assertion).kid).toBe(kid);
    const { payload } = await jwtVerify(assertion, createLocalJWKSet(fx.as.verificationKeys()), { issuer: fx.as.issuer, audience: UPSTREAM_AS });
    expect(payload['act']).toBeUndefined();
    expect(payload).toMatchObject({ sub: 'bob', tenant: 'acme' });
  });

  it('is never accepted as one of the gateway\'s own access tokens, even when addressed to its resource', async () => {
    const resource = `${fx.base}/mcp`;
    const assertion = await fx.as.mintSubjectAssertion({ tenant: 'default', user: 'alice', agent: 'dyn-42', audience: resource });
    const verifier = new BearerVerifier({ issuer: fx.as, clock: systemClock });
    const refused = await verifier.verify(assertion, resource).then(() => undefined, (err: unknown) => err);
    expect(refused).toBeInstanceOf(GatehouseError);
    expect((refused as GatehouseError).code).toBe('INVALID_TOKEN');
  });
});
