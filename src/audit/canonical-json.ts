/**
 * Canonical JSON for the audit trail: the arguments hash and the row hashes must not depend
 * on key order or whitespace. For I-JSON input this is exactly RFC 8785 (JCS): keys sorted by
 * UTF-16 code units, no whitespace, ECMAScript number and string serialization (a test checks
 * it against the `canonicalize` library). RFC 8785 refuses lone surrogates, but MCP arguments
 * may carry them (JSON allows `\ud800`), and a call must still be audited: they serialize as
 * their `\uD800`-style escape, which no other input produces, so the hash stays unambiguous.
 */
import { createHash } from 'node:crypto';

export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    // undefined (absent) has no JSON form; callers pass only parsed JSON or row fields.
    return value === undefined ? 'null' : JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map((item) => canonicalJson(item)).join(',')}]`;
  const keys = Object.keys(value).sort();
  const parts: string[] = [];
  for (const key of keys) {
    const item = (value as Record<string, unknown>)[key];
    if (item === undefined) continue;
    parts.push(`${JSON.stringify(key)}:${canonicalJson(item)}`);
  }
  return `{${parts.join(',')}}`;
}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** SHA-256 of the canonical JSON of a call's arguments; null when it had none. */
export function argumentsHash(args: unknown): string | null {
  return args === undefined ? null : sha256Hex(canonicalJson(args));
}
