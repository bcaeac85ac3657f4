/**
 * Secrets out of stored arguments. The audit row keeps what a tool was called with, but a
 * password, token or key an agent passed must never sit in the database in the clear: values
 * under secret-looking keys (and any extra keys the config names) become "[REDACTED]". The
 * arguments hash is taken before redaction, so two calls with different secrets still differ.
 */
const SECRET_KEY = /pass(word|phrase)?|secret|token|api[-_]?key|authorization|credential|private[-_]?key|cookie/i;

export const REDACTED = '[REDACTED]';

export function redactSecrets(value: unknown, extraKeys: ReadonlySet<string> = new Set()): unknown {
  if (Array.isArray(value)) return value.map((item) => redactSecrets(item, extraKeys));
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    out[key] = SECRET_KEY.test(key) || extraKeys.has(key.toLowerCase()) ? REDACTED : redactSecrets(item, extraKeys);
  }
  return out;
}
