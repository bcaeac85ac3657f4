import { describe, expect, it } from 'vitest';
import { assertSafePattern, compileArgumentConstraints, compilePattern, MAX_PATTERN_INPUT_CHARS } from './policy-arguments.ts';
import type { ArgumentConstraint } from '../config/auth-schema.ts';

const c = (x: Partial<ArgumentConstraint>): ArgumentConstraint => ({ required: false, ...x });

describe('argument constraints', () => {
  it('compile to nothing when a grant has none', () => {
    expect(compileArgumentConstraints(undefined, 'g')).toBeUndefined();
    expect(compileArgumentConstraints({}, 'g')).toBeUndefined();
  });

  it('anchor patterns: the whole value must match', () => {
    const check = compileArgumentConstraints({ path: c({ pattern: '/srv/[a-z]+' }) }, 'g')!;
    expect(check({ path: '/srv/data' })).toBeUndefined();
    expect(check({ path: '/srv/data/../../etc' })).toEqual({ argument: 'path', constraint: 'pattern' });
    expect(check({ path: 'x/srv/data' })).toEqual({ argument: 'path', constraint: 'pattern' });
    // A pattern cannot be checked on a number: fail closed.
    expect(check({ path: 7 })).toEqual({ argument: 'path', constraint: 'pattern' });
    expect(check({ path: `/srv/${'a'.repeat(MAX_PATTERN_INPUT_CHARS)}` })).toEqual({ argument: 'path', constraint: 'pattern' });
  });

  it('check enum, maxLength (in code points), minimum, maximum and required', () => {
    const check = compileArgumentConstraints(
      { mode: c({ enum: ['r', 'w', null] }), name: c({ maxLength: 3 }), n: c({ minimum: 1, maximum: 5 }), id: c({ required: true }) },
      'g',
    )!;
    expect(check({ id: 1, mode: null, name: '😀😀😀', n: 5 })).toBeUndefined();
    expect(check({ mode: 'r' })).toEqual({ argument: 'id', constraint: 'required' });
    expect(check({ id: 1, mode: 'x' })).toEqual({ argument: 'mode', constraint: 'enum' });
    expect(check({ id: 1, name: 'abcd' })).toEqual({ argument: 'name', constraint: 'maxLength' });
    expect(check({ id: 1, n: 0 })).toEqual({ argument: 'n', constraint: 'minimum' });
    expect(check({ id: 1, n: 6 })).toEqual({ argument: 'n', constraint: 'maximum' });
    expect(check({ id: 1, n: '3' })).toEqual({ argument: 'n', constraint: 'minimum' });
  });

  it('read own properties only, and refuse arguments that are not an object', () => {
    const check = compileArgumentConstraints({ toString: c({ required: true }) }, 'g')!;
    expect(check({})).toEqual({ argument: 'toString', constraint: 'required' });
    expect(check([1])).toEqual({ argument: 'arguments', constraint: 'arguments' });
    const optional = compileArgumentConstraints({ x: c({ maxLength: 1 }) }, 'g')!;
    expect(optional(undefined)).toBeUndefined();
  });
});

describe('pattern safety', () => {
  it.each(['(a+)+', '(\\w*)*', '(x+){2,}', '((ab)*c)+', '(a+){3}', '(a)\\1', '(?<n>a)\\k<n>', '(a', 'a)'])('refuses %s', (p) => {
    expect(() => assertSafePattern(p, 'g')).toThrow(/pattern/);
  });

  it.each(['/srv/[a-z]+', '(foo|bar)*', '(ab)+c', '[(+*]+', '\\(a+\\)+', '(a+)?b', '[a-z]{1,8}(-[a-z]{1,8})*'])('accepts %s', (p) => {
    expect(() => assertSafePattern(p, 'g')).not.toThrow();
  });

  it('reports an invalid regular expression as a config error', () => {
    expect(() => compilePattern('[a-', 'policy.roles.x.grants[0].arguments.p')).toThrow(/not a valid regular expression/);
  });
});
