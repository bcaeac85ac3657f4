/**
 * Text as both databases can hold it, exactly. PostgreSQL `text` refuses U+0000 outright, and
 * both drivers encode strings as UTF-8, which turns a lone surrogate into U+FFFD. Agents control
 * tool names, ids and arguments, so such strings do reach the audit trail: refused, one row
 * would fail a whole group commit; altered, a row would no longer match its hash.
 *
 * So every text value is stored through this codec: U+0000, lone surrogates and the escape
 * character U+E000 (private use) itself become U+E000 followed by four lowercase hex digits of
 * the code unit. Escaping the escape character keeps decoding unambiguous; strings without any
 * of the three (practically all of them) are stored unchanged and stay readable in SQL.
 */

const ESCAPE = '\uE000';
// Without the `u` flag the pattern sees UTF-16 code units, which is what "lone" is about.
const NEEDS_ESCAPE = /[\u0000\uE000]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
const ESCAPED = /\uE000([0-9a-f]{4})/g;

/** The stored form of `value`; injective, so equality filters can compare stored forms. */
export function encodeText(value: string): string {
  return value.replace(NEEDS_ESCAPE, (unit) => ESCAPE + unit.charCodeAt(0).toString(16).padStart(4, '0'));
}

/** The original string from its stored form. */
export function decodeText(stored: string): string {
  if (!stored.includes(ESCAPE)) return stored;
  return stored.replace(ESCAPED, (_match, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)));
}

export function encodeNullableText(value: string | null): string | null {
  return value === null ? null : encodeText(value);
}

export function decodeNullableText(stored: string | null): string | null {
  return stored === null ? null : decodeText(stored);
}
