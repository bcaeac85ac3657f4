import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ManualClock } from '../clock.ts';
import { configSchema, type ConfigInput, type GatehouseConfig } from '../config/schema.ts';
import { GatehouseError } from '../protocol/errors.ts';
import { MemoryVault } from '../../test/support/memory-vault.ts';
import { createUpstreamAuthorizer } from './upstream-authorizer.ts';
import { REVALIDATE_MS } from './vault-oauth-provider.ts';
import { CANARY, startFakeAuthorizationServer, type FakeAuthorizationServer } from './upstream-authorizer.fixtures.ts';
import type { AuthorizationRequiredData, UpstreamAuthorizations, UserRef } from './upstream-credential.ts';

const ALICE: UserRef = { tenant: 'default', user: 'alice' };
const REDIRECT = 'https://gateway.example/upstream-auth/callback';

let as: FakeAuthorizationServer;
let clock: ManualClock;
let vault: MemoryVault;
let logs: string[];
let authorizer: UpstreamAuthorizations & { close(): void };

function config(credentials: NonNullable<ConfigInput['targets'][string]['credentials']>, refresh: Record<string, number> = {}): GatehouseConfig {
  return configSchema.parse({
    targets: { up: { transport: 'streamable-http', url: as.mcpUrl, credentials } },
    vault: { allowLoopbackAuthorizationServers: true, refresh: { leadSeconds: 60, initialBackoffMs: 1_000, maxBackoffMs: 8_000, maxFailures: 3, ...refresh } },
  });
}

function build(cfg: GatehouseConfig): UpstreamAuthorizations & { close(): void } {
  authorizer = createUpstreamAuthorizer(cfg, {
    vault, clock, configDir: process.cwd(), publicUrl: 'https://gateway.example',
    log: (level, message, fields) => logs.push(`${level} ${message} ${JSON.stringify(fields ?? {})}`),
  });
  return authorizer;
}

async function rejection(promise: Promise<unknown> | unknown): Promise<GatehouseError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof GatehouseError) return err;
    throw err;
  }
  throw new Error('expected a rejection');
}

/** Play the user: follow the authorization URL (the fake AS consents at once) and hand back the redirect. */
async function consent(scopes?: readonly string[]): Promise<URL> {
  const { authorizationUrl } = await authorizer.beginUserAuthorization('up', ALICE, { redirectUri: REDIRECT, ...(scopes ? { scopes } : {}) });
  const res = await fetch(authorizationUrl, { redirect: 'manual' });
  return new URL(res.headers.get('location')!);
}

/** What a 401 from the fake /mcp says. */
function challenge401(): string {
  return `Bearer resource_metadata="${as.base}/.well-known/oauth-protected-resource/mcp", scope="mcp:read"`;
}

beforeEach(async () => {
  as = await startFakeAuthorizationServer();
  clock = new ManualClock(Date.now());
  vault = new MemoryVault(clock);
  logs = [];
});

afterEach(async () => {
  authorizer?.close();
  await as.close();
});

describe('per-user authorization code flow', () => {
  it('401 without a token asks for authorization with the challenged scope; the consent stores a token bound to the resource', async () => {
    build(config({ mode: 'user-oauth' }));
    const credential = authorizer.userCredential('up', ALICE);
    expect(await credential.headers()).toEqual({});
    const err = await rejection(credential.challenge(401, challenge401()));
    expect(err.code).toBe('UPSTREAM_AUTHORIZATION_REQUIRED');
    expect(err.details.data).toMatchObject({ target: 'up', reason: 'not_authorized', scopes: ['mcp:read'] } satisfies AuthorizationRequiredData);

    const { authorizationUrl } = await authorizer.beginUserAuthorization('up', ALICE, { redirectUri: REDIRECT });
    const url = new URL(authorizationUrl);
    expect(url.searchParams.get('code_challenge_method')).toBe('S256');
    expect(url.searchParams.get('resource')).toBe(as.mcpUrl);
    expect(url.searchParams.get('scope')).toBe('mcp:read');
    expect(url.searchParams.get('client_id')).toBe('registered-client'); // dynamic registration
    expect(url.searchParams.get('state')).toMatch(/^[A-Za-z0-9_-]{43}$/);

    const redirect = new URL((await fetch(authorizationUrl, { redirect: 'manual' })).headers.get('location')!);
    expect(await authorizer.completeUserAuthorization(redirect)).toEqual({ target: 'up', who: ALICE });
    const token = as.requests.find((r) => r.path === '/token')!;
    expect(token.params['resource']).toBe(as.mcpUrl);
    expect(token.params['code_verifier']).toBeDefined();
    expect(await credential.headers()).toEqual({ authorization: `Bearer ${CANARY}-access-2` });
    expect(await authorizer.userAuthorization('up', ALICE)).toBe('active');
    expect(await authorizer.authorizedUsers('up', 'default')).toEqual([ALICE]);
    expect(await authorizer.userAuthorization('up', { tenant: 'default', user: 'bob' })).toBe('absent');
  });

  it('the state is single-use and expires', async () => {
    build(config({ mode: 'user-oauth' }));
    const redirect = await consent();
    await authorizer.completeUserAuthorization(redirect);
    expect((await rejection(authorizer.completeUserAuthorization(redirect))).code).toBe('INVALID_REQUEST');

    const late = await consent();
    clock.advance(11 * 60_000);
    expect((await rejection(authorizer.completeUserAuthorization(late))).code).toBe('INVALID_REQUEST');
    const forged = new URL(late);
    forged.searchParams.set('state', 'x'.repeat(43));
    expect((await rejection(authorizer.completeUserAuthorization(forged))).code).toBe('INVALID_REQUEST');
  });

  it('refuses an authorization server that does not advertise PKCE S256', async () => {
    as.pkce = false;
    build(config({ mode: 'user-oauth' }));
    const err = await rejection(authorizer.beginUserAuthorization('up', ALICE, { redirectUri: REDIRECT }));
    expect(err.code).toBe('UPSTREAM_CREDENTIAL_UNAVAILABLE');
    expect(err.message).toContain('no_pkce');
  });

  it('step-up asks for the union of granted and challenged scopes, and never for the same scopes twice', async () => {
    build(config({ mode: 'user-oauth' }));
    await authorizer.completeUserAuthorization(await consent(['mcp:read']));
    const credential = authorizer.userCredential('up', ALICE);
    const err = await rejection(credential.challenge(403, 'Bearer error="insufficient_scope", scope="mcp:write"'));
    expect(err.details.data).toMatchObject({ reason: 'step_up', scopes: ['mcp:read', 'mcp:write'] });
    // A 403 that is not about scope is the upstream's decision: nothing to renew.
    expect(await credential.challenge(403, 'Bearer error="access_denied"')).toBe(false);

    // The connect page passes no scopes: the step-up's are used.
    const { authorizationUrl } = await authorizer.beginUserAuthorization('up', ALICE, { redirectUri: REDIRECT });
    expect(new URL(authorizationUrl).searchParams.get('scope')).toBe('mcp:read mcp:write');
    await authorizer.completeUserAuthorization(new URL((await fetch(authorizationUrl, { redirect: 'manual' })).headers.get('location')!));
    // The same challenge again: another consent would ask for the same scopes (the retry limit).
    expect(await credential.challenge(403, 'Bearer error="insufficient_scope", scope="mcp:write"')).toBe(false);
  });

  it('a 401 for a token just obtained retries once, then asks for re-consent instead of renewing again', async () => {
    build(config({ mode: 'user-oauth' }));
    await authorizer.completeUserAuthorization(await consent());
    const credential = authorizer.userCredential('up', ALICE);
    await credential.headers();
    expect(await credential.challenge(401, challenge401())).toBe(true); // probably a request with an older token
    clock.advance(5_000);
    const err = await rejection(credential.challenge(401, challenge401()));
    expect(err.details.data).toMatchObject({ reason: 'reconsent' });
    expect(await authorizer.userAuthorization('up', ALICE)).toBe('needs-consent');
  });

  it('disconnect revokes the refresh token upstream and forgets the user', async () => {
    build(config({ mode: 'user-oauth' }));
    await authorizer.completeUserAuthorization(await consent());
    expect(await authorizer.disconnectUser('up', ALICE)).toBe(true);
    const revoke = as.requests.find((r) => r.path === '/revoke')!;
    expect(revoke.params['token']).toMatch(/^CANARY-refresh-/);
    expect(revoke.params['token_type_hint']).toBe('refresh_token');
    expect(await authorizer.userAuthorization('up', ALICE)).toBe('absent');
    expect(await authorizer.userCredential('up', ALICE).headers()).toEqual({});
  });
});

describe('rows changed outside the authorizer', () => {
  it("an operator's delete stops the token's use (at once with invalidate, else within REVALIDATE_MS) and nothing brings it back", async () => {
    build(config({ mode: 'user-oauth' }));
    await authorizer.completeUserAuthorization(await consent());
    const credential = authorizer.userCredential('up', ALICE);
    expect(await credential.headers()).toEqual({ authorization: `Bearer ${CANARY}-access-2` });
    await vault.deleteWhere({ tenant: 'default', target: 'up', subject: 'user:alice' });
    expect(credential.headers()).toEqual({ authorization: `Bearer ${CANARY}-access-2` }); // cached, synchronously
    clock.advance(REVALIDATE_MS);
    expect(await credential.headers()).toEqual({});
    expect((await rejection(credential.challenge(401, challenge401()))).details.data).toMatchObject({ reason: 'not_authorized' });

    await authorizer.completeUserAuthorization(await consent());
    expect(await credential.headers()).toEqual({ authorization: `Bearer ${CANARY}-access-4` });
    await vault.deleteWhere({ tenant: 'default', target: 'up', subject: 'user:alice' });
    authorizer.invalidate?.({ tenant: 'default', target: 'up', subject: 'user:alice' });
    expect(await credential.headers()).toEqual({});
    clock.advance(600_000);
    expect(await authorizer.refreshDue()).toEqual({ refreshed: 0, failed: 0, needsConsent: 0 });
    expect(await credential.headers()).toEqual({});
    expect(await vault.list({ subject: 'user:alice', kind: 'oauth-tokens' })).toEqual([]);
    expect(as.requests.filter((r) => r.params['grant_type'] === 'refresh_token')).toEqual([]);
  });
});

describe('refresh job', () => {
  it('refreshes before expiry, keeping the resource and the refresh grant', async () => {
    build(config({ mode: 'user-oauth' }));
    await authorizer.completeUserAuthorization(await consent());
    expect(await authorizer.refreshDue()).toEqual({ refreshed: 0, failed: 0, needsConsent: 0 });
    clock.advance(241_000); // expires_in 300 s, lead 60 s
    expect(await authorizer.refreshDue()).toEqual({ refreshed: 1, failed: 0, needsConsent: 0 });
    const refresh = as.requests.find((r) => r.params['grant_type'] === 'refresh_token')!;
    expect(refresh.params['resource']).toBe(as.mcpUrl);
    expect(refresh.params['scope']).toBeUndefined();
    expect(await authorizer.userCredential('up', ALICE).headers()).toEqual({ authorization: `Bearer ${CANARY}-access-3` });
  });

  it('invalid_grant marks the credential needs-consent at once; calls then ask for re-consent', async () => {
    build(config({ mode: 'user-oauth' }));
    await authorizer.completeUserAuthorization(await consent());
    as.refresh = 'invalid_grant';
    clock.advance(241_000);
    expect(await authorizer.refreshDue()).toEqual({ refreshed: 0, failed: 0, needsConsent: 1 });
    expect(await authorizer.userAuthorization('up', ALICE)).toBe('needs-consent');
    const summary = (await vault.list({ subject: 'user:alice', kind: 'oauth-tokens' }))[0]!;
    expect(summary.meta).toMatchObject({ status: 'needs-consent', lastError: 'invalid_grant' });
    // A fresh authorizer (restart) reads the status from the vault.
    authorizer.close();
    build(config({ mode: 'user-oauth' }));
    const err = await rejection(authorizer.userCredential('up', ALICE).headers());
    expect(err.details.data).toMatchObject({ target: 'up', reason: 'reconsent' });
  });

  it('a refresh refused because another replica rotated the token meanwhile keeps the new token, no re-consent', async () => {
    build(config({ mode: 'user-oauth' }));
    await authorizer.completeUserAuthorization(await consent());
    const key = { tenant: 'default', target: 'up', subject: 'user:alice' as const, kind: 'oauth-tokens' as const };
    const before = (await vault.get<Record<string, unknown>>(key))!;
    // While this gateway's refresh is on the wire, another replica refreshes first: the upstream
    // rotates the refresh token, and (reuse detection) refuses the old one with invalid_grant.
    as.beforeRefreshAnswer = async () => {
      as.beforeRefreshAnswer = undefined;
      await vault.put(key, { ...before.value, access_token: 'elsewhere-access', refresh_token: 'elsewhere-refresh' }, { expiresAt: clock.now() + 300_000, refreshAt: clock.now() + 240_000 });
      as.refresh = 'invalid_grant';
    };
    clock.advance(241_000);
    expect(await authorizer.refreshDue()).toEqual({ refreshed: 1, failed: 0, needsConsent: 0 });
    expect(await authorizer.userAuthorization('up', ALICE)).toBe('active');
    expect(await authorizer.userCredential('up', ALICE).headers()).toEqual({ authorization: 'Bearer elsewhere-access' });
  });

  it('a row another replica took for refresh is skipped', async () => {
    build(config({ mode: 'user-oauth' }));
    await authorizer.completeUserAuthorization(await consent());
    clock.advance(241_000);
    const [due] = await vault.due(clock.now());
    expect(await vault.claim(due!.key, due!.meta.refreshAt!, clock.now() + 60_000)).toBe(true);
    expect(await authorizer.refreshDue()).toEqual({ refreshed: 0, failed: 0, needsConsent: 0 });
    expect(as.requests.filter((r) => r.params['grant_type'] === 'refresh_token')).toHaveLength(0);
  });

  it('5xx failures back off (doubling) and after maxFailures mark needs-consent', async () => {
    build(config({ mode: 'user-oauth' }));
    await authorizer.completeUserAuthorization(await consent());
    as.refresh = 'unavailable';
    clock.advance(241_000);
    const key = { tenant: 'default', target: 'up', subject: 'user:alice' as const, kind: 'oauth-tokens' as const };
    expect(await authorizer.refreshDue()).toEqual({ refreshed: 0, failed: 1, needsConsent: 0 });
    expect((await vault.get(key))!.meta).toMatchObject({ failures: 1, refreshAt: clock.now() + 1_000, lastError: 'temporarily_unavailable', status: 'active' });
    expect(await authorizer.refreshDue()).toEqual({ refreshed: 0, failed: 0, needsConsent: 0 }); // not due yet
    clock.advance(1_000);
    expect(await authorizer.refreshDue()).toEqual({ refreshed: 0, failed: 1, needsConsent: 0 });
    expect((await vault.get(key))!.meta).toMatchObject({ failures: 2, refreshAt: clock.now() + 2_000 });
    clock.advance(2_000);
    expect(await authorizer.refreshDue()).toEqual({ refreshed: 0, failed: 0, needsConsent: 1 });
    expect((await vault.get(key))!.meta.status).toBe('needs-consent');
    expect(as.requests.filter((r) => r.params['grant_type'] === 'refresh_token')).toHaveLength(3);
  });

  it('service credentials run client credentials again instead of refreshing', async () => {
    process.env['GH_TEST_UPSTREAM_SECRET'] = `${CANARY}-configured-secret`;
    build(config({ mode: 'client-credentials', client: { id: 'svc', secret: { env: 'GH_TEST_UPSTREAM_SECRET' } }, scopes: ['mcp:read'] }));
    const credential = authorizer.serviceCredential('up')!;
    expect(await credential.headers()).toEqual({});
    expect(await credential.challenge(401, challenge401())).toBe(true);
    const first = as.requests.find((r) => r.params['grant_type'] === 'client_credentials')!;
    expect(first.params['scope']).toBe('mcp:read');
    expect(first.params['resource']).toBe(as.mcpUrl);
    expect(first.authorization).toBe(`Basic ${Buffer.from(`svc:${CANARY}-configured-secret`).toString('base64')}`);
    expect(await credential.headers()).toEqual({ authorization: `Bearer ${CANARY}-access-1` });
    clock.advance(241_000);
    expect(await authorizer.refreshDue()).toEqual({ refreshed: 1, failed: 0, needsConsent: 0 });
    expect(as.requests.filter((r) => r.params['grant_type'] === 'client_credentials')).toHaveLength(2);
    expect(await credential.headers()).toEqual({ authorization: `Bearer ${CANARY}-access-2` });
  });
});

describe('token exchange instead of a consent', () => {
  it('gateway-assertion: RFC 8693 at the upstream authorization server with the user as subject, no browser', async () => {
    process.env['GH_TEST_UPSTREAM_SECRET'] = `${CANARY}-configured-secret`;
    const minted: Array<{ who: UserRef; audience: string }> = [];
    authorizer = createUpstreamAuthorizer(config({ mode: 'user-oauth', client: { id: 'gw', secret: { env: 'GH_TEST_UPSTREAM_SECRET' } }, tokenExchange: {} }), {
      vault, clock, configDir: process.cwd(), publicUrl: 'https://gateway.example', log: (level, message) => logs.push(`${level} ${message}`),
      subjectToken: async (who, audience) => {
        minted.push({ who, audience });
        return `${CANARY}-assertion-of-${who.user}`;
      },
    });
    const credential = authorizer.userCredential('up', ALICE);
    expect(await credential.headers()).toEqual({});
    expect(await credential.challenge(401, challenge401())).toBe(true);
    expect(minted).toEqual([{ who: ALICE, audience: as.base }]);
    const exchange = as.requests.find((r) => r.params['grant_type'] === 'urn:ietf:params:oauth:grant-type:token-exchange')!;
    expect(exchange.params).toMatchObject({
      subject_token: `${CANARY}-assertion-of-alice`,
      subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
      requested_token_type: 'urn:ietf:params:oauth:token-type:access_token',
      audience: as.base,
      resource: as.mcpUrl,
      scope: 'mcp:read',
    });
    expect(await credential.headers()).toEqual({ authorization: `Bearer ${CANARY}-access-1` });
    // No consent page for such a target; renewal exchanges again.
    expect((await rejection(authorizer.beginUserAuthorization('up', ALICE, { redirectUri: REDIRECT }))).code).toBe('INVALID_REQUEST');
    clock.advance(241_000);
    expect(await authorizer.refreshDue()).toEqual({ refreshed: 1, failed: 0, needsConsent: 0 });
    for (const line of logs) expect(line).not.toContain(CANARY);
  });
});

describe('static credentials', () => {
  it('builds the header once, and gives stdio targets the secret as an environment variable', async () => {
    process.env['GH_TEST_STATIC'] = 'sekrit';
    const cfg = configSchema.parse({
      targets: {
        http: { transport: 'streamable-http', url: 'https://up.example/mcp', credentials: { mode: 'static', secret: { env: 'GH_TEST_STATIC' }, header: 'X-Api-Key', scheme: '' } },
        child: { transport: 'stdio', command: 'node', credentials: { mode: 'static', secret: { env: 'GH_TEST_STATIC' }, envVar: 'API_KEY' } },
        missing: { transport: 'streamable-http', url: 'https://up.example/mcp', credentials: { mode: 'static', secret: { env: 'GH_TEST_UNSET_VARIABLE' } } },
        plain: { transport: 'streamable-http', url: 'https://up.example/mcp' },
      },
    });
    build(cfg);
    const credential = authorizer.serviceCredential('http')!;
    expect(credential.headers()).toEqual({ 'x-api-key': 'sekrit' });
    expect(credential.headers()).toBe(credential.headers());
    expect(authorizer.childEnvironment('child')).toEqual({ API_KEY: 'sekrit' });
    expect(authorizer.childEnvironment('http')).toEqual({});
    expect(authorizer.serviceCredential('plain')).toBeUndefined();
    expect((await rejection(authorizer.serviceCredential('missing')!.headers())).code).toBe('UPSTREAM_CREDENTIAL_UNAVAILABLE');
    expect((await rejection(authorizer.serviceCredential('http')!.challenge(401, undefined))).code).toBe('UPSTREAM_CREDENTIAL_UNAVAILABLE');
  });
});

describe('secrets stay secret', () => {
  it('no token or client secret appears in anything the authorizer logs, throws or stores as metadata', async () => {
    const thrown: string[] = [];
    // The SDK writes some warnings to the console itself; those count as logs too.
    const consoleLines: string[] = [];
    const spies = (['log', 'info', 'warn', 'error'] as const).map((level) => vi.spyOn(console, level).mockImplementation((...args: unknown[]) => {
      consoleLines.push(args.map(String).join(' '));
    }));
    const record = async (p: Promise<unknown> | unknown): Promise<void> => {
      try {
        await p;
      } catch (err) {
        const e = err as GatehouseError;
        thrown.push(e.message, JSON.stringify(e.details ?? {}), JSON.stringify(e.toRpcError?.() ?? {}), String(e.stack));
      }
    };
    build(config({ mode: 'user-oauth' }));
    await authorizer.completeUserAuthorization(await consent());
    const credential = authorizer.userCredential('up', ALICE);
    // The fake AS quotes the refresh token in its invalid_grant error_description.
    as.refresh = 'invalid_grant';
    clock.advance(241_000);
    await authorizer.refreshDue();
    await record(credential.headers());
    await record(credential.challenge(401, challenge401()));
    as.refresh = 'unavailable';
    await record(authorizer.completeUserAuthorization(await consent()).then(() => { clock.advance(241_000); return authorizer.refreshDue(); }));
    await record(authorizer.completeUserAuthorization(new URL(`${REDIRECT}?code=${CANARY}-bogus&state=nope`)));
    for (const spy of spies) spy.mockRestore();
    const metadata = JSON.stringify(await vault.list());
    expect(logs.length).toBeGreaterThan(0);
    expect(thrown.length).toBeGreaterThan(0);
    for (const text of [...logs, ...thrown, ...consoleLines, metadata]) expect(text).not.toContain(CANARY);
    // The tokens themselves are in the vault (encrypted there), which is where they belong.
    expect(vault.dump()).toContain(CANARY);
  });
});
