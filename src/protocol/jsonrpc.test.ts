import { describe, expect, it } from 'vitest';
import { GatehouseError } from './errors.ts';
import { parseJson, toMessage } from './jsonrpc.ts';

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
});
