/**
 * Upstream answers without re-serialization. A `tools/call` result is usually the biggest
 * thing the gateway carries and the one thing it never needs to look into: parsing it into
 * objects only to stringify it again cost most of the CPU of a 100 KiB call. So an upstream
 * message is validated in one pass that builds nothing (`scanEnvelope`), the envelope members
 * are parsed on their own, and the `result` stays text behind a lazy object
 * (`lazyJsonObject`) that parses a member only when someone reads it. `stringifyMessage`
 * splices the untouched text back in when the answer is written downstream.
 *
 * The lazy object is a Proxy so that every consumer keeps seeing a plain `JsonObject`: a
 * stage that reads `result.resultType` parses that one member, one that spreads or mutates
 * the result gets a fully parsed object and the raw text is dropped. Correct by default, fast
 * where nobody looks.
 */
import { GatehouseError } from './errors.ts';

type JsonObject = { [key: string]: unknown };

/** Where one JSON value sits in a text: `[start, end)`. */
export interface JsonSpan {
  start: number;
  end: number;
}

/** The members of a scanned object, in text order, by decoded key (the last duplicate wins, as in JSON.parse). */
export type MemberSpans = Map<string, JsonSpan>;

/** A top-level object scanned without building it. */
export interface ScannedEnvelope {
  /** The text the spans point into; line breaks outside strings are already spaces. */
  text: string;
  members: MemberSpans;
  /** Members of the member named `inner` (see scanEnvelope) when its value is an object. */
  inner: MemberSpans | undefined;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
const CONTROL = /[\u0000-\u001f]/g;
const LINE_BREAKS = /[\r\n]/g;

function invalid(): GatehouseError {
  return new GatehouseError('PARSE_ERROR', 'Body is not valid JSON');
}

function tooDeep(maxDepth: number): GatehouseError {
  return new GatehouseError('ARGUMENTS_TOO_DEEP', `JSON nesting exceeds ${maxDepth} levels`);
}

/**
 * A JSON scanner over one text that validates the grammar without building values. String
 * contents are skipped with indexOf (to the next quote and the next backslash, both cached so
 * the scan stays linear), not walked character by character in JS: that walk cost 337 µs on a
 * 100 KiB result, the skip about 1 µs.
 *
 * What it does not do unless `strict`: look for raw control characters inside strings
 * (invalid JSON, but harmless to the gateway). `strict` is used when the text holds a line
 * break, the one control character that matters here: as whitespace it must become a space
 * (SSE `data:` lines and stdio frames are single lines), inside a string it is refused.
 */
class Scanner {
  readonly text: string;
  private readonly maxDepth: number;
  private readonly strict: boolean;
  /** Cached positions of the next quote, backslash and control character (text.length: none). */
  private quote = -1;
  private backslash = -1;
  private control = -1;

  constructor(text: string, maxDepth: number, strict: boolean) {
    this.text = text;
    this.maxDepth = maxDepth;
    this.strict = strict;
  }

  ws(i: number): number {
    const text = this.text;
    for (;;) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) i++;
      else return i;
    }
  }

  private quoteFrom(i: number): number {
    if (this.quote < i) {
      const at = this.text.indexOf('"', i);
      this.quote = at === -1 ? this.text.length : at;
    }
    return this.quote;
  }

  private backslashFrom(i: number): number {
    if (this.backslash < i) {
      const at = this.text.indexOf('\\', i);
      this.backslash = at === -1 ? this.text.length : at;
    }
    return this.backslash;
  }

  private controlFrom(i: number): number {
    if (this.control < i) {
      CONTROL.lastIndex = i;
      const at = CONTROL.exec(this.text)?.index;
      this.control = at === undefined ? this.text.length : at;
    }
    return this.control;
  }

  /** `i` at an opening quote; returns the index after the closing one. */
  string(i: number): number {
    const text = this.text;
    let j = i + 1;
    for (;;) {
      const q = this.quoteFrom(j);
      if (q === text.length) throw invalid();
      const b = this.backslashFrom(j);
      if (this.strict && this.controlFrom(j) < Math.min(b, q)) throw invalid();
      if (b > q) return q + 1;
      const e = text.charCodeAt(b + 1);
      if (e === 0x75 /* u */) {
        for (let k = b + 2; k < b + 6; k++) if (!isHex(text.charCodeAt(k))) throw invalid();
        j = b + 6;
      } else if (e === QUOTE || e === BACKSLASH || e === 0x2f || e === 0x62 || e === 0x66 || e === 0x6e || e === 0x72 || e === 0x74) {
        j = b + 2;
      } else {
        throw invalid();
      }
    }
  }

  /** Any value at `i` (no leading whitespace), inside containers `depth` deep; returns the index after it. */
  value(i: number, depth: number): number {
    const text = this.text;
    const c = text.charCodeAt(i);
    if (c === QUOTE) return this.string(i);
    if (c === 0x7b /* { */) return this.object(i, depth + 1, undefined);
    if (c === 0x5b /* [ */) return this.array(i, depth + 1);
    if (c === 0x74 /* t */ && text.startsWith('true', i)) return i + 4;
    if (c === 0x66 /* f */ && text.startsWith('false', i)) return i + 5;
    if (c === 0x6e /* n */ && text.startsWith('null', i)) return i + 4;
    NUMBER.lastIndex = i;
    if (NUMBER.test(text) && NUMBER.lastIndex > i) return NUMBER.lastIndex;
    throw invalid();
  }

  /**
   * An object at `i`, opened at `depth`. With `record`, each member's value span goes to
   * `record.members`; the object-valued member named `record.inner` is recorded one level
   * further into `record.innerMembers` (undefined when that member is not an object).
   */
  object(i: number, depth: number, record: { members: MemberSpans; inner?: string | undefined; innerMembers?: MemberSpans | undefined } | undefined): number {
    if (depth > this.maxDepth) throw tooDeep(this.maxDepth);
    const text = this.text;
    i = this.ws(i + 1);
    if (text.charCodeAt(i) === 0x7d /* } */) return i + 1;
    for (;;) {
      if (text.charCodeAt(i) !== QUOTE) throw invalid();
      const keyStart = i;
      i = this.string(i);
      const keyEnd = i;
      i = this.ws(i);
      if (text.charCodeAt(i) !== 0x3a /* : */) throw invalid();
      i = this.ws(i + 1);
      const start = i;
      if (record === undefined) {
        i = this.value(i, depth);
      } else {
        const key = decodeKey(text, keyStart, keyEnd);
        if (key === record.inner) {
          // The last duplicate wins, as in JSON.parse.
          const inner = text.charCodeAt(i) === 0x7b ? { members: new Map<string, JsonSpan>() } : undefined;
          i = inner === undefined ? this.value(i, depth) : this.object(i, depth + 1, inner);
          record.innerMembers = inner?.members;
        } else {
          i = this.value(i, depth);
        }
        record.members.set(key, { start, end: i });
      }
      i = this.ws(i);
      const c = text.charCodeAt(i);
      if (c === 0x7d) return i + 1;
      if (c !== 0x2c /* , */) throw invalid();
      i = this.ws(i + 1);
    }
  }

  array(i: number, depth: number): number {
    if (depth > this.maxDepth) throw tooDeep(this.maxDepth);
    const text = this.text;
    i = this.ws(i + 1);
    if (text.charCodeAt(i) === 0x5d /* ] */) return i + 1;
    for (;;) {
      i = this.ws(this.value(i, depth));
      const c = text.charCodeAt(i);
      if (c === 0x5d) return i + 1;
      if (c !== 0x2c) throw invalid();
      i = this.ws(i + 1);
    }
  }
}

function isHex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
}

function decodeKey(text: string, start: number, end: number): string {
  const raw = text.slice(start + 1, end - 1);
  return raw.includes('\\') ? (JSON.parse(text.slice(start, end)) as string) : raw;
}

/**
 * Validate `text` as JSON and, when it is an object, return where its members are, plus the
 * members of its member `inner` (the envelope's `result`). Returns undefined for valid JSON
 * that is not an object (a batch array, a bare value). Throws PARSE_ERROR for invalid JSON and
 * ARGUMENTS_TOO_DEEP past `maxDepth`, counting like JSON-RPC parsing does (the envelope is 1).
 */
export function scanEnvelope(text: string, maxDepth: number, inner?: string): ScannedEnvelope | undefined {
  const lineBreak = text.includes('\n') || text.includes('\r');
  const scanner = new Scanner(text, maxDepth, lineBreak);
  const start = scanner.ws(0);
  const record = text.charCodeAt(start) === 0x7b ? { members: new Map<string, JsonSpan>(), inner, innerMembers: undefined } : undefined;
  const end = record === undefined ? scanner.value(start, 0) : scanner.object(start, 1, record);
  if (scanner.ws(end) !== text.length) throw invalid();
  if (record === undefined) return undefined;
  // Valid JSON holds line breaks only between tokens (strict mode refused any other): as
  // spaces they mean the same, keep every offset, and let the text travel as one line.
  const flat = lineBreak ? text.replace(LINE_BREAKS, ' ') : text;
  return { text: flat, members: record.members, inner: record.innerMembers };
}

/** Parse one member's value out of the text it was scanned from. */
export function parseSpan(text: string, span: JsonSpan): unknown {
  return JSON.parse(text.slice(span.start, span.end)) as unknown;
}

// ---- the lazy object ----

/** Proxy → its handler, for rawJsonOf. */
const lazyHandlers = new WeakMap<object, LazyMembers>();

class LazyMembers implements ProxyHandler<JsonObject> {
  /** The text the spans point into, and the object's own span in it. */
  readonly source: string;
  readonly span: JsonSpan;
  readonly members: MemberSpans;
  private readonly parsed = new Map<string, unknown>();
  private materialized = false;
  /** False once the object may differ from its text: materialized, mutated, or a nested object handed out. */
  clean = true;

  constructor(source: string, span: JsonSpan, members: MemberSpans) {
    this.source = source;
    this.span = span;
    this.members = members;
  }

  get rawText(): string | undefined {
    return this.clean ? this.source.slice(this.span.start, this.span.end) : undefined;
  }

  member(key: string): unknown {
    if (this.parsed.has(key)) return this.parsed.get(key);
    let value: unknown;
    try {
      value = parseSpan(this.source, this.members.get(key)!);
    } catch (err) {
      // The scan does not look for raw control characters inside strings; JSON.parse does.
      throw new GatehouseError('UPSTREAM_PROTOCOL_ERROR', 'upstream sent a result that is not valid JSON', { cause: err });
    }
    // A nested object or array can be changed without any trap seeing it.
    if (typeof value === 'object' && value !== null) this.clean = false;
    this.parsed.set(key, value);
    return value;
  }

  /** Build every member onto the target; from here on the target is the truth. */
  materialize(target: JsonObject): void {
    if (this.materialized) return;
    this.materialized = true;
    this.clean = false;
    for (const key of this.members.keys()) {
      // defineProperty, not assignment: a `__proto__` member is an own property, as in JSON.parse.
      Object.defineProperty(target, key, { value: this.member(key), writable: true, enumerable: true, configurable: true });
    }
  }

  get(target: JsonObject, key: string | symbol, receiver: unknown): unknown {
    if (!this.materialized && typeof key === 'string' && this.members.has(key)) return this.member(key);
    return Reflect.get(target, key, receiver);
  }

  has(target: JsonObject, key: string | symbol): boolean {
    if (!this.materialized && typeof key === 'string' && this.members.has(key)) return true;
    return Reflect.has(target, key);
  }

  ownKeys(target: JsonObject): ArrayLike<string | symbol> {
    this.materialize(target);
    return Reflect.ownKeys(target);
  }

  getOwnPropertyDescriptor(target: JsonObject, key: string | symbol): PropertyDescriptor | undefined {
    this.materialize(target);
    return Reflect.getOwnPropertyDescriptor(target, key);
  }

  set(target: JsonObject, key: string | symbol, value: unknown, receiver: unknown): boolean {
    this.materialize(target);
    return Reflect.set(target, key, value, receiver);
  }

  defineProperty(target: JsonObject, key: string | symbol, descriptor: PropertyDescriptor): boolean {
    this.materialize(target);
    return Reflect.defineProperty(target, key, descriptor);
  }

  deleteProperty(target: JsonObject, key: string | symbol): boolean {
    this.materialize(target);
    return Reflect.deleteProperty(target, key);
  }

  setPrototypeOf(target: JsonObject, proto: object | null): boolean {
    this.materialize(target);
    return Reflect.setPrototypeOf(target, proto);
  }

  preventExtensions(target: JsonObject): boolean {
    this.materialize(target);
    return Reflect.preventExtensions(target);
  }
}

/**
 * A JSON object that stays text until read: `span` of `source` is an object whose members
 * (from a scan) are at `members`. Reading a member parses that member only. For upstream
 * text: a member that fails to parse throws UPSTREAM_PROTOCOL_ERROR.
 */
export function lazyJsonObject(source: string, span: JsonSpan, members: MemberSpans): JsonObject {
  const handler = new LazyMembers(source, span, members);
  const proxy = new Proxy<JsonObject>({}, handler);
  lazyHandlers.set(proxy, handler);
  return proxy;
}

/** The original text of a lazy object nobody has changed (or could have); undefined otherwise. */
export function rawJsonOf(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  return lazyHandlers.get(value)?.rawText;
}

/**
 * Add members to an untouched lazy object by splicing text, keeping it lazy; undefined when
 * `value` is not one or already has one of the keys (the caller then builds a plain object).
 */
export function withAddedMembers(value: unknown, added: JsonObject): JsonObject | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const handler = lazyHandlers.get(value);
  if (handler === undefined || !handler.clean) return undefined;
  const { source, span, members } = handler;
  const keys = Object.keys(added).filter((k) => added[k] !== undefined);
  if (keys.some((k) => members.has(k))) return undefined;
  // Everything before the closing brace (whitespace included) stays where it was.
  let text = source.slice(span.start, span.end - 1);
  const shifted: MemberSpans = new Map();
  for (const [key, s] of members) shifted.set(key, { start: s.start - span.start, end: s.end - span.start });
  for (const key of keys) {
    text += `${shifted.size === 0 ? '' : ','}${JSON.stringify(key)}:`;
    const start = text.length;
    text += JSON.stringify(added[key]);
    shifted.set(key, { start, end: text.length });
  }
  text += '}';
  return lazyJsonObject(text, { start: 0, end: text.length }, shifted);
}

/**
 * JSON.stringify for a message whose top-level members may be lazy objects: those go out as
 * their original text. Same output as JSON.stringify for plain values (undefined members are
 * left out); used wherever a message is written downstream.
 */
export function stringifyMessage(message: object): string {
  if (typeof (message as { toJSON?: unknown }).toJSON === 'function' || rawJsonOf(message) !== undefined) {
    return rawJsonOf(message) ?? JSON.stringify(message);
  }
  let raw: string | undefined;
  let out = '{';
  let first = true;
  for (const key of Object.keys(message)) {
    const value = (message as JsonObject)[key];
    if (value === undefined || typeof value === 'function' || typeof value === 'symbol') continue;
    raw = rawJsonOf(value);
    out += `${first ? '' : ','}${JSON.stringify(key)}:${raw ?? JSON.stringify(value)}`;
    first = false;
  }
  return `${out}}`;
}
