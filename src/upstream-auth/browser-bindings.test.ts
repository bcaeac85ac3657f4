import { describe, expect, it } from 'vitest';
import { ManualClock } from '../clock.ts';
import { BrowserBindings } from './browser-bindings.ts';

describe('browser bindings of the connect page', () => {
  it('one flow opened from many browsers replaces its own oldest entries, never another flow’s', () => {
    const bindings = new BrowserBindings(new ManualClock(), 60_000);
    const bob = bindings.open('bob-browser', 'flow-b');
    bindings.expect('upstream', 'bob-state', bob);
    for (let i = 0; i < 20; i++) bindings.expect('identity', `state-${i}`, bindings.open(`browser-${i}`, 'flow-a'));
    // The flood kept only the newest eight of its own.
    expect(bindings.get('browser-0', 'flow-a')).toBeUndefined();
    expect(bindings.get('browser-11', 'flow-a')).toBeUndefined();
    expect(bindings.get('browser-12', 'flow-a')).toBeDefined();
    expect(bindings.take('identity', 'state-0', 'browser-0')).toBe('unknown');
    expect(bindings.take('identity', 'state-19', 'browser-19')).toMatchObject({ elicitationId: 'flow-a' });
    // Bob's flow is untouched: his binding and his redirect back from the upstream still hold.
    expect(bindings.get('bob-browser', 'flow-b')).toBe(bob);
    expect(bindings.take('upstream', 'bob-state', 'bob-browser')).toMatchObject({ browser: 'bob-browser', elicitationId: 'flow-b' });
  });

  it('a state answers only the browser it was sent from, once', () => {
    const bindings = new BrowserBindings(new ManualClock(), 60_000);
    bindings.expect('upstream', 's1', bindings.open('alice-browser', 'flow'));
    expect(bindings.take('upstream', 's1', 'mallory-browser')).toBe('wrongBrowser');
    // Spent by the wrong browser's attempt: the real one must start again.
    expect(bindings.take('upstream', 's1', 'alice-browser')).toBe('unknown');
  });
});
