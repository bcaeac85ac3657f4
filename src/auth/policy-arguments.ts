/**
 * Argument constraints of a grant (`arguments: { path: { pattern: '/srv/.*' } }`): compiled
 * once per snapshot into one check function per grant, run only for tools whose grant has
 * constraints. Every given check must hold; a check that cannot be made (a pattern on a
 * number, a value too long to test safely) fails closed.
 */
import type { ArgumentConstraint } from '../config/auth-schema.ts';
import { GatehouseError } from '../protocol/errors.ts';

export type ConstraintKind = 'required' | 'pattern' | 'enum' | 'maxLength' | 'minimum' | 'maximum' | 'arguments';

/** Which argument broke which constraint. Never carries the value or the pattern. */
export interface ArgumentViolation {
  readonly argument: string;
  readonly constraint: ConstraintKind;
}

/** Returns the first violation, or undefined when the arguments are within the grant. */
export type ArgumentCheck = (args: unknown) => ArgumentViolation | undefined;

/** Longest pattern accepted, and longest value a pattern is run against. */
const MAX_PATTERN_CHARS = 1_000;
export const MAX_PATTERN_INPUT_CHARS = 4_096;

/**
 * Refuse patterns that can backtrack catastrophically: nested unbounded quantifiers
 * (`(a+)+`, `(\w*)*`, `(x+){2,}`), and backreferences. Together with the input cap this bounds
 * the work of one check; alternation overlap (`(a|a)*`) is not detected, so keep patterns
 * simple. Throws CONFIG_INVALID: a snapshot with an unsafe pattern is refused at load.
 */
export function assertSafePattern(pattern: string, where: string): void {
  const fail = (why: string): never => {
    throw new GatehouseError('CONFIG_INVALID', `${where}: pattern ${JSON.stringify(pattern)} ${why}`);
  };
  if (pattern.length > MAX_PATTERN_CHARS) fail(`is longer than ${MAX_PATTERN_CHARS} characters`);
  // One frame per open group: whether it holds an unbounded quantifier.
  const frames: boolean[] = [false];
  const quantifierAt = (i: number): 'unbounded' | 'bounded' | undefined => {
    const c = pattern[i];
    if (c === '*' || c === '+') return 'unbounded';
    if (c === '?') return 'bounded';
    if (c === '{') {
      const m = /^\{(\d+)(,(\d*))?\}/.exec(pattern.slice(i));
      if (m === null) return undefined;
      return m[2] !== undefined && m[3] === '' ? 'unbounded' : 'bounded';
    }
    return undefined;
  };
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '\\') {
      const n = pattern[i + 1] ?? '';
      if (/[1-9]/.test(n) || (n === 'k' && pattern[i + 2] === '<')) fail('uses a backreference');
      i++;
    } else if (c === '[') {
      for (i++; i < pattern.length && pattern[i] !== ']'; i++) if (pattern[i] === '\\') i++;
    } else if (c === '(') {
      frames.push(false);
    } else if (c === ')') {
      const inner = frames.pop() ?? false;
      if (frames.length === 0) fail('has an unbalanced parenthesis');
      const q = quantifierAt(i + 1);
      if (inner && q !== undefined && q !== 'bounded') fail('nests unbounded quantifiers (catastrophic backtracking)');
      if (inner && pattern[i + 1] === '{') fail('repeats a group that holds an unbounded quantifier');
      if (inner || q === 'unbounded') frames[frames.length - 1] = true;
    } else if (quantifierAt(i) === 'unbounded') {
      frames[frames.length - 1] = true;
    }
  }
  if (frames.length !== 1) fail('has an unbalanced parenthesis');
}

/** Compile a pattern that must match the whole value (anchored), once. */
export function compilePattern(pattern: string, where: string): RegExp {
  assertSafePattern(pattern, where);
  try {
    return new RegExp(`^(?:${pattern})$`, 'u');
  } catch {
    // Patterns valid only without the `u` flag (`\-` outside a class) are still accepted.
    try {
      return new RegExp(`^(?:${pattern})$`);
    } catch (err) {
      throw new GatehouseError('CONFIG_INVALID', `${where}: pattern ${JSON.stringify(pattern)} is not a valid regular expression`, { cause: err });
    }
  }
}

type Primitive = string | number | boolean | null;

interface CompiledConstraint {
  readonly name: string;
  readonly required: boolean;
  readonly pattern: RegExp | undefined;
  readonly enumValues: ReadonlySet<Primitive> | undefined;
  readonly maxLength: number | undefined;
  readonly minimum: number | undefined;
  readonly maximum: number | undefined;
}

/** Length in code points (as JSON Schema counts), computed only when UTF-16 length is over. */
function exceedsLength(value: string, max: number): boolean {
  if (value.length <= max) return false;
  let count = 0;
  for (const _ of value) if (++count > max) return true;
  return false;
}

function violation(c: CompiledConstraint, value: unknown): ConstraintKind | undefined {
  if (c.enumValues !== undefined && !c.enumValues.has(value as Primitive)) return 'enum';
  if (c.pattern !== undefined) {
    if (typeof value !== 'string' || value.length > MAX_PATTERN_INPUT_CHARS || !c.pattern.test(value)) return 'pattern';
  }
  if (c.maxLength !== undefined && (typeof value !== 'string' || exceedsLength(value, c.maxLength))) return 'maxLength';
  if (c.minimum !== undefined && (typeof value !== 'number' || !(value >= c.minimum))) return 'minimum';
  if (c.maximum !== undefined && (typeof value !== 'number' || !(value <= c.maximum))) return 'maximum';
  return undefined;
}

/**
 * Compile a grant's `arguments` map; undefined when it has none, so unconstrained grants
 * cost nothing per call.
 */
export function compileArgumentConstraints(constraints: Readonly<Record<string, ArgumentConstraint>> | undefined, where: string): ArgumentCheck | undefined {
  if (constraints === undefined) return undefined;
  const compiled: CompiledConstraint[] = Object.entries(constraints).map(([name, c]) => ({
    name,
    required: c.required,
    pattern: c.pattern === undefined ? undefined : compilePattern(c.pattern, `${where}.arguments.${name}`),
    enumValues: c.enum === undefined ? undefined : new Set(c.enum),
    maxLength: c.maxLength,
    minimum: c.minimum,
    maximum: c.maximum,
  }));
  if (compiled.length === 0) return undefined;
  return (args) => {
    const present = args === undefined ? {} : args;
    if (typeof present !== 'object' || present === null || Array.isArray(present)) return { argument: 'arguments', constraint: 'arguments' };
    for (const c of compiled) {
      // Own properties only: `toString` or `__proto__` must not be found on the prototype.
      if (!Object.hasOwn(present, c.name)) {
        if (c.required) return { argument: c.name, constraint: 'required' };
        continue;
      }
      const kind = violation(c, (present as Record<string, unknown>)[c.name]);
      if (kind !== undefined) return { argument: c.name, constraint: kind };
    }
    return undefined;
  };
}
