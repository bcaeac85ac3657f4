import { describe, expect, it } from 'vitest';
import { abortAll, ExchangeAbort } from './exchange-abort.ts';

describe('ExchangeAbort', () => {
  it('follows the caller signal once, with its reason, until released', () => {
    const inflight = new Set<ExchangeAbort>();
    const caller = new AbortController();
    const exchange = new ExchangeAbort(inflight, caller.signal);
    let fired = 0;
    exchange.on('abort', () => fired++);
    expect(inflight.has(exchange)).toBe(true);
    caller.abort(new Error('stop'));
    exchange.abort(new Error('again'));
    expect(fired).toBe(1);
    expect(exchange.aborted).toBe(true);
    expect((exchange.reason as Error).message).toBe('stop');
    expect((exchange.signal.reason as Error).message).toBe('stop');

    const later = new AbortController();
    const released = new ExchangeAbort(inflight, later.signal);
    released.release();
    later.abort();
    expect(released.aborted).toBe(false);
    expect(inflight.has(released)).toBe(false);
  });

  it('starts aborted under an aborted caller, and a made signal follows a later abort', () => {
    const inflight = new Set<ExchangeAbort>();
    expect(new ExchangeAbort(inflight, AbortSignal.abort('gone')).aborted).toBe(true);
    const exchange = new ExchangeAbort(inflight, undefined);
    const signal = exchange.signal;
    expect(signal.aborted).toBe(false);
    abortAll(inflight, 'closing');
    expect(signal.aborted).toBe(true);
    expect(signal.reason).toBe('closing');
  });
});
