import { mkdtempSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchClientMetadata, guardedFetch, isForbiddenAddress, MetadataFetchError } from './client-metadata-fetch.ts';
import { selfSignedCertificate } from '../../test/support/self-signed-certificate.ts';

type Route = (req: IncomingMessage, res: ServerResponse, base: string) => void;
const routes = new Map<string, Route>();
let http: Server;
let httpBase: string;

beforeAll(async () => {
  http = createHttpServer((req, res) => {
    const route = routes.get(req.url ?? '');
    if (route === undefined) res.writeHead(404).end();
    else route(req, res, httpBase);
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  httpBase = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  const json = (body: unknown, type = 'application/json'): Route => (_req, res) => res.writeHead(200, { 'content-type': type }).end(JSON.stringify(body));
  routes.set('/doc', (_q, res, base) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ client_id: `${base}/doc`, redirect_uris: ['http://127.0.0.1/cb'] })));
  routes.set('/mismatch', json({ client_id: 'https://other.example/doc' }));
  routes.set('/html', json({}, 'text/html'));
  routes.set('/big', (_q, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ pad: 'x'.repeat(6000) })));
  routes.set('/chunked-big', (_q, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write('{"pad":"');
    for (let i = 0; i < 10; i += 1) res.write('y'.repeat(1000));
    res.end('"}');
  });
  routes.set('/slow', () => {});
  routes.set('/to-private', (_q, res) => res.writeHead(302, { location: 'http://10.0.0.1/doc' }).end());
  routes.set('/loop', (_q, res, base) => res.writeHead(302, { location: `${base}/loop` }).end());
  routes.set('/hop', (_q, res, base) => res.writeHead(302, { location: `${base}/doc` }).end());
});
afterAll(async () => {
  http.closeAllConnections();
  await new Promise<void>((resolve) => http.close(() => resolve()));
});

async function reason(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof MetadataFetchError) return err.reason;
    throw err;
  }
  return 'ok';
}

describe('isForbiddenAddress', () => {
  it('refuses every non-public range and IPv6 forms of them', () => {
    for (const address of [
      '127.0.0.1', '127.1.2.3', '10.1.2.3', '172.16.0.1', '172.31.255.255', '192.168.1.1', '169.254.169.254', '100.64.0.1', '100.127.255.255',
      '0.0.0.0', '224.0.0.1', '239.255.255.250', '255.255.255.255', '198.18.0.1',
      '::', '::1', 'fc00::1', 'fd12:3456::1', 'fe80::1', 'ff02::1', '::ffff:127.0.0.1', '::ffff:7f00:1', '::ffff:10.0.0.1', '::ffff:169.254.169.254',
      '::127.0.0.1', '64:ff9b::a00:1', '2002:a00:1::', 'fec0::1', '2001:db8::1',
    ]) {
      expect(isForbiddenAddress(address), address).toBe(true);
    }
    for (const address of ['8.8.8.8', '1.1.1.1', '172.32.0.1', '100.128.0.1', '2606:4700::1111', '::ffff:8.8.8.8']) {
      expect(isForbiddenAddress(address), address).toBe(false);
    }
  });

  it('allowLoopback lets exactly 127.0.0.1 and ::1 through', () => {
    expect(isForbiddenAddress('127.0.0.1', true)).toBe(false);
    expect(isForbiddenAddress('::1', true)).toBe(false);
    expect(isForbiddenAddress('127.0.0.2', true)).toBe(true);
    expect(isForbiddenAddress('10.0.0.1', true)).toBe(true);
    expect(isForbiddenAddress('::ffff:127.0.0.1', true)).toBe(true);
  });
});

describe('guardedFetch', () => {
  it('refuses http, and literal private addresses, without connecting', async () => {
    expect(await reason(guardedFetch(`${httpBase}/doc`))).toBe('scheme_not_allowed');
    for (const url of ['https://127.0.0.1/doc', 'https://10.0.0.1/doc', 'https://[::1]/doc', 'https://[::ffff:192.168.0.1]/doc', 'https://169.254.169.254/latest', 'https://0x7f.1/doc', 'https://2130706433/doc', 'https://[fe80::1]/x']) {
      expect(await reason(guardedFetch(url)), url).toBe('address_not_allowed');
    }
    expect(await reason(guardedFetch('https://user:pw@example.com/doc'))).toBe('bad_url');
  });

  it('checks every address DNS gives (an injected resolver), and fails closed on DNS errors', async () => {
    expect(await reason(guardedFetch('https://metadata.example/doc', { resolve: async () => ['93.184.216.34', '10.0.0.5'] }))).toBe('address_not_allowed');
    expect(await reason(guardedFetch('https://localhost.example/doc', { resolve: async () => ['::1'] }))).toBe('address_not_allowed');
    expect(await reason(guardedFetch('https://nx.example/doc', { resolve: async () => { throw new Error('ENOTFOUND'); } }))).toBe('dns_failed');
  });

  it('enforces JSON, the size limit (declared and streamed), the time limit and the redirect rules', async () => {
    const opts = { allowLoopback: true };
    expect(await reason(fetchClientMetadata(`${httpBase}/doc`, opts))).toBe('ok');
    expect(await reason(fetchClientMetadata(`${httpBase}/mismatch`, opts))).toBe('client_id_mismatch');
    expect(await reason(guardedFetch(`${httpBase}/html`, opts))).toBe('not_json');
    expect(await reason(guardedFetch(`${httpBase}/big`, opts))).toBe('too_large');
    expect(await reason(guardedFetch(`${httpBase}/chunked-big`, opts))).toBe('too_large');
    expect(await reason(guardedFetch(`${httpBase}/slow`, { ...opts, timeoutMs: 200 }))).toBe('timeout');
    expect(await reason(guardedFetch(`${httpBase}/to-private`, opts))).toBe('scheme_not_allowed');
    expect(await reason(guardedFetch(`${httpBase}/loop`, opts))).toBe('too_many_redirects');
    const hop = await guardedFetch(`${httpBase}/hop`, opts);
    expect(hop.url).toBe(`${httpBase}/doc`);
    // A document reached through a redirect must still name the original URL.
    expect(await reason(fetchClientMetadata(`${httpBase}/hop`, opts))).toBe('client_id_mismatch');
  });
});

describe('https with a pinned CA (the CIMD path)', () => {
  let dir: string;
  let https: Server;
  let base: string;
  let ca: string;
  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-tls-'));
    const certificate = selfSignedCertificate(dir, 'IP:127.0.0.1,DNS:rebind.example');
    ca = certificate.cert;
    https = createHttpsServer({ key: certificate.key, cert: ca }, (req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ client_id: `${base}${req.url}` }));
    });
    await new Promise<void>((resolve) => https.listen(0, '127.0.0.1', resolve));
    base = `https://127.0.0.1:${(https.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    https.closeAllConnections();
    await new Promise<void>((resolve) => https.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('fetches over https from loopback only in test mode', async () => {
    expect(await fetchClientMetadata(`${base}/client.json`, { allowLoopback: true, ca })).toEqual({ client_id: `${base}/client.json` });
    expect(await reason(fetchClientMetadata(`${base}/client.json`, { ca }))).toBe('address_not_allowed');
  });

  it('connects to the address it checked: one DNS answer, no second lookup (DNS rebinding)', async () => {
    let calls = 0;
    // A rebinding resolver: the first answer passes the check, later ones would point inside.
    const resolve = async (): Promise<string[]> => (calls++ === 0 ? ['127.0.0.1'] : ['10.0.0.1']);
    const port = new URL(base).port;
    const doc = await guardedFetch(`https://rebind.example:${port}/x`, { allowLoopback: true, ca, resolve });
    expect(doc.status).toBe(200);
    expect(calls).toBe(1);
  });
});
