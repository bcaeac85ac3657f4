import { describe, expect, it } from 'vitest';
import { ManualClock } from '../clock.ts';
import { DownstreamSession } from './session.ts';
import { SessionStore } from './session-store.ts';

function setup(maxSessions = 10) {
  const clock = new ManualClock();
  const store = new SessionStore({ clock, idleTimeoutMs: 60_000, maxSessions, replayBufferEvents: 8 });
  const open = (id: string) => {
    const session = new DownstreamSession({ id, era: 'legacy', protocolVersion: '2025-11-25', transport: 'streamable-http', toolset: undefined, now: clock.now() });
    return { session, entry: store.add(session) };
  };
  return { clock, store, open };
}

describe('session store', () => {
  it('expires idle sessions on the injected clock, closing them', () => {
    const { clock, store, open } = setup();
    const { session } = open('idle');
    open('busy').session.inFlight.set(1, new AbortController());
    clock.advance(59_000);
    expect(store.get('idle')).toBeDefined(); // activity refreshes lastSeen
    clock.advance(61_000);
    clock.advance(61_000);
    expect(store.get('idle')).toBeUndefined();
    expect(session.closed).toBe(true);
    // A session with a call in flight is not idle.
    expect(store.get('busy')).toBeDefined();
  });

  it('refuses new sessions past the limit, after expiring what it can', () => {
    const { clock, store, open } = setup(2);
    open('a');
    open('b');
    expect(open('c').entry).toBeUndefined();
    clock.advance(120_000);
    expect(open('d').entry).toBeDefined();
    expect(store.size).toBe(1);
  });

  it('closeAll closes every session and cancels the sweep', () => {
    const { clock, store, open } = setup();
    const { session } = open('a');
    store.closeAll();
    expect(session.closed).toBe(true);
    expect(store.size).toBe(0);
    expect(clock.pending).toBe(0);
  });
});
