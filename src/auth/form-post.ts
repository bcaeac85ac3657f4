/**
 * The browser form posts of the gateway's own pages (its authorization server's consent page,
 * the upstream connect page): a small urlencoded body, and a check that the browser itself
 * does not call the post cross-site (defence in depth beside each form's CSRF token).
 */
import type { IncomingMessage } from 'node:http';

/** A consent form is a handful of short fields; anything larger is not one. */
const MAX_FORM_BYTES = 8 * 1024;

/** The form's fields; undefined for another media type or an oversized body. */
export async function readForm(req: IncomingMessage): Promise<URLSearchParams | undefined> {
  if (!(req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) return undefined;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_FORM_BYTES) return undefined;
    chunks.push(chunk as Buffer);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

/**
 * Refuse a POST the browser marks as cross-site. Same origin is `base`'s (the public URL), or
 * the request's own host (a loopback gateway reached as localhost; the listener has already
 * checked the Host header against its allow-list).
 */
export function isSameOriginPost(req: IncomingMessage, base: string): boolean {
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin') return false;
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  if (origin === new URL(base).origin) return true;
  try {
    return new URL(origin).host === req.headers.host;
  } catch {
    return false;
  }
}
