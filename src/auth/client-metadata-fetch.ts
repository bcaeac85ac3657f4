/**
 * Fetching a Client ID Metadata Document (or any URL a client names) without becoming an SSRF
 * proxy. The URL comes from an unauthenticated party, so every hop is checked:
 *
 * - https only; http only for 127.0.0.1 / ::1 when `allowLoopback` (tests).
 * - The host is resolved here and EVERY address must be public: loopback, RFC 1918, link-local,
 *   CGNAT, ULA, multicast, unspecified, documentation/benchmark ranges, and IPv6 forms that
 *   embed such an IPv4 address (mapped, compatible, NAT64, 6to4) are refused.
 * - The connection goes to the address that was checked (a fixed `lookup` on the socket): no
 *   second DNS query the attacker's resolver could answer differently (DNS rebinding).
 * - Redirects are never followed by the HTTP client; each Location is checked like the first
 *   URL, at most MAX_REDIRECTS times.
 * - A size limit on the body, one time limit over all hops, a JSON media type.
 */
import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP, type LookupFunction } from 'node:net';
import { Agent, request } from 'undici';

export const METADATA_MAX_BYTES = 5 * 1024;
export const METADATA_TIMEOUT_MS = 5_000;
export const MAX_REDIRECTS = 3;

export type MetadataFetchFailure =
  | 'bad_url'
  | 'scheme_not_allowed'
  | 'address_not_allowed'
  | 'dns_failed'
  | 'too_many_redirects'
  | 'http_status'
  | 'not_json'
  | 'too_large'
  | 'timeout'
  | 'network'
  | 'client_id_mismatch';

/** Why a fetch was refused; the message names the rule, never response content. */
export class MetadataFetchError extends Error {
  constructor(
    readonly reason: MetadataFetchFailure,
    message: string,
  ) {
    super(message);
    this.name = 'MetadataFetchError';
  }
}

export interface GuardedFetchOptions {
  /** Allow http and the loopback addresses 127.0.0.1 and ::1 (tests only; other private ranges stay refused). */
  allowLoopback?: boolean;
  /**
   * With `allowLoopback`, also admit the name `localhost` (resolved here, every address must be
   * 127.0.0.1 or ::1). Off by default: the CIMD fetcher only ever admitted IP literals.
   */
  allowLocalhostName?: boolean;
  maxBytes?: number;
  timeoutMs?: number;
  /** Extra CA certificates trusted for https (tests: a self-signed loopback server). */
  ca?: string | Buffer | undefined;
  /** DNS resolution (tests inject one); default: the system resolver, every address. */
  resolve?: (hostname: string) => Promise<string[]>;
}

export interface FetchedDocument {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
  /** The URL finally fetched (after checked redirects). */
  url: string;
}

async function systemResolve(hostname: string): Promise<string[]> {
  const results = await dnsLookup(hostname, { all: true, verbatim: true });
  return results.map((r) => r.address);
}

/** IPv4 ranges never fetched: [network, prefix length]. */
const FORBIDDEN_V4: readonly [string, number][] = [
  ['0.0.0.0', 8], // "this network", unspecified
  ['10.0.0.0', 8], // RFC 1918
  ['100.64.0.0', 10], // CGNAT (RFC 6598)
  ['127.0.0.0', 8], // loopback
  ['169.254.0.0', 16], // link-local (cloud metadata endpoints live here)
  ['172.16.0.0', 12], // RFC 1918
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.0.2.0', 24], // documentation
  ['192.88.99.0', 24], // 6to4 relay anycast
  ['192.168.0.0', 16], // RFC 1918
  ['198.18.0.0', 15], // benchmarking
  ['198.51.100.0', 24], // documentation
  ['203.0.113.0', 24], // documentation
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, broadcast
];

function v4ToInt(address: string): number {
  return address.split('.').reduce((acc, octet) => acc * 256 + Number(octet), 0);
}

function inV4Range(value: number, network: string, prefix: number): boolean {
  const size = 2 ** (32 - prefix);
  const base = v4ToInt(network);
  return value >= base && value < base + size;
}

/** The eight 16-bit groups of an IPv6 address (a dotted IPv4 tail is folded in). */
function v6Groups(address: string): number[] | undefined {
  let text = address.toLowerCase();
  const zone = text.indexOf('%');
  if (zone !== -1) text = text.slice(0, zone);
  const tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (tail !== null) {
    const v4 = v4ToInt(tail[1]!);
    text = `${text.slice(0, tail.index)}${(v4 >>> 16).toString(16)}:${(v4 & 0xffff).toString(16)}`;
  }
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const head = halves[0] === '' ? [] : halves[0]!.split(':');
  const rest = halves.length === 2 ? (halves[1] === '' ? [] : halves[1]!.split(':')) : [];
  const fill = halves.length === 2 ? 8 - head.length - rest.length : 0;
  const groups = [...head, ...Array<string>(Math.max(0, fill)).fill('0'), ...rest].map((g) => parseInt(g, 16));
  return groups.length === 8 && groups.every((g) => Number.isInteger(g) && g >= 0 && g <= 0xffff) ? groups : undefined;
}

function embeddedV4(groups: number[], at: number): string {
  const hi = groups[at]!;
  const lo = groups[at + 1]!;
  return `${hi >>> 8}.${hi & 0xff}.${lo >>> 8}.${lo & 0xff}`;
}

/** Is `address` (an IP literal) one the fetcher must never connect to? */
export function isForbiddenAddress(address: string, allowLoopback = false): boolean {
  const family = isIP(address);
  if (family === 4) {
    if (allowLoopback && address === '127.0.0.1') return false;
    const value = v4ToInt(address);
    return FORBIDDEN_V4.some(([network, prefix]) => inV4Range(value, network, prefix));
  }
  if (family !== 6) return true;
  const g = v6Groups(address);
  if (g === undefined) return true;
  const zeros = (from: number, to: number): boolean => g.slice(from, to).every((x) => x === 0);
  if (zeros(0, 7) && g[7] === 1) return !allowLoopback; // ::1
  if (zeros(0, 8)) return true; // ::
  if (zeros(0, 5) && g[5] === 0xffff) return isForbiddenAddress(embeddedV4(g, 6)); // ::ffff:a.b.c.d (mapped)
  if (zeros(0, 6)) return true; // ::a.b.c.d (deprecated IPv4-compatible)
  if (g[0] === 0x64 && g[1] === 0xff9b) return true; // NAT64 (64:ff9b::/96, 64:ff9b:1::/48): reaches anything
  if (g[0] === 0x2002) return isForbiddenAddress(embeddedV4(g, 1)); // 6to4
  if (g[0] === 0x2001 && g[1] === 0x0db8) return true; // documentation
  if (g[0] === 0x2001 && g[1] === 0) return true; // Teredo: tunnels to an embedded IPv4
  const first = g[0]!;
  if ((first & 0xfe00) === 0xfc00) return true; // ULA fc00::/7
  if ((first & 0xffc0) === 0xfe80) return true; // link-local fe80::/10
  if ((first & 0xffc0) === 0xfec0) return true; // site-local (deprecated) fec0::/10
  if ((first & 0xff00) === 0xff00) return true; // multicast
  return false;
}

function isLoopbackName(hostname: string, options: GuardedFetchOptions): boolean {
  return hostname === '127.0.0.1' || hostname === '[::1]' || (options.allowLocalhostName === true && hostname === 'localhost');
}

/**
 * Check one URL and resolve its host (one DNS query); returns the address to connect to, which
 * the caller pins with `fixedLookup`. Exported for the upstream OAuth client's discovery fetch.
 */
export async function checkTarget(url: URL, options: GuardedFetchOptions): Promise<{ address: string; family: 4 | 6 }> {
  if (url.username !== '' || url.password !== '') throw new MetadataFetchError('bad_url', 'URLs with credentials are not fetched');
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && options.allowLoopback === true && isLoopbackName(url.hostname, options))) {
    throw new MetadataFetchError('scheme_not_allowed', `only https URLs are fetched (got ${url.protocol})`);
  }
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  let addresses: string[];
  if (isIP(host) !== 0) {
    addresses = [host];
  } else {
    try {
      addresses = await (options.resolve ?? systemResolve)(host);
    } catch {
      throw new MetadataFetchError('dns_failed', `the host ${host} did not resolve`);
    }
  }
  if (addresses.length === 0) throw new MetadataFetchError('dns_failed', `the host ${host} did not resolve`);
  // Strict: one forbidden address refuses the host, so a resolver cannot mix a public decoy in.
  for (const address of addresses) {
    if (isForbiddenAddress(address, options.allowLoopback === true)) throw new MetadataFetchError('address_not_allowed', `the host ${host} resolves to a non-public address`);
  }
  const address = addresses[0]!;
  return { address, family: isIP(address) === 6 ? 6 : 4 };
}

/** A socket `lookup` that answers only the address `checkTarget` approved (no second DNS query). */
export function fixedLookup(address: string, family: 4 | 6): LookupFunction {
  // Called by net/tls.connect instead of DNS: answers only the address checkTarget approved.
  return ((_hostname: string, opts: { all?: boolean }, callback: (...args: unknown[]) => void) => {
    if (opts?.all === true) callback(null, [{ address, family }]);
    else callback(null, address, family);
  }) as LookupFunction;
}

function headerRecord(headers: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) if (value !== undefined) out[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : value;
  return out;
}

function isJsonType(contentType: string | undefined): boolean {
  const media = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  return media === 'application/json' || /^application\/[a-z0-9.+-]+\+json$/.test(media);
}

/**
 * GET `target` under every rule above; resolves with a 2xx JSON response's body, throws
 * MetadataFetchError otherwise.
 */
export async function guardedFetch(target: string, options: GuardedFetchOptions = {}): Promise<FetchedDocument> {
  const maxBytes = options.maxBytes ?? METADATA_MAX_BYTES;
  const signal = AbortSignal.timeout(options.timeoutMs ?? METADATA_TIMEOUT_MS);
  let url: URL;
  try {
    url = new URL(target);
  } catch {
    throw new MetadataFetchError('bad_url', 'not an absolute URL');
  }
  for (let hop = 0; ; hop += 1) {
    const { address, family } = await checkTarget(url, options);
    const agent = new Agent({ connect: { lookup: fixedLookup(address, family), ...(options.ca === undefined ? {} : { ca: options.ca }) }, connections: 1, pipelining: 0 });
    try {
      const response = await request(url, {
        method: 'GET',
        dispatcher: agent,
        signal,
        headers: { accept: 'application/json', 'user-agent': 'gatehouse' },
      }).catch((err: unknown) => {
        if (signal.aborted) throw new MetadataFetchError('timeout', 'the fetch took too long');
        throw new MetadataFetchError('network', `the fetch failed (${err instanceof Error ? (err as NodeJS.ErrnoException).code ?? err.name : 'error'})`);
      });
      const headers = headerRecord(response.headers);
      if (response.statusCode >= 300 && response.statusCode < 400 && headers['location'] !== undefined) {
        await response.body.dump();
        if (hop >= MAX_REDIRECTS) throw new MetadataFetchError('too_many_redirects', `more than ${MAX_REDIRECTS} redirects`);
        try {
          url = new URL(headers['location'], url);
        } catch {
          throw new MetadataFetchError('bad_url', 'a redirect named an invalid URL');
        }
        continue;
      }
      if (response.statusCode < 200 || response.statusCode >= 300) {
        await response.body.dump();
        throw new MetadataFetchError('http_status', `unexpected HTTP status ${response.statusCode}`);
      }
      if (!isJsonType(headers['content-type'])) {
        await response.body.dump();
        throw new MetadataFetchError('not_json', 'the response is not JSON (content-type)');
      }
      const declared = Number(headers['content-length']);
      if (Number.isFinite(declared) && declared > maxBytes) {
        await response.body.dump();
        throw new MetadataFetchError('too_large', `the response is larger than ${maxBytes} bytes`);
      }
      const chunks: Buffer[] = [];
      let size = 0;
      try {
        for await (const chunk of response.body) {
          size += (chunk as Buffer).length;
          if (size > maxBytes) throw new MetadataFetchError('too_large', `the response is larger than ${maxBytes} bytes`);
          chunks.push(chunk as Buffer);
        }
      } catch (err) {
        response.body.destroy();
        if (err instanceof MetadataFetchError) throw err;
        if (signal.aborted) throw new MetadataFetchError('timeout', 'the fetch took too long');
        throw new MetadataFetchError('network', 'the response body failed');
      }
      return { status: response.statusCode, headers, body: Buffer.concat(chunks), url: url.href };
    } finally {
      void agent.close().catch(() => {});
    }
  }
}

/**
 * Fetch a Client ID Metadata Document: a JSON object whose `client_id` equals the URL it was
 * fetched from (the original URL, whatever redirects happened).
 */
export async function fetchClientMetadata(clientId: string, options: GuardedFetchOptions = {}): Promise<Record<string, unknown>> {
  const document = await guardedFetch(clientId, options);
  let parsed: unknown;
  try {
    parsed = JSON.parse(document.body.toString('utf8'));
  } catch {
    throw new MetadataFetchError('not_json', 'the document is not valid JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new MetadataFetchError('not_json', 'the document is not a JSON object');
  const metadata = parsed as Record<string, unknown>;
  if (metadata['client_id'] !== clientId) throw new MetadataFetchError('client_id_mismatch', 'the document client_id does not equal its URL');
  return metadata;
}

/**
 * oidc-provider's `fetch` option: the same guarded GET, answered as a WHATWG Response (the
 * provider reads status, headers and body). Its own dispatcher and redirect settings are
 * ignored: ours are stricter. Used for CIMD and any other URL oidc-provider fetches.
 */
export function providerFetch(options: GuardedFetchOptions): (url: string | URL, init?: { method?: string }) => Promise<Response> {
  return async (url, init) => {
    if (init?.method !== undefined && init.method.toUpperCase() !== 'GET') throw new MetadataFetchError('bad_url', 'only GET requests are made');
    const document = await guardedFetch(String(url), options);
    return new Response(new Uint8Array(document.body), { status: document.status, headers: document.headers });
  };
}
