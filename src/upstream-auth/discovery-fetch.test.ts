import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDiscoveryFetch, DiscoveryFetchError } from './discovery-fetch.ts';

let server: Server;
let port: number;
const seen: Array<{ method: string; url: string; body: string; type: string | undefined }> = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', body: Buffer.concat(chunks).toString('utf8'), type: req.headers['content-type'] });
      if (req.url === '/doc') return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
      if (req.url === '/big') return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ pad: 'x'.repeat(5000) }));
      if (req.url === '/hop') return void res.writeHead(302, { location: '/doc' }).end();
      if (req.url === '/to-private') return void res.writeHead(302, { location: 'https://10.1.2.3/doc' }).end();
      if (req.url === '/to-metadata') return void res.writeHead(307, { location: 'https://metadata.internal/latest' }).end();
      if (req.url === '/token') return void res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":"invalid_grant"}');
      res.writeHead(404).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

async function refusal(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof DiscoveryFetchError) return err.reason;
    throw err;
  }
  return 'ok';
}

describe('createDiscoveryFetch (SSRF rules)', () => {
  const strict = createDiscoveryFetch({ allowLoopback: false, resolve: async (host) => (host === 'public.example' ? ['93.184.216.34'] : host === 'metadata.internal' ? ['169.254.169.254'] : ['10.0.0.7']) });

  it('refuses plain http, loopback, private, link-local and IPv4-mapped addresses without allowLoopback', async () => {
    expect(await refusal(strict('http://public.example/.well-known/oauth-authorization-server'))).toBe('scheme_not_allowed');
    expect(await refusal(strict(`http://127.0.0.1:${port}/doc`))).toBe('scheme_not_allowed');
    expect(await refusal(strict(`http://localhost:${port}/doc`))).toBe('scheme_not_allowed');
    expect(await refusal(strict(`https://127.0.0.1:${port}/doc`))).toBe('address_not_allowed');
    expect(await refusal(strict('https://internal.example/doc'))).toBe('address_not_allowed');
    expect(await refusal(strict('https://metadata.internal/latest'))).toBe('address_not_allowed');
    expect(await refusal(strict('https://[::ffff:169.254.169.254]/latest'))).toBe('address_not_allowed');
    expect(await refusal(strict('https://[::ffff:7f00:1]/x'))).toBe('address_not_allowed');
    expect(await refusal(strict('https://user:pw@public.example/x'))).toBe('bad_url');
    const mixed = createDiscoveryFetch({ allowLoopback: false, resolve: async () => ['93.184.216.34', '192.168.1.10'] });
    expect(await refusal(mixed('https://rebind.example/doc'))).toBe('address_not_allowed');
  });

  it('sends only GET and POST', async () => {
    expect(await refusal(strict('https://public.example/x', { method: 'DELETE' }))).toBe('bad_url');
  });
});

describe('createDiscoveryFetch with allowLoopback', () => {
  const loopback = createDiscoveryFetch({ allowLoopback: true, maxBytes: 1024 });

  it('fetches from 127.0.0.1 and localhost, answering Responses with their status', async () => {
    const res = await loopback(`http://127.0.0.1:${port}/doc`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ok: true });
    expect((await loopback(`http://localhost:${port}/doc`)).status).toBe(200);
    const missing = await loopback(`http://127.0.0.1:${port}/nothing`);
    expect(missing.status).toBe(404);
    const token = await loopback(`http://127.0.0.1:${port}/token`, { method: 'POST', body: new URLSearchParams({ grant_type: 'refresh_token' }), headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(token.status).toBe(400);
    expect(seen.at(-1)).toMatchObject({ method: 'POST', body: 'grant_type=refresh_token', type: 'application/x-www-form-urlencoded' });
  });

  it('other private ranges stay refused, and so does every redirect hop that leaves the rules', async () => {
    const local = createDiscoveryFetch({ allowLoopback: true, resolve: async () => ['10.0.0.1'] });
    expect(await refusal(local('https://corp.example/doc'))).toBe('address_not_allowed');
    expect(await refusal(loopback(`http://127.0.0.1:${port}/to-private`))).toBe('address_not_allowed');
    const redirected = await loopback(`http://127.0.0.1:${port}/hop`);
    expect(redirected.status).toBe(200);
    // `manual` (what the SDK asks for) hands the redirect back unfollowed.
    const manual = await loopback(`http://127.0.0.1:${port}/hop`, { redirect: 'manual' });
    expect(manual.status).toBe(302);
    expect(manual.headers.get('location')).toBe('/doc');
  });

  it('limits the body size', async () => {
    expect(await refusal(loopback(`http://127.0.0.1:${port}/big`))).toBe('too_large');
  });
});
