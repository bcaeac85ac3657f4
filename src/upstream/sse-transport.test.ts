import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { SSEServerTransport } from '@modelcontextprotocol/sdk/server/sse.js';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { ManualClock } from '../clock.ts';
import { isResponse, type JsonObject, type JsonRpcId, type JsonRpcMessage } from '../protocol/jsonrpc.ts';
import { createSseTransport, type SseTransportOptions } from './sse-transport.ts';
import type { InboundContext, TransportHandlers, UpstreamTransport } from './transport.ts';

interface Seen {
  message: JsonRpcMessage;
  context: InboundContext;
}

interface Recorder extends TransportHandlers {
  seen: Seen[];
  lifecycle: string[];
}

function recorder(): Recorder {
  const rec: Recorder = {
    seen: [],
    lifecycle: [],
    onMessage: (message, context) => rec.seen.push({ message, context }),
    onDisconnect: (_error, willRestart) => rec.lifecycle.push(`disconnect(${willRestart})`),
    onConnect: () => rec.lifecycle.push('connect'),
  };
  return rec;
}

async function until(check: () => boolean, timeout = 5000): Promise<void> {
  await vi.waitFor(() => {
    if (!check()) throw new Error('condition not met yet');
  }, { timeout, interval: 5 });
}

const transports: UpstreamTransport[] = [];
const servers: Server[] = [];

afterEach(async () => {
  for (const t of transports.splice(0)) await t.close();
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((resolve) => s.close(resolve));
  }
});

function make(options: SseTransportOptions): UpstreamTransport {
  const transport = createSseTransport(options);
  transports.push(transport);
  return transport;
}

async function call(transport: UpstreamTransport, rec: Recorder, id: JsonRpcId, method: string, params?: JsonObject): Promise<Seen> {
  await transport.send(params === undefined ? { jsonrpc: '2.0', id, method } : { jsonrpc: '2.0', id, method, params });
  const find = (): Seen | undefined => rec.seen.find((s) => isResponse(s.message) && s.message.id === id);
  await until(() => find() !== undefined);
  return find()!;
}

async function initialize(transport: UpstreamTransport, rec: Recorder, id: JsonRpcId): Promise<Seen> {
  const init = await call(transport, rec, id, 'initialize', {
    protocolVersion: '2024-11-05', capabilities: {}, clientInfo: { name: 'gatehouse-test', version: '0.0.0' },
  });
  await transport.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
  return init;
}

interface Logged {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
}

/** An SDK v1 legacy server: GET /sse opens a session, POST /messages?sessionId= feeds it. */
async function startSdkSseServer(): Promise<{ url: string; log: Logged[]; sessions: Map<string, SSEServerTransport> }> {
  const sessions = new Map<string, SSEServerTransport>();
  const log: Logged[] = [];
  const server = createServer((req, res) => {
    log.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (req.method === 'GET' && url.pathname === '/sse') {
      const transport = new SSEServerTransport('/messages', res);
      sessions.set(transport.sessionId, transport);
      const mcp = new McpServer({ name: 'legacy-fixture', version: '1.0.0' });
      mcp.registerTool('echo', { description: 'Echo the text', inputSchema: { text: z.string() } }, async ({ text }) => ({
        content: [{ type: 'text', text }],
      }));
      void mcp.connect(transport);
      return;
    }
    const session = sessions.get(url.searchParams.get('sessionId') ?? '');
    if (req.method === 'POST' && url.pathname === '/messages' && session) {
      void session.handlePostMessage(req, res);
      return;
    }
    res.writeHead(404).end();
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/sse`, log, sessions };
}

/** A raw server whose /sse stream names `endpoint` and stays open. */
async function startRawSseServer(endpoint: string): Promise<{ url: string; log: Logged[] }> {
  const log: Logged[] = [];
  const server = createServer((req, res) => {
    log.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write(`event: endpoint\ndata: ${endpoint}\n\n`);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/sse`, log };
}

describe('legacy HTTP+SSE transport', () => {
  it('waits for the endpoint, POSTs there, and delivers stream messages without relatedRequestId', async () => {
    const upstream = await startSdkSseServer();
    const rec = recorder();
    const transport = make({ url: upstream.url, headers: { Authorization: 'Bearer t0k' } });
    await transport.start(rec);

    const init = await initialize(transport, rec, 1);
    expect(init.context.relatedRequestId).toBeUndefined();
    const echo = await call(transport, rec, 2, 'tools/call', { name: 'echo', arguments: { text: 'over sse' } });
    expect(echo.message).toMatchObject({ id: 2, result: { content: [{ type: 'text', text: 'over sse' }] } });

    const [sessionId] = [...upstream.sessions.keys()];
    const posts = upstream.log.filter((e) => e.method === 'POST');
    expect(posts.length).toBe(3);
    for (const post of posts) {
      expect(post.url).toBe(`/messages?sessionId=${sessionId}`);
      expect(post.headers['authorization']).toBe('Bearer t0k');
      expect(post.headers['content-type']).toBe('application/json');
    }
    expect(upstream.log[0]!.headers['accept']).toBe('text/event-stream');
    expect(transport.stats.bytesIn).toBeGreaterThan(0);
    expect(transport.stats.bytesOut).toBeGreaterThan(0);
  });

  it.each([
    'http://evil.example.com/messages',
    '//evil.example.com/messages',
    'https://127.0.0.1/messages',
  ])('refuses an endpoint on another origin (%s)', async (endpoint) => {
    const upstream = await startRawSseServer(endpoint);
    const transport = make({ url: upstream.url });
    await expect(transport.start(recorder())).rejects.toMatchObject({ code: 'UPSTREAM_PROTOCOL_ERROR' });
    await expect(transport.send({ jsonrpc: '2.0', method: 'notifications/initialized' })).rejects.toMatchObject({ code: 'UPSTREAM_UNAVAILABLE' });
    expect(upstream.log.filter((e) => e.method === 'POST')).toHaveLength(0);
  });

  it('fails start when no endpoint arrives in time', async () => {
    const log: Logged[] = [];
    const server = createServer((req, res) => {
      log.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(': no endpoint yet\n\n');
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const clock = new ManualClock();
    const transport = make({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/sse`, clock, requestTimeoutMs: 500 });
    const started = transport.start(recorder());
    await until(() => log.length === 1 && clock.pending === 1);
    clock.advance(500);
    await expect(started).rejects.toMatchObject({ code: 'UPSTREAM_TIMEOUT' });
  });

  it('on a dropped stream reports onDisconnect(willRestart), reconnects with a new GET and endpoint, then onConnect', async () => {
    const upstream = await startSdkSseServer();
    const clock = new ManualClock();
    const rec = recorder();
    const transport = make({ url: upstream.url, clock });
    await transport.start(rec);
    await initialize(transport, rec, 1);
    const [first] = [...upstream.sessions.values()];

    await first!.close(); // the server ends the event stream
    await until(() => rec.lifecycle.includes('disconnect(true)') && clock.pending === 1);
    await expect(transport.send({ jsonrpc: '2.0', id: 2, method: 'tools/list' })).rejects.toMatchObject({ code: 'UPSTREAM_UNAVAILABLE' });
    clock.advance(1000);
    await until(() => rec.lifecycle.includes('connect'));
    expect(rec.lifecycle).toEqual(['disconnect(true)', 'connect']);
    expect(transport.stats.restarts).toBe(1);

    const second = [...upstream.sessions.keys()][1]!;
    await initialize(transport, rec, 3);
    const echo = await call(transport, rec, 4, 'tools/call', { name: 'echo', arguments: { text: 'again' } });
    expect(echo.message).toMatchObject({ result: { content: [{ type: 'text', text: 'again' }] } });
    expect(upstream.log.filter((e) => e.method === 'POST').at(-1)!.url).toBe(`/messages?sessionId=${second}`);
  });

  it('close is idempotent, stops the stream, and refuses later use', async () => {
    const upstream = await startSdkSseServer();
    const rec = recorder();
    const transport = make({ url: upstream.url });
    await transport.start(rec);
    await Promise.all([transport.close(), transport.close()]);
    await transport.close();
    expect(rec.lifecycle).toEqual([]); // a deliberate close is not a lost link
    await expect(transport.send({ jsonrpc: '2.0', id: 1, method: 'ping' })).rejects.toThrow('transport is closed');
    await expect(transport.start(rec)).rejects.toThrow('transport is closed');
  });
});
