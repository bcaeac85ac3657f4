import { describe, expect, it } from 'vitest';
import { GatehouseError } from './errors.ts';
import { parseJson, parseMessage, serializeMessage, toMessage, type JsonRpcResponse } from './jsonrpc.ts';
import { rawJsonOf } from './raw-json.ts';

const code = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (err) {
    return (err as GatehouseError).code;
  }
  return undefined;
};

describe('JSON-RPC parsing', () => {
  it('refuses deep nesting before parsing, ignoring brackets inside strings', () => {
    expect(code(() => parseJson('['.repeat(70) + ']'.repeat(70), { maxDepth: 64 }))).toBe('ARGUMENTS_TOO_DEEP');
    expect(parseJson(JSON.stringify({ s: '[[[[[[[[[[' }), { maxDepth: 2 })).toEqual({ s: '[[[[[[[[[[' });
  });

  it('counts depth outside strings only, however the quotes inside them are escaped', () => {
    expect(parseJson(JSON.stringify({ s: '\\"[[[[', t: '\\', u: '\\\\"{{{{' }), { maxDepth: 1 })).toEqual({ s: '\\"[[[[', t: '\\', u: '\\\\"{{{{' });
    // After a string ending in an escaped backslash, brackets count again.
    expect(code(() => parseJson('{"s":"\\\\","a":[[1]]}', { maxDepth: 2 }))).toBe('ARGUMENTS_TOO_DEEP');
    expect(code(() => parseJson('{"s":"unterminated [[[[', { maxDepth: 1 }))).toBe('PARSE_ERROR');
  });

  it('classifies malformed messages', () => {
    expect(code(() => parseJson('{'))).toBe('PARSE_ERROR');
    expect(code(() => toMessage([]))).toBe('INVALID_REQUEST');
    expect(code(() => toMessage({ jsonrpc: '2.0', id: null, method: 'x' }))).toBe('INVALID_REQUEST');
    expect(code(() => toMessage({ jsonrpc: '1.0', id: 1, method: 'x' }))).toBe('INVALID_REQUEST');
    expect(code(() => toMessage({ jsonrpc: '2.0', id: 1, method: 'x', params: [1] }))).toBe('INVALID_REQUEST');
    expect(code(() => toMessage({ jsonrpc: '2.0', id: 1, error: { message: 'no code' } }))).toBe('INVALID_REQUEST');
  });

  it('keeps NUL bytes and lone surrogates as data', () => {
    const message = toMessage(parseJson('{"jsonrpc":"2.0","id":"a","method":"m","params":{"s":"\\u0000\\ud800"}}'));
    expect(message).toMatchObject({ params: { s: '\u0000\ud800' } });
  });

  it('parses upstream messages with the result left as raw text', () => {
    const text = '{"jsonrpc":"2.0","id":12,"result":{"content":[{"type":"text","text":"a \\"b\\" }"}],"isError":false}}';
    const message = parseMessage(text) as JsonRpcResponse;
    expect('result' in message && rawJsonOf(message.result)).toBe('{"content":[{"type":"text","text":"a \\"b\\" }"}],"isError":false}');
    const rewritten = { jsonrpc: '2.0' as const, id: 'agent-1', result: 'result' in message ? message.result : {} };
    expect(serializeMessage(rewritten)).toBe(`{"jsonrpc":"2.0","id":"agent-1","result":${text.slice(text.indexOf('"result":') + 9, -1)}}`);
    // Looking inside (as toEqual does) parses it; the value is the parsed one.
    expect(message).toEqual(JSON.parse(text));
  });

  it('parses upstream errors, requests, notifications and batches whole, and refuses what toMessage refuses', () => {
    for (const value of [
      { jsonrpc: '2.0', id: 1, error: { code: -32000, message: 'no', data: { deep: [1] } } },
      { jsonrpc: '2.0', id: 'r', method: 'sampling/createMessage', params: { a: 1 } },
      { jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 't' } },
    ]) {
      expect(parseMessage(JSON.stringify(value))).toEqual(value);
    }
    expect(parseMessage('[{"jsonrpc":"2.0","id":1,"result":{}},{"jsonrpc":"2.0","method":"x"}]')).toEqual([{ jsonrpc: '2.0', id: 1, result: {} }, { jsonrpc: '2.0', method: 'x' }]);
    expect(code(() => parseMessage('{"jsonrpc":"2.0","id":1,"result":[1]}'))).toBe('INVALID_REQUEST');
    expect(code(() => parseMessage('{"jsonrpc":"1.0","id":1,"result":{}}'))).toBe('INVALID_REQUEST');
    expect(code(() => parseMessage('{"jsonrpc":"2.0","id":true,"result":{}}'))).toBe('INVALID_REQUEST');
    expect(code(() => parseMessage('{"jsonrpc":"2.0","id":1,"result":{}'))).toBe('PARSE_ERROR');
    expect(code(() => parseMessage(`{"jsonrpc":"2.0","id":1,"result":{"a":${'['.repeat(70)}${']'.repeat(70)}}}`))).toBe('ARGUMENTS_TOO_DEEP');
  });
});
