import { describe, expect, it } from 'vitest';
import { GatehouseError } from './errors.ts';
import { lazyJsonObject, rawJsonOf, scanEnvelope, stringifyMessage, withAddedMembers } from './raw-json.ts';

const code = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (err) {
    return err instanceof GatehouseError ? err.code : `not a GatehouseError: ${String(err)}`;
  }
  return undefined;
};

/** The envelope's `result` as a lazy object, as parseMessage builds it. */
function lazyResult(text: string): Record<string, unknown> {
  const envelope = scanEnvelope(text, 64, 'result')!;
  return lazyJsonObject(envelope.text, envelope.members.get('result')!, envelope.inner!);
}

/** A deterministic PRNG, so a failing case can be replayed. */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const TRICKY = ['', '"', '\\', '\\"', '"\\', '}', '{', ']', '[', '{"a":1}', '\u0000', '\u001f', '\u2028', '\ud800', '\udfff\ud800', 'é中😀', '/', '\\u0022'];

function randomValue(next: () => number, depth: number): unknown {
  const pick = Math.floor(next() * (depth > 5 ? 4 : 7));
  switch (pick) {
    case 0: return next() < 0.5 ? null : next() < 0.5;
    case 1: return [0, -0.5, 1e21, 123456789, -3.25e-7, 2 ** 53][Math.floor(next() * 6)];
    case 2:
    case 3: return TRICKY[Math.floor(next() * TRICKY.length)]! + TRICKY[Math.floor(next() * TRICKY.length)]!;
    case 4: return Array.from({ length: Math.floor(next() * 4) }, () => randomValue(next, depth + 1));
    default: {
      const out: Record<string, unknown> = {};
      for (let i = Math.floor(next() * 4); i > 0; i--) out[TRICKY[Math.floor(next() * TRICKY.length)]! + String(i)] = randomValue(next, depth + 1);
      return out;
    }
  }
}

/** JSON text of `value` with random whitespace between tokens (a reformatting that keeps strings intact). */
function withWhitespace(text: string, next: () => number): string {
  let out = '';
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    out += c;
    if (inString) {
      if (c === '\\') out += text[++i]!;
      else if (c === '"') inString = false;
    } else if (c === '"') {
      inString = true;
    } else if ('{}[],:'.includes(c) && next() < 0.3) {
      out += [' ', '\t', '\n', '\r\n', '  '][Math.floor(next() * 5)];
    }
  }
  return out;
}

describe('scanEnvelope', () => {
  it('finds the members of an envelope and of its result', () => {
    const text = '{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"hi"}],"isError":false}}';
    const envelope = scanEnvelope(text, 64, 'result')!;
    expect([...envelope.members.keys()]).toEqual(['jsonrpc', 'id', 'result']);
    expect([...envelope.inner!.keys()]).toEqual(['content', 'isError']);
    const span = envelope.members.get('result')!;
    expect(text.slice(span.start, span.end)).toBe('{"content":[{"type":"text","text":"hi"}],"isError":false}');
  });

  it('skips escaped quotes, backslashes, braces and unicode escapes inside strings', () => {
    const nasty = 'a\\"}{]["\\\\' + '\\\\\\"' + '\u0022{"x":1}';
    const text = JSON.stringify({ id: 1, result: { [nasty]: nasty, '\\': '\\\\', u: '\u00e9\ud83d\ude00' }, tail: '}' });
    const envelope = scanEnvelope(text, 64, 'result')!;
    expect([...envelope.members.keys()]).toEqual(['id', 'result', 'tail']);
    expect([...envelope.inner!.keys()]).toEqual([nasty, '\\', 'u']);
    expect(lazyResult(text)).toEqual(JSON.parse(text).result);
    expect(scanEnvelope('{"k\\u0041":"\\u00e9"}', 64)!.members.has('kA')).toBe(true);
  });

  it('refuses invalid JSON the way JSON.parse does', () => {
    const bad = [
      '', ' ', '{', '}', '{"a"}', '{"a":}', '{"a":1,}', '[1,]', '{"a":1 "b":2}', '{a:1}', "{'a':1}", '{"a":01}', '{"a":1.}',
      '{"a":.5}', '{"a":+1}', '{"a":tru}', '{"a":nul}', '{"a":"\\x"}', '{"a":"\\u12"}', '{"a":"\\u12G4"}', '{"a":"open',
      '{"a":"\\"}', '{"a":1}}', '{"a":1} x', '\ufeff{}', '{"a":[1,2}', '{"a":{"b":1]}', '{"a":1}{', '[}', 'NaN', '{"a":Infinity}',
      '{"a":"\n"}', '{"a":"x\r"}',
    ];
    for (const text of bad) {
      expect(() => JSON.parse(text), text).toThrow();
      expect(code(() => scanEnvelope(text, 64, 'result')), JSON.stringify(text)).toBe('PARSE_ERROR');
    }
  });

  it('accepts what JSON.parse accepts, and turns line breaks between tokens into spaces', () => {
    const text = '{\r\n  "id" : 1 ,\n\t"result":{ "a" : [ 1 , -2.5e+3 , true , false , null , "x" ] }\n}\n';
    const envelope = scanEnvelope(text, 64, 'result')!;
    expect(envelope.text).not.toMatch(/[\r\n]/);
    expect(envelope.text.length).toBe(text.length);
    expect(JSON.parse(envelope.text)).toEqual(JSON.parse(text));
    expect(scanEnvelope('[1,{"a":2}]', 64)).toBeUndefined();
    expect(scanEnvelope(' 5 ', 64)).toBeUndefined();
  });

  it('limits depth, counting the envelope as level 1', () => {
    const nest = (n: number): string => '['.repeat(n) + ']'.repeat(n);
    expect(scanEnvelope(`{"result":{"a":${nest(62)}}}`, 64, 'result')).toBeDefined();
    expect(code(() => scanEnvelope(`{"result":{"a":${nest(63)}}}`, 64, 'result'))).toBe('ARGUMENTS_TOO_DEEP');
    expect(code(() => scanEnvelope(nest(100_000), 64))).toBe('ARGUMENTS_TOO_DEEP');
    // Brackets inside strings do not count.
    expect(scanEnvelope(JSON.stringify({ result: { s: '['.repeat(1000) } }), 4, 'result')).toBeDefined();
  });

  it('stays linear on huge strings and on strings made of escapes', () => {
    const huge = JSON.stringify({ jsonrpc: '2.0', id: 1, result: { text: 'x'.repeat(8 * 1024 * 1024) } });
    expect(scanEnvelope(huge, 64, 'result')!.inner!.has('text')).toBe(true);
    const escapes = JSON.stringify({ result: { s: '\\"'.repeat(200_000), t: '\u0001'.repeat(100_000) } });
    expect(lazyResult(escapes)).toEqual(JSON.parse(escapes).result);
    const backslashRuns = JSON.stringify({ result: { s: `${'\\'.repeat(99_999)}"`.repeat(3) } });
    expect(lazyResult(backslashRuns)).toEqual(JSON.parse(backslashRuns).result);
  });

  it('agrees with JSON.parse on random documents and random corruptions of them', () => {
    const next = random(20261121);
    for (let n = 0; n < 400; n++) {
      const doc = { jsonrpc: '2.0', id: n, result: { v: randomValue(next, 0), w: randomValue(next, 0) } };
      const text = withWhitespace(JSON.stringify(doc), next);
      expect(lazyResult(text)).toEqual(JSON.parse(text).result);
      // One character deleted, replaced or inserted, from an alphabet of JSON's own syntax.
      const at = Math.floor(next() * text.length);
      const c = '{}[]",:\\0123456789-.eEtrufalsn '[Math.floor(next() * 32)] ?? '';
      const op = Math.floor(next() * 3);
      const broken = op === 0 ? text.slice(0, at) + text.slice(at + 1) : op === 1 ? text.slice(0, at) + c + text.slice(at + 1) : text.slice(0, at) + c + text.slice(at);
      let parses = true;
      try {
        JSON.parse(broken);
      } catch {
        parses = false;
      }
      expect(code(() => scanEnvelope(broken, 64, 'result')) === undefined, JSON.stringify(broken)).toBe(parses);
    }
  });

  it('does not look for raw control characters inside strings unless the text has a line break', () => {
    // Raw tabs and NULs in strings are invalid JSON but harmless to framing: found on first read.
    const text = '{"result":{"a":"x\ty","b":1}}';
    const result = lazyResult(text);
    expect(result['b']).toBe(1);
    expect(code(() => result['a'])).toBe('UPSTREAM_PROTOCOL_ERROR');
    expect(code(() => scanEnvelope('{"result":{"a":"x\ty"}}\n', 64, 'result'))).toBe('PARSE_ERROR');
  });
});

describe('lazy result objects', () => {
  const text = '{"jsonrpc":"2.0","id":"up-1","result":{"content":[{"type":"text","text":"hello"}],"resultType":"complete","n":3}}';

  it('reads members without giving up the raw text, until an object member is handed out', () => {
    const result = lazyResult(text);
    expect(result['resultType']).toBe('complete');
    expect('n' in result).toBe(true);
    expect('missing' in result).toBe(false);
    expect(result['missing']).toBeUndefined();
    expect(rawJsonOf(result)).toBe('{"content":[{"type":"text","text":"hello"}],"resultType":"complete","n":3}');
    const content = result['content'] as Array<{ text: string }>;
    content[0]!.text = 'changed';
    expect(rawJsonOf(result)).toBeUndefined();
    expect(JSON.parse(stringifyMessage({ result }))).toEqual({ result: { content: [{ type: 'text', text: 'changed' }], resultType: 'complete', n: 3 } });
  });

  it('behaves as the parsed object under spreading, keys, equality and mutation', () => {
    const result = lazyResult(text);
    expect(Object.keys(result)).toEqual(['content', 'resultType', 'n']);
    expect({ ...result, n: 4 }).toEqual({ ...JSON.parse(text).result, n: 4 });
    expect(result).toEqual(JSON.parse(text).result);
    expect(Array.isArray(result)).toBe(false);
    expect(Object.getPrototypeOf(result)).toBe(Object.prototype);
    const other = lazyResult(text);
    other['n'] = 5;
    delete other['resultType'];
    expect(rawJsonOf(other)).toBeUndefined();
    expect(JSON.parse(JSON.stringify(other))).toEqual({ content: [{ type: 'text', text: 'hello' }], n: 5 });
  });

  it('keeps JSON.parse semantics for duplicate keys and __proto__', () => {
    const dup = lazyResult('{"result":{"a":1,"b":2,"a":3}}');
    expect(dup['a']).toBe(3);
    expect(Object.keys(dup)).toEqual(['a', 'b']);
    const proto = lazyResult('{"result":{"__proto__":{"polluted":true},"x":1}}');
    expect(Object.keys(proto)).toEqual(['__proto__', 'x']);
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
    expect(Object.getPrototypeOf(proto)).toBe(Object.prototype);
  });

  it('serializes a message with its untouched result as the original text', () => {
    const result = lazyResult(text);
    const out = stringifyMessage({ jsonrpc: '2.0', id: 42, result });
    expect(out).toBe('{"jsonrpc":"2.0","id":42,"result":{"content":[{"type":"text","text":"hello"}],"resultType":"complete","n":3}}');
    const plain = { jsonrpc: '2.0', id: 'x', error: { code: -1, message: 'm', data: undefined }, skipped: undefined };
    expect(stringifyMessage(plain)).toBe(JSON.stringify(plain));
    expect(stringifyMessage(new Date(0))).toBe(JSON.stringify(new Date(0)));
  });

  it('splices added members into the raw text, and declines when a key exists', () => {
    const shaped = withAddedMembers(lazyResult('{"result":{"a":1 \t}}'), { resultType: 'complete', ttlMs: 0, skip: undefined })!;
    expect(rawJsonOf(shaped)).toBe('{"a":1 \t,"resultType":"complete","ttlMs":0}');
    expect(shaped['ttlMs']).toBe(0);
    expect(shaped['a']).toBe(1);
    expect(rawJsonOf(withAddedMembers(lazyResult('{"result":{ }}'), { k: 'v' }))).toBe('{ "k":"v"}');
    expect(withAddedMembers(lazyResult('{"result":{"ttlMs":null}}'), { ttlMs: 0 })).toBeUndefined();
    expect(withAddedMembers({ a: 1 }, { b: 2 })).toBeUndefined();
  });
});
