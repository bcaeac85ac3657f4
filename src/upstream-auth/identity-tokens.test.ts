import { describe, expect, it } from 'vitest';
import { ManualClock } from '../clock.ts';
import { configSchema } from '../config/schema.ts';
import type { GatewayLogger } from '../telemetry/log.ts';
import { MemoryVault } from '../../test/support/memory-vault.ts';
import { IDENTITY_TOKEN_SKEW_MS, IDENTITY_TOKEN_TARGET, IdentityTokens, identityTokenSink, needsIdentityTokens } from './identity-tokens.ts';

const ID_TOKEN = 'CANARY-id-token';

function setup() {
  const clock = new ManualClock(1_700_000_000_000);
  const vault = new MemoryVault(clock);
  return { clock, vault, tokens: new IdentityTokens(vault, clock) };
}

const crossAppConfig = (subjectToken: 'idp-id-token' | 'gateway-assertion') =>
  configSchema.parse({
    targets: {
      t: {
        transport: 'streamable-http',
        url: 'https://up.example/mcp',
        credentials: { mode: 'user-oauth', client: { id: 'c' }, tokenExchange: { subjectToken, ...(subjectToken === 'idp-id-token' ? { idp: { issuer: 'https://idp.example', clientId: 'gw' } } : {}) } },
      },
    },
  });

describe('identity tokens kept from the IdP login', () => {
  it('keeps the newest token per tenant × user, encrypted in the vault under @idp, expiring with the token', async () => {
    const { clock, vault, tokens } = setup();
    await tokens.keep({ tenant: 'acme', user: 'alice', idToken: `${ID_TOKEN}-1`, expiresAt: clock.now() + 3_600_000 });
    await tokens.keep({ tenant: 'acme', user: 'alice', idToken: ID_TOKEN, expiresAt: clock.now() + 3_600_000 });
    const rows = await vault.list();
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ key: { tenant: 'acme', target: IDENTITY_TOKEN_TARGET, subject: 'user:alice', kind: 'identity-token' }, meta: { expiresAt: clock.now() + 3_600_000, refreshAt: null } });
    // Nothing the vault says about its rows (what the admin API and logs see) carries the token.
    expect(JSON.stringify(rows)).not.toContain(ID_TOKEN);
    expect(await tokens.current({ tenant: 'acme', user: 'alice' })).toBe(ID_TOKEN);
    expect(await tokens.current({ tenant: 'other', user: 'alice' })).toBeUndefined();
    expect(await tokens.current({ tenant: 'acme', user: 'bob' })).toBeUndefined();
  });

  it('is not handed out near or past its expiry; an expired one is deleted, and one expired at login is not kept', async () => {
    const { clock, vault, tokens } = setup();
    await tokens.keep({ tenant: 'acme', user: 'alice', idToken: ID_TOKEN, expiresAt: clock.now() + 60_000 });
    clock.advance(60_000 - IDENTITY_TOKEN_SKEW_MS - 1);
    expect(await tokens.current({ tenant: 'acme', user: 'alice' })).toBe(ID_TOKEN);
    clock.advance(2);
    expect(await tokens.current({ tenant: 'acme', user: 'alice' })).toBeUndefined();
    expect(await vault.list()).toHaveLength(1);
    clock.advance(IDENTITY_TOKEN_SKEW_MS);
    expect(await tokens.current({ tenant: 'acme', user: 'alice' })).toBeUndefined();
    expect(await vault.list()).toEqual([]);
    await tokens.keep({ tenant: 'acme', user: 'alice', idToken: ID_TOKEN, expiresAt: clock.now() });
    expect(await vault.list()).toEqual([]);
  });

  it('the login sink keeps tokens only while a target does cross-app access, and never fails the login', async () => {
    const { clock, vault, tokens } = setup();
    const warnings: string[] = [];
    const logger = { warn: (fields: unknown, message: string) => warnings.push(`${message} ${JSON.stringify(fields)}`) } as unknown as GatewayLogger;
    let config = crossAppConfig('gateway-assertion');
    expect(needsIdentityTokens(config)).toBe(false);
    const sink = identityTokenSink({ tokens: () => tokens, config: () => config, logger });
    const entry = { tenant: 'acme', user: 'alice', idToken: ID_TOKEN, expiresAt: clock.now() + 3_600_000 };
    await sink.keep(entry);
    expect(await vault.list()).toEqual([]);

    config = crossAppConfig('idp-id-token');
    expect(needsIdentityTokens(config)).toBe(true);
    await sink.keep(entry);
    expect(await tokens.current(entry)).toBe(ID_TOKEN);

    const broken = identityTokenSink({ tokens: () => new IdentityTokens({ ...vault, put: () => Promise.reject(new Error(`cannot store ${ID_TOKEN}`)) } as unknown as MemoryVault, clock), config: () => config, logger });
    await expect(broken.keep(entry)).resolves.toBeUndefined();
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).not.toContain(ID_TOKEN);
  });
});
