// The third auth tier in the HTTP transports: a target's credential on every upstream request
// (POST, the GET streams, DELETE), a 401/403 handed to its challenge() with one retry, and
// a challenge's typed error failing the send. A raw node:http upstream records every request.
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { GatehouseError } from '../protocol/errors.ts';
import type { JsonRpcMessage } from '../protocol/jsonrpc.ts';
import type { UpstreamCredential } from '../upstream-auth/upstream-credential.ts';
import { systemClock } from '../clock.ts';
import { configSchema } from '../config/schema.ts';
import { createSseTransport } from './sse-transport.ts';
import { createTransport } from './transports.ts';
import { createStreamableHttpTransport } from './streamable-http-transport.ts';
import type { TransportHandlers, UpstreamTransport } from './transport.ts';

interface Hit {
  method: string;
  headers: IncomingHttpHeaders;
  body: string;
}

type Route = (hit: Hit, res: ServerResponse) => void;

const servers: Server[] = [];
const transports: UpstreamTransport[] = [];

afterEach(async () => {
  await Promise.all(transports.splice(0).map((t) => t.close()));
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

async function upstream(route: Route): Promise<{ url: string; hits: Hit[] }> {
  const hits: Hit[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const hit = { method: req.method ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      hits.push(hit);
      route(hit, res);
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, hits };
}

function handlers(messages: JsonRpcMessage[] = []): TransportHandlers {
  return { onMessage: (m) => messages.push(m), onDisconnect: () => undefined, onConnect: () => undefined, onDiagnostic: () => undefined };
}

/** A credential whose token changes when challenged; `verdict` decides what a challenge does. */
function rotatingCredential(verdict: (status: number, www: string | undefined) => Promise<boolean>): UpstreamCredential & { token: string; challenges: Array<[number, string | undefined]> } {
  const credential = {
    token: 'one',
    challenges: [] as Array<[number, string | undefined]>,
    // Synchronous, as static secrets and cached tokens are.
    headers: () => ({ authorization: `Bearer ${credential.token}` }),
    challenge: async (status: 401 | 403, www: string | undefined) => {
      credential.challenges.push([status, www]);
      const renewed = await verdict(status, www);
      if (renewed) credential.token = 'two';
      return renewed;
    },
  };
  return credential;
}

const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void => {
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
};

const REQUEST = { jsonrpc: '2.0' as const, id: 1, method: 'tools/list' };

describe('Streamable HTTP transport with a credential', () => {
  it('a 401 is challenged, and the request retried once with the renewed credential', async () => {
    const up = await upstream((hit, res) => {
      if (hit.headers.authorization !== 'Bearer two') return json(res, 401, { error: 'invalid_token' }, { 'www-authenticate': 'Bearer resource_metadata="https://x/prm"' });
      json(res, 200, { jsonrpc: '2.0', id: 1, result: { tools: [] } });
    });
    const credential = rotatingCredential(async () => true);
    const messages: JsonRpcMessage[] = [];
    const transport = createStreamableHttpTransport({ url: `${up.url}/mcp`, credential, headers: { authorization: 'Bearer configured' } });
    transports.push(transport);
    await transport.start(handlers(messages));
    await transport.send(REQUEST);
    expect(up.hits.map((h) => h.headers.authorization)).toEqual(['Bearer one', 'Bearer two']);
    expect(credential.challenges).toEqual([[401, 'Bearer resource_metadata="https://x/prm"']]);
    expect(messages).toHaveLength(1);
  });

  it("a challenge's rejection fails the send with its typed error", async () => {
    const up = await upstream((_hit, res) => json(res, 401, {}, { 'www-authenticate': 'Bearer scope="mcp:read"' }));
    const credential = rotatingCredential(async () => {
      throw new GatehouseError('UPSTREAM_AUTHORIZATION_REQUIRED', 'authorize', { data: { target: 't', reason: 'not_authorized', scopes: ['mcp:read'] } });
    });
    const transport = createStreamableHttpTransport({ url: `${up.url}/mcp`, credential });
    transports.push(transport);
    await transport.start(handlers());
    const err = await transport.send(REQUEST).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GatehouseError);
    expect((err as GatehouseError).code).toBe('UPSTREAM_AUTHORIZATION_REQUIRED');
    expect((err as GatehouseError).details.data).toEqual({ target: 't', reason: 'not_authorized', scopes: ['mcp:read'] });
    expect(up.hits).toHaveLength(1);
  });

  it('retries once only: a renewed credential refused again fails the send (the credential is asked again)', async () => {
    const up = await upstream((_hit, res) => json(res, 401, {}));
    const credential = rotatingCredential(async () => true);
    const transport = createStreamableHttpTransport({ url: `${up.url}/mcp`, credential });
    transports.push(transport);
    await transport.start(handlers());
    const err = (await transport.send(REQUEST).catch((e: unknown) => e)) as GatehouseError;
    expect(err.code).toBe('UPSTREAM_UNAVAILABLE');
    expect(up.hits).toHaveLength(2);
    expect(credential.challenges).toHaveLength(2);
  });

  it('a 403 the credential has nothing to say about is the upstream answer, as without a credential', async () => {
    const up = await upstream((_hit, res) => json(res, 403, { error: 'forbidden' }));
    const credential = rotatingCredential(async () => false);
    const transport = createStreamableHttpTransport({ url: `${up.url}/mcp`, credential });
    transports.push(transport);
    await transport.start(handlers());
    const err = (await transport.send(REQUEST).catch((e: unknown) => e)) as GatehouseError;
    expect(err.code).toBe('UPSTREAM_UNAVAILABLE');
    expect(err.details.data).toEqual({ status: 403 });
    expect(credential.challenges).toEqual([[403, undefined]]);
  });

  it('puts the credential on the standalone GET stream and on the DELETE that ends the session, never an agent header', async () => {
    const up = await upstream((hit, res) => {
      if (hit.method === 'GET') {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(': open\n\n');
        return;
      }
      if (hit.method === 'DELETE') return void res.writeHead(200).end();
      const message = JSON.parse(hit.body) as { id?: number; method: string };
      if (message.id === undefined) return void res.writeHead(202).end();
      json(res, 200, { jsonrpc: '2.0', id: message.id, result: { protocolVersion: '2025-11-25', capabilities: {}, serverInfo: { name: 's', version: '1' } } }, { 'mcp-session-id': 'session-1' });
    });
    const credential = rotatingCredential(async () => true);
    const transport = createStreamableHttpTransport({ url: `${up.url}/mcp`, credential });
    await transport.start(handlers());
    await transport.send({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'c', version: '1' } } }, { headers: { authorization: 'Bearer agent-token', traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' } });
    transport.setProtocolVersion?.('2025-11-25');
    await transport.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
    await vi.waitFor(() => {
      if (!up.hits.some((h) => h.method === 'GET')) throw new Error('no GET yet');
    }, { timeout: 5000, interval: 5 });
    await transport.close();
    const byMethod = (m: string): Hit => up.hits.find((h) => h.method === m)!;
    expect(byMethod('GET').headers.authorization).toBe('Bearer one');
    expect(byMethod('DELETE').headers.authorization).toBe('Bearer one');
    expect(byMethod('DELETE').headers['mcp-session-id']).toBe('session-1');
    // The agent's Authorization never reaches the upstream; trace context does.
    expect(up.hits[0]!.headers.authorization).toBe('Bearer one');
    expect(up.hits[0]!.headers.traceparent).toBeDefined();
  });
});

describe('legacy SSE transport with a credential', () => {
  it('challenges a 401 on the event stream and on a POST, and sends the credential on both', async () => {
    let streamOpened = false;
    const up = await upstream((hit, res) => {
      if (hit.headers.authorization !== 'Bearer two') return json(res, 401, {}, { 'www-authenticate': 'Bearer scope="a"' });
      if (hit.method === 'GET') {
        streamOpened = true;
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write('event: endpoint\ndata: /messages?s=1\n\n');
        return;
      }
      res.writeHead(202).end();
    });
    const credential = rotatingCredential(async () => true);
    const transport = createSseTransport({ url: `${up.url}/sse`, credential });
    transports.push(transport);
    await transport.start(handlers());
    expect(streamOpened).toBe(true);
    await transport.send(REQUEST);
    expect(up.hits.map((h) => `${h.method} ${h.headers.authorization}`)).toEqual(['GET Bearer one', 'GET Bearer two', 'POST Bearer two']);
  });

  it("fails start() with the challenge's typed error", async () => {
    const up = await upstream((_hit, res) => json(res, 401, {}));
    const credential = rotatingCredential(async () => {
      throw new GatehouseError('UPSTREAM_CREDENTIAL_UNAVAILABLE', 'no secret');
    });
    const transport = createSseTransport({ url: `${up.url}/sse`, credential });
    transports.push(transport);
    const err = (await transport.start(handlers()).catch((e: unknown) => e)) as GatehouseError;
    expect(err.code).toBe('UPSTREAM_CREDENTIAL_UNAVAILABLE');
  });
});

describe('stdio transport with a secret environment', () => {
  it('merges the secret over the allow-listed and literal variables', async () => {
    const script = 'process.stdout.write(JSON.stringify({ jsonrpc: "2.0", method: "env", params: { key: process.env.API_KEY, other: process.env.OTHER } }) + "\\n"); setInterval(() => {}, 1000);';
    const target = configSchema.parse({
      targets: { child: { transport: 'stdio', command: process.execPath, args: ['-e', script], env: { API_KEY: 'literal', OTHER: 'kept' }, stopGraceMs: 0 } },
    }).targets['child']!;
    const messages: JsonRpcMessage[] = [];
    const transport = createTransport(target, systemClock, { PATH: process.env['PATH'] }, { secretEnv: { API_KEY: 'from-the-vault' } });
    transports.push(transport);
    await transport.start(handlers(messages));
    await vi.waitFor(() => {
      if (messages.length === 0) throw new Error('no line yet');
    }, { timeout: 5000, interval: 10 });
    expect(messages[0]).toMatchObject({ method: 'env', params: { key: 'from-the-vault', other: 'kept' } });
  });
});
