import { describe, expect, it } from 'vitest';
import { paramHeaderMismatch, paramHeadersOf, paramHeaderValues, type ParamHeader } from './param-headers.ts';

const schema = (properties: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({ type: 'object', properties, ...extra });

function headersOf(inputSchema: unknown): readonly ParamHeader[] {
  const parsed = paramHeadersOf(inputSchema);
  if (!parsed.ok) throw new Error(parsed.reason);
  return parsed.headers;
}

describe('x-mcp-header annotations', () => {
  it('finds annotated primitives, nested ones through properties included', () => {
    const headers = headersOf(
      schema({
        region: { type: 'string', 'x-mcp-header': 'Region' },
        opts: { type: 'object', properties: { level: { type: ['integer', 'null'], 'x-mcp-header': 'Level' } } },
        plain: { type: 'number' },
        sample: { type: 'object', default: { 'x-mcp-header': 'NotAnAnnotation' } },
      }),
    );
    expect(headers).toEqual([
      { name: 'Region', headerKey: 'mcp-param-region', path: ['region'], type: 'string' },
      { name: 'Level', headerKey: 'mcp-param-level', path: ['opts', 'level'], type: 'integer' },
    ]);
  });

  it.each([
    ['a number parameter', schema({ f: { type: 'number', 'x-mcp-header': 'F' } }), /string, integer or boolean/],
    ['an object parameter', schema({ o: { type: 'object', 'x-mcp-header': 'O' } }), /string, integer or boolean/],
    ['an empty name', schema({ s: { type: 'string', 'x-mcp-header': '' } }), /non-empty/],
    ['a name that is no HTTP token', schema({ s: { type: 'string', 'x-mcp-header': 'Bad Name' } }), /not an HTTP token/],
    ['a name with CR LF', schema({ s: { type: 'string', 'x-mcp-header': 'A\r\nB' } }), /not an HTTP token/],
    ['a name used twice ignoring case', schema({ a: { type: 'string', 'x-mcp-header': 'Dup' }, b: { type: 'string', 'x-mcp-header': 'dup' } }), /used twice/],
    ['an annotation under items', schema({ list: { type: 'array', items: { type: 'string', 'x-mcp-header': 'Item' } } }), /not reachable/],
    ['an annotation under allOf', schema({}, { allOf: [{ properties: { s: { type: 'string', 'x-mcp-header': 'S' } } }] }), /not reachable/],
    ['an annotation in $defs', schema({}, { $defs: { d: { type: 'string', 'x-mcp-header': 'D' } } }), /not reachable/],
    ['an annotation on the root', { type: 'string', 'x-mcp-header': 'Root' }, /schema root/],
  ])('rejects %s', (_what, inputSchema, reason) => {
    const parsed = paramHeadersOf(inputSchema);
    expect(parsed.ok).toBe(false);
    expect(parsed.ok ? '' : parsed.reason).toMatch(reason);
  });

  it('treats a schema without annotations (or no schema) as having none', () => {
    expect(paramHeadersOf(schema({ q: { type: 'string' } }))).toEqual({ ok: true, headers: [] });
    expect(paramHeadersOf(undefined)).toEqual({ ok: true, headers: [] });
  });
});

describe('mirroring and checking Mcp-Param headers', () => {
  const headers = headersOf(
    schema({
      region: { type: 'string', 'x-mcp-header': 'Region' },
      priority: { type: 'integer', 'x-mcp-header': 'Priority' },
      verbose: { type: 'boolean', 'x-mcp-header': 'Verbose' },
    }),
  );

  it('encodes values by the spec: plain ASCII as is, everything else as =?base64?…?=', () => {
    expect(paramHeaderValues(headers, { region: 'us-west1', priority: 42, verbose: false })).toEqual({
      'Mcp-Param-Region': 'us-west1',
      'Mcp-Param-Priority': '42',
      'Mcp-Param-Verbose': 'false',
    });
    expect(paramHeaderValues(headers, { region: 'Hello, 世界' })).toEqual({ 'Mcp-Param-Region': '=?base64?SGVsbG8sIOS4lueVjA==?=' });
    expect(paramHeaderValues(headers, { region: ' padded ' })).toEqual({ 'Mcp-Param-Region': '=?base64?IHBhZGRlZCA=?=' });
    expect(paramHeaderValues(headers, { region: '=?base64?literal?=' })).toEqual({ 'Mcp-Param-Region': '=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?=' });
    // null and absent parameters are never mirrored
    expect(paramHeaderValues(headers, { region: null })).toBeUndefined();
  });

  it('accepts matching headers, encoded or not, and integers compared numerically', () => {
    expect(paramHeaderMismatch(headers, { region: 'Hello', priority: 42 }, { 'mcp-param-region': '=?base64?SGVsbG8=?=', 'mcp-param-priority': '42.0' })).toBeUndefined();
    expect(paramHeaderMismatch(headers, { verbose: null }, {})).toBeUndefined();
  });

  it.each([
    ['a body value without its header', { region: 'eu' }, {}, /header is required/],
    ['a header that disagrees with the body', { region: 'eu' }, { 'mcp-param-region': 'us' }, /does not match/],
    ['bad base64 padding', { region: 'Hello' }, { 'mcp-param-region': '=?base64?SGVsbG8?=' }, /not valid/],
    ['bad base64 characters', { region: 'Hello' }, { 'mcp-param-region': '=?base64?SGV*bG8=?=' }, /not valid/],
    ['base64 of invalid UTF-8', { region: 'x' }, { 'mcp-param-region': '=?base64?/w==?=' }, /not valid/],
    ['control characters in the header', { region: 'a\u0001b' }, { 'mcp-param-region': 'a\u0001b' }, /not allowed/],
    ['a header for a parameter the body leaves out', {}, { 'mcp-param-region': 'eu' }, /no value/],
    ['a repeated header', { region: 'eu' }, { 'mcp-param-region': ['eu', 'eu'] }, /more than once/],
    ['an integer header that is not a number', { priority: 1 }, { 'mcp-param-priority': 'one' }, /does not match/],
  ])('rejects %s', (_what, args, received, reason) => {
    expect(paramHeaderMismatch(headers, args, received)).toMatch(reason);
  });

  it('treats an undecorated literal as the literal value', () => {
    expect(paramHeaderMismatch(headers, { region: 'SGVsbG8=' }, { 'mcp-param-region': 'SGVsbG8=' })).toBeUndefined();
  });
});
