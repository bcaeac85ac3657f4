import { describe, expect, it } from 'vitest';
import { ManualClock } from '../clock.ts';
import { configSchema } from '../config/schema.ts';
import { ConsentFlows, ELICITATION_ID, type ConsentFlow } from './consent-flows.ts';

const config = configSchema.parse({
  targets: {
    files: { transport: 'streamable-http', url: 'https://files.example/mcp', credentials: { mode: 'user-oauth', displayName: 'Example Files' } },
    plain: { transport: 'streamable-http', url: 'https://plain.example/mcp' },
  },
});

const ALICE = { tenant: 'default', user: 'alice', agent: 'agent-1', target: 'files', reason: 'not_authorized' } as const;

function flowsWith(clock = new ManualClock(), maxFlows?: number): ConsentFlows {
  return new ConsentFlows({ clock, publicBase: () => 'https://gw.example/', config: () => config, ...(maxFlows === undefined ? {} : { maxFlows }) });
}

describe('ConsentFlows', () => {
  it('creates an elicitation whose URL carries only a 128-bit random id', () => {
    const clock = new ManualClock();
    const flows = flowsWith(clock);
    const e = flows.create({ ...ALICE, scopes: ['files:read'], session: 's1' });
    expect(e.elicitationId).toMatch(ELICITATION_ID);
    expect(Buffer.from(e.elicitationId, 'base64url')).toHaveLength(16);
    expect(e.url).toBe(`https://gw.example/upstream-auth/connect/${e.elicitationId}`);
    expect(e.url).not.toContain('alice');
    expect(e.expiresAt).toBe(clock.now() + 10 * 60_000);
    expect(e.message).toContain('Example Files');
    expect(e.message).not.toContain('alice');
    expect(flows.get(e.elicitationId)).toMatchObject({ ...ALICE, scopes: ['files:read'], sessions: ['s1'], status: 'pending' });
  });

  it('names the target itself when it has no display name, and says why', () => {
    const flows = flowsWith();
    expect(flows.create({ ...ALICE, target: 'plain', reason: 'reconsent' }).message).toMatch(/^Your authorization for plain has expired or was revoked/);
    expect(flows.create({ ...ALICE, target: 'plain', agent: 'other', reason: 'step_up' }).message).toMatch(/^plain needs more permissions/);
  });

  it('reuses the live flow of the same tenant, user, agent and target, merging scopes and extending it', () => {
    const clock = new ManualClock();
    const flows = flowsWith(clock);
    const first = flows.create({ ...ALICE, scopes: ['a'], session: 's1' });
    clock.advance(5 * 60_000);
    const again = flows.create({ ...ALICE, scopes: ['b', 'a'], session: 's2' });
    expect(again.elicitationId).toBe(first.elicitationId);
    expect(again.expiresAt).toBe(clock.now() + 10 * 60_000);
    expect(flows.get(first.elicitationId)).toMatchObject({ scopes: ['a', 'b'], sessions: ['s1', 's2'] });
    for (const other of [{ user: 'bob' }, { agent: 'agent-2' }, { target: 'plain' }, { tenant: 'acme' }]) {
      expect(flows.create({ ...ALICE, ...other }).elicitationId).not.toBe(first.elicitationId);
    }
  });

  it('expires after the TTL (status expired), and forgets one TTL later', () => {
    const clock = new ManualClock();
    const flows = flowsWith(clock);
    const e = flows.create(ALICE);
    clock.advance(10 * 60_000);
    expect(flows.get(e.elicitationId)?.status).toBe('expired');
    expect(flows.owner(e.elicitationId)).toBeUndefined();
    // An expired flow is not reused.
    const next = flows.create(ALICE);
    expect(next.elicitationId).not.toBe(e.elicitationId);
    clock.advance(10 * 60_000);
    flows.create({ ...ALICE, user: 'someone' });
    expect(flows.get(e.elicitationId)).toBeUndefined();
  });

  it('completes once, tells every listener (even when one throws), and then makes new flows', () => {
    const errors: unknown[] = [];
    const flows = new ConsentFlows({ clock: new ManualClock(), publicBase: () => 'http://127.0.0.1:1', config: () => config, onListenerError: (err) => errors.push(err) });
    const seen: ConsentFlow[] = [];
    flows.onComplete(() => {
      throw new Error('listener bug');
    });
    const stop = flows.onComplete((f) => seen.push(f));
    const e = flows.create({ ...ALICE, session: 's1' });
    expect(flows.owner(e.elicitationId)).toEqual({ tenant: 'default', user: 'alice', agent: 'agent-1', target: 'files' });
    expect(flows.complete(e.elicitationId)).toBe(true);
    expect(flows.owner(e.elicitationId)).toEqual({ tenant: 'default', user: 'alice', agent: 'agent-1', target: 'files' });
    expect(flows.complete(e.elicitationId, 'declined')).toBe(false);
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ elicitationId: e.elicitationId, status: 'completed', sessions: ['s1'] });
    expect(errors).toHaveLength(1);
    expect(flows.create(ALICE).elicitationId).not.toBe(e.elicitationId);

    stop();
    const d = flows.create({ ...ALICE, target: 'plain' });
    expect(flows.complete(d.elicitationId, 'declined')).toBe(true);
    expect(flows.get(d.elicitationId)?.status).toBe('declined');
    expect(flows.owner(d.elicitationId)).toBeUndefined();
    expect(seen).toHaveLength(1);
    expect(flows.complete('unknown')).toBe(false);
  });

  it('is bounded: past the limit the oldest flow goes', () => {
    const flows = flowsWith(new ManualClock(), 3);
    const ids = ['u1', 'u2', 'u3', 'u4'].map((user) => flows.create({ ...ALICE, user }).elicitationId);
    expect(flows.size).toBe(3);
    expect(flows.get(ids[0]!)).toBeUndefined();
    expect(flows.get(ids[3]!)?.status).toBe('pending');
    // The evicted flow's key is free again.
    expect(flows.create({ ...ALICE, user: 'u1' }).elicitationId).not.toBe(ids[0]);
  });
});
