import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../clock.ts';
import { configSchema, type ConfigInput, type GatehouseConfig } from '../config/schema.ts';
import { GatehouseError } from '../protocol/errors.ts';
import { MemoryVault } from '../../test/support/memory-vault.ts';
import { createUpstreamAuthorizer, type UpstreamAuthorizerDeps } from './upstream-authorizer.ts';
import { CANARY, startFakeAuthorizationServer, type FakeAuthorizationServer } from './upstream-authorizer.fixtures.ts';
import type { UpstreamAuthorizations, UserRef } from './upstream-credential.ts';

const SECRET_ENV = 'GH_TEST_TX_SECRET';
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';

let as: FakeAuthorizationServer;
let clock: ManualClock;
let vault: MemoryVault;
let logs: string[];
let authorizer: (UpstreamAuthorizations & { close(): void }) | undefined;

function config(tokenExchange: NonNullable<Extract<NonNullable<ConfigInput['targets'][string]['credentials']>, { mode: 'user-oauth' }>['tokenExchange']>): GatehouseConfig {
  return configSchema.parse({
    targets: { up: { transport: 'streamable-http', url: as.mcpUrl, credentials: { mode: 'user-oauth', client: { id: 'gw', secret: { env: SECRET_ENV } }, tokenExchange } } },
    vault: { allowLoopbackAuthorizationServers: true, refresh: { initialBackoffMs: 60_000, maxBackoffMs: 60_000 } },
  });
}

function build(cfg: GatehouseConfig, sources: Pick<UpstreamAuthorizerDeps, 'subjectToken' | 'identityToken'>): UpstreamAuthorizations & { close(): void } {
  authorizer = createUpstreamAuthorizer(cfg, {
    vault, clock, configDir: process.cwd(), publicUrl: 'https://gateway.example',
    log: (level, message, fields) => logs.push(`${level} ${message} ${JSON.stringify(fields ?? {})}`),
    ...sources,
  });
  return authorizer;
}

async function rejection(promise: Promise<unknown>): Promise<GatehouseError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof GatehouseError) return err;
    throw err;
  }
  throw new Error('expected a rejection');
}

const challenge = (): string => `Bearer resource_metadata="${as.base}/.well-known/oauth-protected-resource/mcp", scope="mcp:read"`;

beforeEach(async () => {
  process.env[SECRET_ENV] = `${CANARY}-configured-secret`;
  as = await startFakeAuthorizationServer();
  clock = new ManualClock(Date.now());
  vault = new MemoryVault(clock);
  logs = [];
});

afterEach(async () => {
  authorizer?.close();
  authorizer = undefined;
  await as.close();
  delete process.env[SECRET_ENV];
});

describe('gateway-assertion: one credential per user × agent', () => {
  it('each agent of a user gets its own assertion (act), token, vault row and refresh; plain user refs stay per user', async () => {
    const minted: UserRef[] = [];
    const a = build(config({ subjectToken: 'gateway-assertion' }), {
      subjectToken: async (who) => {
        minted.push(who);
        return `${CANARY}-assertion-${who.user}-${who.agent ?? 'none'}`;
      },
    });
    const desk: UserRef = { tenant: 'default', user: 'alice', agent: 'desk app' };
    const cli: UserRef = { tenant: 'default', user: 'alice', agent: 'cli#1' };
    // Nothing to consent to: a token-exchange target is always ready to try.
    expect(await a.userAuthorization('up', desk)).toBe('active');
    const deskCredential = a.userCredential('up', desk);
    expect(a.userCredential('up', desk)).toBe(deskCredential);
    const cliCredential = a.userCredential('up', cli);
    expect(cliCredential).not.toBe(deskCredential);
    expect(await deskCredential.challenge(401, challenge())).toBe(true);
    expect(await cliCredential.challenge(401, challenge())).toBe(true);
    expect(minted).toEqual([desk, cli]);
    const exchanges = as.requests.filter((r) => r.params['grant_type'] === TOKEN_EXCHANGE).map((r) => r.params['subject_token']);
    expect(exchanges).toEqual([`${CANARY}-assertion-alice-desk app`, `${CANARY}-assertion-alice-cli#1`]);
    expect(await deskCredential.headers()).not.toEqual(await cliCredential.headers());

    const subjects = (await vault.list({ target: 'up', kind: 'oauth-tokens' })).map((r) => r.key.subject).sort();
    expect(subjects).toEqual(['user:alice#agent=cli%231', 'user:alice#agent=desk%20app']);
    expect((await a.authorizedUsers('up', 'default')).sort((x, y) => x.agent!.localeCompare(y.agent!))).toEqual([cli, desk]);

    // The refresh job exchanges again for the same user × agent (the agent read back from the row).
    clock.advance(241_000);
    expect(await a.refreshDue()).toEqual({ refreshed: 2, failed: 0, needsConsent: 0 });
    expect(minted.slice(2).sort((x, y) => x.agent!.localeCompare(y.agent!))).toEqual([cli, desk]);

    // Disconnecting one agent leaves the other.
    expect(await a.disconnectUser('up', cli)).toBe(true);
    expect((await vault.list({ target: 'up', kind: 'oauth-tokens' })).map((r) => r.key.subject)).toEqual(['user:alice#agent=desk%20app']);
    for (const line of logs) expect(line).not.toContain(CANARY);
  });

  it('without an assertion signer (no authorization server) the target fails closed, as an operator-side error', async () => {
    const a = build(config({ subjectToken: 'gateway-assertion' }), {});
    const error = await rejection(a.userCredential('up', { tenant: 'default', user: 'alice', agent: 'x' }).challenge(401, challenge()));
    expect(error.code).toBe('UPSTREAM_CREDENTIAL_UNAVAILABLE');
    expect(as.requests.some((r) => r.params['grant_type'] === TOKEN_EXCHANGE)).toBe(false);
  });
});

describe('idp-id-token (cross-app access): the ID token kept from the login', () => {
  it('without one the user is asked to sign in again (UPSTREAM_AUTHORIZATION_REQUIRED), with no backoff; once kept, it goes to the IdP', async () => {
    let idToken: string | undefined;
    const asked: UserRef[] = [];
    const a = build(config({ subjectToken: 'idp-id-token', idp: { tokenEndpoint: `${as.base}/idp-token`, clientId: 'gw-at-idp' } }), {
      identityToken: async (who) => {
        asked.push(who);
        return idToken;
      },
    });
    const who: UserRef = { tenant: 'default', user: 'alice', agent: 'desk' };
    const credential = a.userCredential('up', who);
    const missing = await rejection(credential.challenge(401, challenge()));
    expect(missing.code).toBe('UPSTREAM_AUTHORIZATION_REQUIRED');
    expect(missing.details.data).toMatchObject({ target: 'up', reason: 'not_authorized' });
    expect(as.requests.some((r) => r.path === '/idp-token')).toBe(false);
    expect(await vault.list({ target: 'up', kind: 'oauth-tokens' })).toEqual([]);

    // The user signed in again: the next attempt is not held back and presents the new ID token to the IdP.
    idToken = `${CANARY}-id-token`;
    await rejection(credential.challenge(401, challenge()));
    const atIdp = as.requests.filter((r) => r.path === '/idp-token');
    expect(atIdp).toHaveLength(1);
    expect(atIdp[0]!.params).toMatchObject({ grant_type: TOKEN_EXCHANGE, subject_token: idToken, subject_token_type: 'urn:ietf:params:oauth:token-type:id_token', audience: as.base, resource: as.mcpUrl });
    expect(asked).toEqual([who, who]);
    for (const line of logs) expect(line).not.toContain(CANARY);
  });
});
