/**
 * HTTP-level checks shared by every downstream endpoint: DNS-rebinding protection (Host and
 * Origin), media types and bounded body reading. Each failure is a typed GatehouseError that
 * answers as bare HTTP.
 */
import type { IncomingMessage } from 'node:http';
import { GatehouseError } from '../protocol/errors.ts';

export interface OriginPolicy {
  hosts: ReadonlySet<string>;
  origins: ReadonlySet<string>;
}

/** Loopback names for the listener port, plus what config adds (normalization adds `auth.publicUrl`'s). */
export function buildOriginPolicy(port: number, extraHosts: readonly string[], extraOrigins: readonly string[], secure = false): OriginPolicy {
  const names = ['127.0.0.1', 'localhost', '[::1]'];
  const scheme = secure ? 'https' : 'http';
  const hosts = new Set<string>([...names.map((n) => `${n}:${port}`), ...extraHosts.map((h) => h.toLowerCase())]);
  const origins = new Set<string>([...names.map((n) => `${scheme}://${n}:${port}`), ...extraOrigins.map((o) => o.toLowerCase())]);
  return { hosts, origins };
}

/** The Host half of checkOrigin, for routes that browsers of other origins may call (metadata, OAuth). */
export function checkHost(req: IncomingMessage, policy: OriginPolicy): void {
  const host = req.headers.host?.toLowerCase();
  if (host === undefined || !policy.hosts.has(host)) throw new GatehouseError('FORBIDDEN_ORIGIN', 'Host not allowed');
}

/**
 * 2025-11-25 transports "Security Warning": validate Origin on every request, 403 when it is
 * present and not allowed. The Host check defeats DNS rebinding for clients that send no
 * Origin (a rebinding page's requests carry the attacker's host name).
 */
export function checkOrigin(req: IncomingMessage, policy: OriginPolicy): void {
  checkHost(req, policy);
  const origin = req.headers.origin;
  if (origin !== undefined && origin !== 'null' && !policy.origins.has(origin.toLowerCase())) {
    throw new GatehouseError('FORBIDDEN_ORIGIN', 'Origin not allowed');
  }
  if (origin === 'null') throw new GatehouseError('FORBIDDEN_ORIGIN', 'Origin not allowed');
}

export function requireJsonContentType(req: IncomingMessage): void {
  const type = req.headers['content-type']?.split(';')[0]?.trim().toLowerCase();
  if (type !== 'application/json') throw new GatehouseError('UNSUPPORTED_MEDIA_TYPE', 'Content-Type must be application/json');
}

/** The Accept header lists each media type (strict reading: a bare wildcard does not). */
export function accepts(req: IncomingMessage, ...types: string[]): boolean {
  const accept = req.headers.accept?.toLowerCase() ?? '';
  const listed = accept.split(',').map((part) => part.split(';')[0]!.trim());
  return types.every((t) => listed.includes(t));
}

/** Read the body, refusing more than `limit` bytes without buffering the excess. */
export function readBody(req: IncomingMessage, limit: number): Promise<string> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    req.resume();
    return Promise.reject(new GatehouseError('BODY_TOO_LARGE', `Body exceeds ${limit} bytes`));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on('data', (chunk: Buffer) => {
      if (failed) return;
      size += chunk.length;
      if (size > limit) {
        failed = true;
        chunks.length = 0;
        reject(new GatehouseError('BODY_TOO_LARGE', `Body exceeds ${limit} bytes`));
        // Keep draining so the 413 can still be written on this connection.
        req.resume();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (!failed) resolve(chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks).toString('utf8'));
    });
    req.on('error', (err) => {
      if (!failed) reject(new GatehouseError('INVALID_REQUEST', 'request body could not be read', { cause: err }));
    });
  });
}
