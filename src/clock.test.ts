import { describe, expect, it, vi } from 'vitest';
import { ManualClock, repeatEvery } from './clock.ts';

describe('repeatEvery', () => {
  it('runs once per interval after the previous run settled, survives a failure, and stops', async () => {
    const clock = new ManualClock(0);
    const runs: number[] = [];
    const errors: unknown[] = [];
    const stop = repeatEvery(clock, 100, async () => {
      runs.push(clock.now());
      if (runs.length === 1) throw new Error('first run fails');
    }, (err) => errors.push(err));
    expect(runs).toEqual([]);
    clock.advance(100);
    await vi.waitFor(() => expect(errors).toHaveLength(1));
    clock.advance(100);
    await vi.waitFor(() => expect(runs).toEqual([100, 200]));
    stop();
    stop();
    clock.advance(1_000);
    await Promise.resolve();
    expect(runs).toEqual([100, 200]);
  });
});
