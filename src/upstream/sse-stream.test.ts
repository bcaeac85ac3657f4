import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../clock.ts';
import { backoffMs, decodeMessages, newCursor, readBodyText, readSseBody, waitFor, type SseEvent } from './sse-stream.ts';

async function* chunks(...parts: Array<string | Uint8Array>): AsyncGenerator<Uint8Array | string> {
  for (const part of parts) yield part;
}

async function read(...parts: Array<string | Uint8Array>): Promise<{ events: SseEvent[]; bytes: number; cursor: ReturnType<typeof newCursor> }> {
  const events: SseEvent[] = [];
  const cursor = newCursor();
  let bytes = 0;
  await readSseBody(chunks(...parts), { cursor, onEvent: (e) => events.push(e), onBytes: (n) => { bytes += n; } });
  return { events, bytes, cursor };
}

describe('readSseBody', () => {
  it('dispatches events across arbitrary chunk boundaries, including a split UTF-8 character', async () => {
    const bytes = Buffer.from('event: message\ndata: {"text":"é"}\n\n: comment\n\ndata: two\n\n', 'utf8');
    const split = bytes.indexOf(0xc3) + 1; // between the two bytes of "é"
    const { events, bytes: counted } = await read(bytes.subarray(0, 5), bytes.subarray(5, split), bytes.subarray(split));
    expect(events).toEqual([
      { type: 'message', data: '{"text":"é"}', id: undefined },
      { type: 'message', data: 'two', id: undefined },
    ]);
    expect(counted).toBe(bytes.byteLength);
  });

  it('keeps the last event id across events without one, and records retry', async () => {
    const { events, cursor } = await read('id: a1\nretry: 250\ndata: \n\n', 'event: endpoint\ndata: /messages\n\n');
    expect(events.map((e) => [e.type, e.data, e.id])).toEqual([['message', '', 'a1'], ['endpoint', '/messages', undefined]]);
    expect(cursor).toEqual({ lastEventId: 'a1', retryMs: 250 });
  });

  it('an empty id field clears the cursor, as the SSE spec says', async () => {
    const { cursor } = await read('id: a1\ndata: x\n\nid:\ndata: y\n\n');
    expect(cursor.lastEventId).toBeUndefined();
  });

  it('drops an event cut off without its blank line', async () => {
    const { events } = await read('data: complete\n\ndata: partial');
    expect(events.map((e) => e.data)).toEqual(['complete']);
  });

  it('refuses an event larger than the limit', async () => {
    const huge = `data: ${'x'.repeat(100)}`;
    await expect(readSseBody(chunks(huge), { cursor: newCursor(), onEvent: () => {}, onBytes: () => {}, maxEventChars: 50 }))
      .rejects.toMatchObject({ code: 'UPSTREAM_PROTOCOL_ERROR' });
  });
});

describe('body helpers', () => {
  it('decodeMessages reads one message or a batch and refuses anything else', () => {
    expect(decodeMessages('{"jsonrpc":"2.0","id":1,"result":{}}')).toHaveLength(1);
    expect(decodeMessages('[{"jsonrpc":"2.0","method":"a"},{"jsonrpc":"2.0","id":2,"result":{}}]')).toHaveLength(2);
    expect(() => decodeMessages('not json')).toThrow(expect.objectContaining({ code: 'UPSTREAM_PROTOCOL_ERROR' }));
    expect(() => decodeMessages('{"id":1}')).toThrow(expect.objectContaining({ code: 'UPSTREAM_PROTOCOL_ERROR' }));
  });

  it('readBodyText enforces its byte limit', async () => {
    expect(await readBodyText(Readable.from(['ab', Buffer.from('cd')]), 10, () => {})).toBe('abcd');
    await expect(readBodyText(Readable.from(['abcdef']), 4, () => {})).rejects.toMatchObject({ code: 'UPSTREAM_PROTOCOL_ERROR' });
    // A multibyte character split across chunks survives.
    const euro = Buffer.from('€');
    expect(await readBodyText(Readable.from([euro.subarray(0, 1), euro.subarray(1)]), 10, () => {})).toBe('€');
    const destroyed = Readable.from(['x']);
    destroyed.destroy();
    await expect(readBodyText(destroyed, 10, () => {})).rejects.toMatchObject({ code: 'UPSTREAM_UNAVAILABLE' });
  });
});

describe('reconnect timing', () => {
  it('backs off exponentially from 1 s to a 30 s cap', () => {
    expect([1, 2, 3, 4, 6, 10].map(backoffMs)).toEqual([1000, 2000, 4000, 8000, 30_000, 30_000]);
  });

  it('waitFor resolves on the clock, or false as soon as the signal aborts', async () => {
    const clock = new ManualClock();
    const controller = new AbortController();
    const timed = waitFor(clock, 300, controller.signal);
    clock.advance(300);
    expect(await timed).toBe(true);

    const aborted = waitFor(clock, 300, controller.signal);
    controller.abort();
    expect(await aborted).toBe(false);
    expect(clock.pending).toBe(0);
    expect(await waitFor(clock, 10, controller.signal)).toBe(false);
  });
});
