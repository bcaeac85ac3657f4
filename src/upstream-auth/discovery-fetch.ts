/**
 * The only `fetch` the upstream OAuth client uses: protected-resource and authorization-server
 * metadata, client registration, token, revocation and IdP token-exchange requests. Every URL
 * it is handed comes, directly or not, from an upstream (a `WWW-Authenticate` header, a
 * metadata document), so each hop gets the SSRF rules of the CIMD fetcher
 * (auth/client-metadata-fetch.ts): https only, one DNS lookup whose every address must be
 * public (loopback, RFC 1918, link-local, CGNAT, mapped and embedded IPv4 forms refused), the
 * socket pinned to the checked address, redirects re-checked, a size limit on the body and one
 * time limit over all hops. `allowLoopback` (vault.allowLoopbackAuthorizationServers) admits
 * http and https to 127.0.0.1, ::1 and localhost: development and tests only.
 *
 * It answers WHATWG `Response`s (the SDK's FetchLike), non-2xx statuses included: the SDK
 * reads 404s to fall back between well-known URLs and OAuth error bodies from the token endpoint.
 */
import type { FetchLike } from '@modelcontextprotocol/client';
import { Agent, request } from 'undici';
import { checkTarget, fixedLookup, MetadataFetchError, MAX_REDIRECTS, type GuardedFetchOptions } from '../auth/client-metadata-fetch.ts';

/** Metadata documents of large identity providers run to tens of KB; nothing legitimate is near this. */
export const DISCOVERY_MAX_BYTES = 256 * 1024;
export const DISCOVERY_TIMEOUT_MS = 10_000;

export interface DiscoveryFetchOptions {
  /** vault.allowLoopbackAuthorizationServers: http/https to 127.0.0.1, ::1 and localhost. */
  allowLoopback: boolean;
  maxBytes?: number;
  timeoutMs?: number;
  /** Extra CA certificates trusted for https (tests: a self-signed loopback server). */
  ca?: string | Buffer;
  /** DNS resolution (tests inject one); default: the system resolver, every address. */
  resolve?: (hostname: string) => Promise<string[]>;
}

const NULL_BODY_STATUSES = new Set([101, 103, 204, 205, 304]);

/** Re-exported so callers can tell a refusal (a rule, never response content) from an HTTP answer. */
export { MetadataFetchError as DiscoveryFetchError };

/** Build the guarded fetch. One Agent per hop, closed after it: these requests are rare (discovery, refresh). */
export function createDiscoveryFetch(options: DiscoveryFetchOptions): FetchLike {
  const guard: GuardedFetchOptions = {
    allowLoopback: options.allowLoopback,
    allowLocalhostName: options.allowLoopback,
    ...(options.resolve === undefined ? {} : { resolve: options.resolve }),
  };
  const maxBytes = options.maxBytes ?? DISCOVERY_MAX_BYTES;
  const timeoutMs = options.timeoutMs ?? DISCOVERY_TIMEOUT_MS;
  return async (input, init) => {
    const method = (init?.method ?? 'GET').toUpperCase();
    if (method !== 'GET' && method !== 'POST') throw new MetadataFetchError('bad_url', `only GET and POST requests are made (got ${method})`);
    const body = requestBody(init?.body);
    const headers = headerRecord(new Headers(init?.headers));
    headers['user-agent'] ??= 'gatehouse';
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = init?.signal ? AbortSignal.any([timeout, init.signal]) : timeout;
    // The SDK follows same-origin redirects itself (it asks for `manual`); only a caller that
    // wants `follow` gets them followed here, GETs only, each hop checked like the first.
    const follow = (init?.redirect ?? 'follow') === 'follow' && method === 'GET';
    let url: URL;
    try {
      url = new URL(String(input));
    } catch {
      throw new MetadataFetchError('bad_url', 'not an absolute URL');
    }
    for (let hop = 0; ; hop += 1) {
      const { address, family } = await checkTarget(url, guard);
      const agent = new Agent({ connect: { lookup: fixedLookup(address, family), ...(options.ca === undefined ? {} : { ca: options.ca }) }, connections: 1, pipelining: 0 });
      try {
        const response = await request(url, { method, headers, body, dispatcher: agent, signal }).catch((err: unknown) => {
          if (timeout.aborted) throw new MetadataFetchError('timeout', 'the fetch took too long');
          throw new MetadataFetchError('network', `the fetch failed (${err instanceof Error ? ((err as NodeJS.ErrnoException).code ?? err.name) : 'error'})`);
        });
        const location = response.headers['location'];
        if (follow && response.statusCode >= 300 && response.statusCode < 400 && typeof location === 'string') {
          await response.body.dump().catch(() => undefined);
          if (hop >= MAX_REDIRECTS) throw new MetadataFetchError('too_many_redirects', `more than ${MAX_REDIRECTS} redirects`);
          try {
            url = new URL(location, url);
          } catch {
            throw new MetadataFetchError('bad_url', 'a redirect named an invalid URL');
          }
          continue;
        }
        const bytes = await readLimited(response.body, maxBytes, timeout);
        const responseHeaders = new Headers();
        for (const [name, value] of Object.entries(response.headers)) {
          if (value !== undefined) responseHeaders.set(name, Array.isArray(value) ? value.join(', ') : value);
        }
        return new Response(NULL_BODY_STATUSES.has(response.statusCode) ? null : new Uint8Array(bytes), { status: response.statusCode, headers: responseHeaders });
      } finally {
        void agent.close().catch(() => undefined);
      }
    }
  };
}

function requestBody(body: RequestInit['body']): string | undefined {
  if (body === undefined || body === null) return undefined;
  if (typeof body === 'string') return body;
  if (body instanceof URLSearchParams) return body.toString();
  throw new MetadataFetchError('bad_url', 'only string and form bodies are sent');
}

function headerRecord(headers: Headers): Record<string, string> {
  const out: Record<string, string> = {};
  headers.forEach((value, name) => {
    out[name] = value;
  });
  return out;
}

async function readLimited(body: AsyncIterable<unknown> & { destroy(): void }, maxBytes: number, timeout: AbortSignal): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body) {
      const buf = chunk as Buffer;
      size += buf.length;
      if (size > maxBytes) throw new MetadataFetchError('too_large', `the response is larger than ${maxBytes} bytes`);
      chunks.push(buf);
    }
  } catch (err) {
    body.destroy();
    if (err instanceof MetadataFetchError) throw err;
    if (timeout.aborted) throw new MetadataFetchError('timeout', 'the fetch took too long');
    throw new MetadataFetchError('network', 'the response body failed');
  }
  return Buffer.concat(chunks, size);
}
