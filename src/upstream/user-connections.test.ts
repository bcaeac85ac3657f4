import { describe, expect, it } from 'vitest';
import { parseConfig } from '../config/load.ts';
import { GatehouseError } from '../protocol/errors.ts';
import type { UpstreamAuthorizations, UpstreamCredential, UserAuthorizationState, UserRef } from '../upstream-auth/upstream-credential.ts';
import type { UpstreamConnection } from './connection.ts';
import { UserConnections, type UserTargetState } from './user-connections.ts';

/** A connection as far as the per-user side looks at it. */
class FakeConnection {
  state: UpstreamConnection['state'] = 'idle';
  inFlight = 0;
  closed = 0;
  private closedListeners: Array<() => void> = [];
  constructor(
    readonly credential: UpstreamCredential,
    private readonly onReady: () => void,
    private readonly failStart?: Error,
  ) {}
  async start(): Promise<void> {
    if (this.failStart) throw this.failStart;
    this.state = 'ready';
    this.onReady();
  }
  async request(): Promise<never> {
    throw new GatehouseError('UPSTREAM_AUTHORIZATION_REQUIRED', 'no token', { data: { target: 't', reason: 'not_authorized' } });
  }
  onClosed(listener: () => void): void {
    this.closedListeners.push(listener);
  }
  async close(): Promise<void> {
    this.closed++;
    this.state = 'closed';
    for (const l of this.closedListeners.splice(0)) l();
  }
}

function setup(states: Record<string, UserAuthorizationState>, authorized: UserRef[] = []) {
  let now = 1_000_000;
  const config = parseConfig({ vault: { keys: [{ id: 'k', secret: { env: 'X' } }] }, targets: { t: { transport: 'streamable-http', url: 'https://up.example/mcp', credentials: { mode: 'user-oauth' } } } }, 'test', { configDir: '/' });
  const entry: UserTargetState = { config: config.targets['t']!, connection: undefined, discovery: undefined, failed: false, lastError: undefined, users: new Map(), usersLastUsed: new Map(), usersClosed: false };
  const probe: UpstreamCredential = { headers: () => ({}), challenge: async () => false };
  const credentials: Partial<UpstreamAuthorizations> = {
    userAuthorization: async (_t, who) => states[who.user] ?? 'absent',
    authorizedUsers: async () => authorized,
    userCredential: (_t, who) => ({ headers: () => ({ authorization: `Bearer ${who.user}` }), challenge: async () => false }),
    probeCredential: () => probe,
  };
  const made: FakeConnection[] = [];
  const adopted: FakeConnection[] = [];
  const logs: string[] = [];
  const users = new UserConnections({
    credentials: () => credentials as UpstreamAuthorizations,
    connect: (_name, _entry, credential, _onNotification, onReady) => {
      const connection: FakeConnection = new FakeConnection(credential, () => onReady(undefined));
      made.push(connection);
      return connection as unknown as UpstreamConnection;
    },
    adopt: (_name, e) => adopted.push(e.connection as unknown as FakeConnection),
    notification: () => undefined,
    log: (_name, _level, message) => logs.push(message),
    now: () => now,
  });
  return { users, entry, made, adopted, logs, probe, advance: (ms: number) => (now += ms) };
}

const alice = { tenant: 'default', user: 'alice' };
const bob = { tenant: 'default', user: 'bob' };

describe('per-user upstream connections', () => {
  it('refuses a user without a usable token before any network, with the reason the elicitation needs', async () => {
    const { users, entry, made } = setup({ bob: 'needs-consent' });
    await expect(users.connection('t', entry, alice)).rejects.toMatchObject({ code: 'UPSTREAM_AUTHORIZATION_REQUIRED', details: { data: { target: 't', reason: 'not_authorized' } } });
    await expect(users.connection('t', entry, bob)).rejects.toMatchObject({ details: { data: { reason: 'reconsent' } } });
    expect(made).toHaveLength(0);
    // A refusal is not cached: the next call asks the vault again.
    expect(entry.users.size).toBe(0);
  });

  it("gives each user their own connection with their own credential; the first one up serves discovery", async () => {
    const { users, entry, made, adopted } = setup({ alice: 'active', bob: 'active' });
    const a = await users.connection('t', entry, alice);
    expect(await users.connection('t', entry, alice)).toBe(a);
    const b = await users.connection('t', entry, bob);
    expect(b).not.toBe(a);
    expect(made.map((c) => c.credential.headers())).toEqual([{ authorization: 'Bearer alice' }, { authorization: 'Bearer bob' }]);
    expect(adopted).toEqual([a]);
    expect(entry.connection).toBe(a);
    // Alice's connection closing forgets it, and the target's discovery connection with it.
    await (a as unknown as FakeConnection).close();
    expect(entry.connection).toBeUndefined();
    expect(entry.users.size).toBe(1);
  });

  it('closes connections idle past the limit, but not one with a call in flight or used lately', async () => {
    const { users, entry, advance } = setup({ alice: 'active', bob: 'active' });
    const a = (await users.connection('t', entry, alice)) as unknown as FakeConnection;
    const b = (await users.connection('t', entry, bob)) as unknown as FakeConnection;
    b.inFlight = 1;
    advance(60_000);
    await Promise.all(users.sweep(entry, 30_000));
    expect(a.closed).toBe(1);
    expect(b.closed).toBe(0);
    b.inFlight = 0;
    await users.connection('t', entry, bob); // used again: its idle clock restarts
    advance(10_000);
    await Promise.all(users.sweep(entry, 30_000));
    expect(b.closed).toBe(0);
    advance(30_000);
    await Promise.all(users.sweep(entry, 30_000));
    expect(b.closed).toBe(1);
    expect(entry.users.size).toBe(0);
  });

  it('probes a target nobody has authorized with the tokenless credential, then closes the probe', async () => {
    const { users, entry, made, logs, probe } = setup({});
    await users.start('t', entry);
    expect(made).toHaveLength(1);
    expect(made[0]!.credential).toBe(probe);
    expect(made[0]!.closed).toBe(1);
    expect(entry.connection).toBeUndefined();
    expect(logs).toContain('the upstream asks for authorization; its challenge is kept for the first user');
  });

  it('after a restart, discovers as the first user who still holds a token', async () => {
    const { users, entry, made, adopted } = setup({ bob: 'active' }, [bob]);
    await users.start('t', entry);
    expect(made.map((c) => c.credential.headers())).toEqual([{ authorization: 'Bearer bob' }]);
    expect(adopted).toHaveLength(1);
  });
});
