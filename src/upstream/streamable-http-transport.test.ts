import { randomUUID } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { ElicitResultSchema } from '@modelcontextprotocol/sdk/types.js';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { ManualClock } from '../clock.ts';
import { GatehouseError } from '../protocol/errors.ts';
import { isRequest, isResponse, type JsonObject, type JsonRpcId, type JsonRpcMessage } from '../protocol/jsonrpc.ts';
import { createStreamableHttpTransport, type StreamableHttpTransportOptions } from './streamable-http-transport.ts';
import { encodeHeaderValue } from '../protocol/mcp-headers.ts';
import type { InboundContext, TransportHandlers, UpstreamTransport } from './transport.ts';

// ---- harness ----

interface Seen {
  message: JsonRpcMessage;
  context: InboundContext;
}

interface Recorder extends TransportHandlers {
  seen: Seen[];
  lifecycle: string[];
  diagnostics: string[];
}

function recorder(): Recorder {
  const rec: Recorder = {
    seen: [],
    lifecycle: [],
    diagnostics: [],
    onMessage: (message, context) => rec.seen.push({ message, context }),
    onDisconnect: (error, willRestart) => rec.lifecycle.push(`disconnect(${willRestart}): ${error.message}`),
    onConnect: () => rec.lifecycle.push('connect'),
    onDiagnostic: (line) => rec.diagnostics.push(line),
  };
  return rec;
}

async function until(check: () => boolean, timeout = 5000): Promise<void> {
  await vi.waitFor(() => {
    if (!check()) throw new Error('condition not met yet');
  }, { timeout, interval: 5 });
}

function responseTo(rec: Recorder, id: JsonRpcId): Seen | undefined {
  return rec.seen.find((s) => isResponse(s.message) && s.message.id === id);
}

function resultOf(seen: Seen | undefined): JsonObject {
  if (!seen || !('result' in seen.message)) throw new Error('no result');
  return seen.message.result;
}

const transports: UpstreamTransport[] = [];
const servers: Server[] = [];

async function open(options: StreamableHttpTransportOptions, rec = recorder()): Promise<{ transport: UpstreamTransport; rec: Recorder }> {
  const transport = createStreamableHttpTransport(options);
  transports.push(transport);
  await transport.start(rec);
  await until(() => rec.lifecycle.includes('connect'));
  return { transport, rec };
}

/** Send a request and wait until its response was delivered. */
async function call(transport: UpstreamTransport, rec: Recorder, id: number, method: string, params?: JsonObject): Promise<Seen> {
  await transport.send(params === undefined ? { jsonrpc: '2.0', id, method } : { jsonrpc: '2.0', id, method, params });
  await until(() => responseTo(rec, id) !== undefined);
  return responseTo(rec, id)!;
}

const INIT_PARAMS: JsonObject = {
  protocolVersion: '2025-11-25',
  capabilities: { elicitation: {} },
  clientInfo: { name: 'gatehouse-test', version: '0.0.0' },
};

async function initialize(transport: UpstreamTransport, rec: Recorder, id = 1): Promise<void> {
  await call(transport, rec, id, 'initialize', INIT_PARAMS);
  transport.setProtocolVersion?.('2025-11-25');
  await transport.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
}

afterEach(async () => {
  for (const t of transports.splice(0)) await t.close();
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((resolve) => s.close(resolve));
  }
});

interface Logged {
  method: string;
  headers: IncomingHttpHeaders;
  body: string;
  at: number;
}

/** A node:http server on 127.0.0.1:0 that logs every request with its body. */
async function listen(handler: (req: IncomingMessage, res: ServerResponse, entry: Logged) => void | Promise<void>): Promise<{ url: string; log: Logged[] }> {
  const log: Logged[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const entry: Logged = { method: req.method ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), at: performance.now() };
      log.push(entry);
      void handler(req, res, entry);
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`, log };
}

// ---- an SDK v1 upstream (stateful Streamable HTTP) ----

interface SdkUpstream {
  url: string;
  log: Logged[];
  sessions: Map<string, StreamableHTTPServerTransport>;
  release(): void;
}

function buildMcpServer(gate: Promise<void>): McpServer {
  const mcp = new McpServer({ name: 'fixture', version: '1.0.0' });
  mcp.registerTool('echo', { description: 'Echo the text', inputSchema: { text: z.string() } }, async ({ text }) => ({
    content: [{ type: 'text', text }],
  }));
  mcp.registerTool('progress', { description: 'Report progress three times' }, async (extra) => {
    const token = extra._meta?.progressToken;
    if (token !== undefined) {
      for (let i = 1; i <= 3; i++) {
        await extra.sendNotification({ method: 'notifications/progress', params: { progressToken: token, progress: i, total: 3 } });
      }
    }
    return { content: [{ type: 'text', text: 'done' }] };
  });
  mcp.registerTool('slow', { description: 'Report once, then wait for the test' }, async (extra) => {
    const token = extra._meta?.progressToken;
    if (token !== undefined) await extra.sendNotification({ method: 'notifications/progress', params: { progressToken: token, progress: 1 } });
    await gate;
    return { content: [{ type: 'text', text: 'released' }] };
  });
  mcp.registerTool('ask', { description: 'Elicit a name from the client' }, async (extra) => {
    const answer = await extra.sendRequest({
      method: 'elicitation/create',
      params: { message: 'Name?', requestedSchema: { type: 'object', properties: { name: { type: 'string' } }, required: ['name'] } },
    }, ElicitResultSchema);
    return { content: [{ type: 'text', text: `hello ${String(answer.content?.['name'])}` }] };
  });
  mcp.registerTool('announce', { description: 'Send tools/list_changed on the standalone stream' }, async () => {
    mcp.sendToolListChanged();
    return { content: [{ type: 'text', text: 'announced' }] };
  });
  return mcp;
}

async function startSdkUpstream(enableJsonResponse: boolean): Promise<SdkUpstream> {
  const sessions = new Map<string, StreamableHTTPServerTransport>();
  let release = (): void => {};
  const gate = new Promise<void>((resolve) => { release = resolve; });
  const { url, log } = await listen(async (req, res, entry) => {
    const sid = req.headers['mcp-session-id'];
    const parsed: unknown = entry.body === '' ? undefined : JSON.parse(entry.body);
    if (typeof sid === 'string') {
      const known = sessions.get(sid);
      if (!known) {
        res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32001, message: 'Session not found' } }));
        return;
      }
      await known.handleRequest(req, res, parsed);
      return;
    }
    const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      enableJsonResponse,
      onsessioninitialized: (id) => { sessions.set(id, transport); },
    });
    await buildMcpServer(gate).connect(transport);
    await transport.handleRequest(req, res, parsed);
  });
  return { url, log, sessions, release: () => release() };
}

// ---- tests against the SDK server ----

describe.each([
  { mode: 'SSE responses', json: false },
  { mode: 'JSON responses', json: true },
])('Streamable HTTP against an SDK v1 server ($mode)', ({ json }) => {
  it('captures the session id and sends it, with MCP-Protocol-Version, on later requests', async () => {
    const upstream = await startSdkUpstream(json);
    const { transport, rec } = await open({ url: upstream.url });

    const init = await call(transport, rec, 1, 'initialize', INIT_PARAMS);
    expect(init.context.relatedRequestId).toBe(1);
    expect(resultOf(init)['protocolVersion']).toBe('2025-11-25');
    const initPost = upstream.log[0]!;
    expect(initPost.headers['mcp-session-id']).toBeUndefined();
    expect(initPost.headers['mcp-protocol-version']).toBeUndefined();
    expect(initPost.headers['accept']).toBe('application/json, text/event-stream');
    expect(initPost.headers['content-type']).toBe('application/json');

    transport.setProtocolVersion?.('2025-11-25');
    await transport.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
    const list = await call(transport, rec, 2, 'tools/list');
    expect(list.context.relatedRequestId).toBe(2);
    const tools = resultOf(list)['tools'];
    expect(Array.isArray(tools) && tools.map((t: { name: string }) => t.name)).toContain('echo');

    const [sessionId] = [...upstream.sessions.keys()];
    const listPost = upstream.log.find((e) => e.method === 'POST' && e.body.includes('"tools/list"'))!;
    expect(listPost.headers['mcp-session-id']).toBe(sessionId);
    expect(listPost.headers['mcp-protocol-version']).toBe('2025-11-25');

    const echo = await call(transport, rec, 3, 'tools/call', { name: 'echo', arguments: { text: 'hi' } });
    expect(resultOf(echo)['content']).toEqual([{ type: 'text', text: 'hi' }]);
    expect(transport.stats.bytesOut).toBeGreaterThan(0);
    expect(transport.stats.bytesIn).toBeGreaterThan(0);
  });

  it('opens the standalone GET stream after initialized; its messages carry no relatedRequestId', async () => {
    const upstream = await startSdkUpstream(json);
    const { transport, rec } = await open({ url: upstream.url });
    await initialize(transport, rec);
    await until(() => upstream.log.some((e) => e.method === 'GET'));
    const get = upstream.log.find((e) => e.method === 'GET')!;
    expect(get.headers['accept']).toBe('text/event-stream');
    expect(get.headers['mcp-session-id']).toBe([...upstream.sessions.keys()][0]);
    expect(get.headers['mcp-protocol-version']).toBe('2025-11-25');

    // The server registers the GET stream asynchronously; announce until it lands there.
    const changed = (): Seen | undefined => rec.seen.find((s) => 'method' in s.message && s.message.method === 'notifications/tools/list_changed');
    for (let id = 10; id < 60 && !changed(); id++) {
      await call(transport, rec, id, 'tools/call', { name: 'announce', arguments: {} });
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(changed()?.context.relatedRequestId).toBeUndefined();
  });

  it('treats 404 on an established session as expiry: onDisconnect, onConnect, reject; then re-initializes cleanly', async () => {
    const upstream = await startSdkUpstream(json);
    const { transport, rec } = await open({ url: upstream.url });
    await initialize(transport, rec);
    const [oldSession] = [...upstream.sessions.keys()];
    await until(() => upstream.log.some((e) => e.method === 'GET')); // its standalone stream is in place
    upstream.sessions.clear(); // the server forgets the session

    const failure = await transport.send({ jsonrpc: '2.0', id: 2, method: 'tools/list' }).catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(GatehouseError);
    expect((failure as GatehouseError).code).toBe('UPSTREAM_UNAVAILABLE');
    expect((failure as GatehouseError).message).toBe('upstream session expired');
    expect(rec.lifecycle).toEqual(['connect', 'disconnect(true): upstream session expired', 'connect']);

    await initialize(transport, rec, 3);
    const reinit = upstream.log.filter((e) => e.body.includes('"initialize"'))[1]!;
    expect(reinit.headers['mcp-session-id']).toBeUndefined();
    const list = await call(transport, rec, 4, 'tools/list');
    expect(list.context.relatedRequestId).toBe(4);
    // The new session gets its own standalone stream.
    const [newSession] = [...upstream.sessions.keys()];
    await until(() => upstream.log.some((e) => e.method === 'GET' && e.headers['mcp-session-id'] === newSession));
    expect(newSession).not.toBe(oldSession);
  });

  it('sends DELETE with the session id on close, and close is idempotent', async () => {
    const upstream = await startSdkUpstream(json);
    const { transport, rec } = await open({ url: upstream.url });
    await initialize(transport, rec);
    const [sessionId] = [...upstream.sessions.keys()];
    await Promise.all([transport.close(), transport.close()]);
    await transport.close();
    const deletes = upstream.log.filter((e) => e.method === 'DELETE');
    expect(deletes).toHaveLength(1);
    expect(deletes[0]!.headers['mcp-session-id']).toBe(sessionId);
    await expect(transport.send({ jsonrpc: '2.0', id: 9, method: 'tools/list' })).rejects.toThrow('transport is closed');
  });
});

describe('Streamable HTTP request streams (SDK v1 server, SSE responses)', () => {
  it('delivers progress notifications on the POST stream with relatedRequestId, before the response', async () => {
    const upstream = await startSdkUpstream(false);
    const { transport, rec } = await open({ url: upstream.url });
    await initialize(transport, rec);
    await call(transport, rec, 5, 'tools/call', { name: 'progress', arguments: {}, _meta: { progressToken: 'p1' } });
    const onStream = rec.seen.filter((s) => s.context.relatedRequestId === 5);
    expect(onStream.map((s) => ('method' in s.message ? s.message.method : 'response'))).toEqual([
      'notifications/progress', 'notifications/progress', 'notifications/progress', 'response',
    ]);
  });

  it('parses the SSE stream incrementally: a notification arrives while the tool is still running', async () => {
    const upstream = await startSdkUpstream(false);
    const { transport, rec } = await open({ url: upstream.url });
    await initialize(transport, rec);
    const sent = transport.send({ jsonrpc: '2.0', id: 6, method: 'tools/call', params: { name: 'slow', arguments: {}, _meta: { progressToken: 7 } } });
    await until(() => rec.seen.some((s) => s.context.relatedRequestId === 6));
    expect(responseTo(rec, 6)).toBeUndefined();
    upstream.release();
    await sent;
    expect(resultOf(responseTo(rec, 6))['content']).toEqual([{ type: 'text', text: 'released' }]);
  });

  it('delivers a server→client request with relatedRequestId of the call, and send() of the answer completes it', async () => {
    const upstream = await startSdkUpstream(false);
    const { transport, rec } = await open({ url: upstream.url });
    await initialize(transport, rec);
    const done = transport.send({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'ask', arguments: {} } });
    await until(() => rec.seen.some((s) => isRequest(s.message) && s.message.method === 'elicitation/create'));
    const ask = rec.seen.find((s) => isRequest(s.message) && s.message.method === 'elicitation/create')!;
    expect(ask.context.relatedRequestId).toBe(7);
    if (!isRequest(ask.message)) throw new Error('expected a request');
    await transport.send({ jsonrpc: '2.0', id: ask.message.id, result: { action: 'accept', content: { name: 'Ada' } } });
    const answerPost = upstream.log.find((e) => e.body.includes('"Ada"'))!;
    expect(answerPost.headers['mcp-session-id']).toBeDefined();
    await done;
    expect(resultOf(responseTo(rec, 7))['content']).toEqual([{ type: 'text', text: 'hello Ada' }]);
  });

  it('aborting SendOptions.signal aborts the exchange and rejects with REQUEST_CANCELLED', async () => {
    const upstream = await startSdkUpstream(false);
    const { transport, rec } = await open({ url: upstream.url });
    await initialize(transport, rec);
    const controller = new AbortController();
    const sent = transport.send({ jsonrpc: '2.0', id: 8, method: 'tools/call', params: { name: 'slow', arguments: {}, _meta: { progressToken: 1 } } }, { signal: controller.signal });
    await until(() => rec.seen.some((s) => s.context.relatedRequestId === 8));
    controller.abort();
    await expect(sent).rejects.toMatchObject({ code: 'REQUEST_CANCELLED' });
    upstream.release();
  });
});

// ---- modern-era headers and error bodies (raw server) ----

const MODERN_META = { 'io.modelcontextprotocol/protocolVersion': '2026-07-28' };

describe('Streamable HTTP modern-era requests', () => {
  it('mirrors MCP-Protocol-Version, Mcp-Method and Mcp-Name (Base64 sentinel when needed) and sends no session', async () => {
    const upstream = await listen((req, res, entry) => {
      if (req.method !== 'POST') {
        res.writeHead(405).end();
        return;
      }
      const msg = JSON.parse(entry.body) as { id?: JsonRpcId; method: string };
      if (msg.method === 'initialize') {
        res.writeHead(200, { 'content-type': 'application/json', 'mcp-session-id': 'legacy-session' });
        res.end(JSON.stringify({ jsonrpc: '2.0', id: msg.id, result: { protocolVersion: '2025-11-25', capabilities: {}, serverInfo: { name: 'raw', version: '1' } } }));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' });
      res.end(JSON.stringify({ jsonrpc: '2.0', id: msg.id, result: {} }));
    });
    const { transport, rec } = await open({ url: upstream.url, openStandaloneStream: false });
    await call(transport, rec, 1, 'initialize', INIT_PARAMS); // a session exists; modern requests must not carry it
    transport.setProtocolVersion?.('2025-11-25');

    await call(transport, rec, 2, 'tools/call', { name: 'get_weather', arguments: {}, _meta: MODERN_META });
    await call(transport, rec, 3, 'tools/call', { name: 'météo', arguments: {}, _meta: MODERN_META });
    await call(transport, rec, 4, 'resources/read', { uri: 'file:///projects/app/config.json', _meta: MODERN_META });
    await call(transport, rec, 5, 'prompts/get', { name: ' padded ', _meta: MODERN_META });
    await call(transport, rec, 6, 'server/discover', { _meta: MODERN_META });

    const byId = (id: number): IncomingHttpHeaders => upstream.log.find((e) => (JSON.parse(e.body) as { id?: number }).id === id)!.headers;
    expect(byId(2)).toMatchObject({ 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'tools/call', 'mcp-name': 'get_weather' });
    expect(byId(3)['mcp-name']).toBe(`=?base64?${Buffer.from('météo').toString('base64')}?=`);
    expect(byId(4)).toMatchObject({ 'mcp-method': 'resources/read', 'mcp-name': 'file:///projects/app/config.json' });
    expect(byId(5)['mcp-name']).toBe('=?base64?IHBhZGRlZCA=?=');
    expect(byId(6)['mcp-method']).toBe('server/discover');
    expect(byId(6)['mcp-name']).toBeUndefined();
    for (const id of [2, 3, 4, 5, 6]) expect(byId(id)['mcp-session-id']).toBeUndefined();
  });

  it('delivers a JSON-RPC error from a 4xx body when it answers the request; rejects other failures', async () => {
    const upstream = await listen((_req, res, entry) => {
      const msg = JSON.parse(entry.body) as { id?: JsonRpcId; method: string };
      if (msg.method === 'nope') {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ jsonrpc: '2.0', id: msg.id, error: { code: -32601, message: 'Method not found' } }));
      } else {
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32000, message: 'Bad Request: Server not initialized' } }));
      }
    });
    const { transport, rec } = await open({ url: `${upstream.url.replace('127.0.0.1', 'user:secret@127.0.0.1')}?token=hidden` });
    const missing = await call(transport, rec, 1, 'nope', { _meta: MODERN_META });
    expect(missing.message).toMatchObject({ id: 1, error: { code: -32601 } });
    expect(missing.context.relatedRequestId).toBe(1);

    const failure = await transport.send({ jsonrpc: '2.0', id: 2, method: 'server/discover', params: { _meta: MODERN_META } }).catch((e: unknown) => e);
    expect(failure).toMatchObject({ code: 'UPSTREAM_UNAVAILABLE', message: 'upstream answered HTTP 400' });
    expect(JSON.stringify((failure as GatehouseError).toRpcError())).not.toMatch(/secret|hidden|127\.0\.0\.1/);
    expect(rec.lifecycle).toEqual(['connect']); // no session, so no expiry
  });

  it('encodes header values per the 2026-07-28 Value Encoding table', () => {
    expect(encodeHeaderValue('us-west1')).toBe('us-west1');
    expect(encodeHeaderValue('Hello, 世界')).toBe('=?base64?SGVsbG8sIOS4lueVjA==?=');
    expect(encodeHeaderValue(' padded ')).toBe('=?base64?IHBhZGRlZCA=?=');
    expect(encodeHeaderValue('line1\nline2')).toBe('=?base64?bGluZTEKbGluZTI=?=');
    expect(encodeHeaderValue('=?base64?literal?=')).toBe('=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?=');
  });
});

// ---- resumability (raw server) ----

interface ResumeServer {
  url: string;
  log: Logged[];
  /** performance.now() when the server ended the POST stream early. */
  postEndedAt(): number | undefined;
}

/**
 * Like the conformance `sse-retry` mock: the tools/call stream sends a priming event with
 * `retry`, one notification, then closes before the response; a GET with Last-Event-ID gets the
 * response and stays open. A GET without Last-Event-ID is refused with 405.
 */
async function startResumeServer(retryMs: number, withEventIds = true): Promise<ResumeServer> {
  let endedAt: number | undefined;
  let pendingId: JsonRpcId | undefined;
  const { url, log } = await listen((req, res, entry) => {
    if (req.method === 'GET') {
      if (req.headers['last-event-id'] === undefined || pendingId === undefined) {
        res.writeHead(405).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'text/event-stream', 'mcp-session-id': 'sess-1' });
      res.write(`id: s1-3\nevent: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', id: pendingId, result: { content: [{ type: 'text', text: 'resumed' }] } })}\n\n`);
      return; // left open, as the conformance mock does
    }
    if (req.method === 'DELETE') {
      res.writeHead(200).end();
      return;
    }
    const msg = JSON.parse(entry.body) as { id?: JsonRpcId; method?: string };
    if (msg.method === 'initialize') {
      res.writeHead(200, { 'content-type': 'application/json', 'mcp-session-id': 'sess-1' });
      res.end(JSON.stringify({ jsonrpc: '2.0', id: msg.id, result: { protocolVersion: '2025-11-25', capabilities: {}, serverInfo: { name: 'raw', version: '1' } } }));
    } else if (msg.method === 'tools/call') {
      pendingId = msg.id;
      res.writeHead(200, { 'content-type': 'text/event-stream', 'mcp-session-id': 'sess-1' });
      const progress = JSON.stringify({ jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 'p', progress: 1 } });
      res.write(withEventIds ? `id: s1-1\nretry: ${retryMs}\ndata: \n\n` : `retry: ${retryMs}\ndata: \n\n`);
      res.write(withEventIds ? `id: s1-2\nevent: message\ndata: ${progress}\n\n` : `event: message\ndata: ${progress}\n\n`);
      setTimeout(() => {
        endedAt = performance.now();
        res.end();
      }, 20);
    } else {
      res.writeHead(202).end();
    }
  });
  return { url, log, postEndedAt: () => endedAt };
}

const resumeGets = (log: Logged[]): Logged[] => log.filter((e) => e.method === 'GET' && e.headers['last-event-id'] !== undefined);

describe('Streamable HTTP resumability', () => {
  it('resumes a broken POST stream by GET + Last-Event-ID exactly after the retry delay (manual clock)', async () => {
    const upstream = await startResumeServer(300);
    const clock = new ManualClock();
    const { transport, rec } = await open({ url: upstream.url, clock });
    await initialize(transport, rec);
    await until(() => upstream.log.some((e) => e.method === 'GET')); // the standalone attempt, refused with 405

    const sent = transport.send({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'test_reconnection', arguments: {} } });
    await until(() => upstream.postEndedAt() !== undefined && clock.pending === 1);
    clock.advance(299);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(resumeGets(upstream.log)).toHaveLength(0); // not early
    clock.advance(1);
    await until(() => resumeGets(upstream.log).length === 1);
    await sent;

    const resume = resumeGets(upstream.log)[0]!;
    expect(resume.headers['last-event-id']).toBe('s1-2');
    expect(resume.headers['mcp-session-id']).toBe('sess-1');
    expect(resume.headers['mcp-protocol-version']).toBe('2025-11-25');
    const onStream = rec.seen.filter((s) => s.context.relatedRequestId === 7);
    expect(onStream.map((s) => ('method' in s.message ? s.message.method : 'response'))).toEqual(['notifications/progress', 'response']);
    expect(resultOf(responseTo(rec, 7))['content']).toEqual([{ type: 'text', text: 'resumed' }]);
    // 405 on the standalone GET means "no stream here": it is not retried.
    expect(upstream.log.filter((e) => e.method === 'GET' && e.headers['last-event-id'] === undefined)).toHaveLength(1);
    expect(transport.stats.restarts).toBe(0);
  });

  it('reconnects no earlier than retry and well under a second late (real clock)', async () => {
    const upstream = await startResumeServer(300);
    const { transport, rec } = await open({ url: upstream.url, openStandaloneStream: false });
    await initialize(transport, rec);
    await transport.send({ jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'test_reconnection', arguments: {} } });
    const waited = resumeGets(upstream.log)[0]!.at - upstream.postEndedAt()!;
    expect(waited).toBeGreaterThanOrEqual(295);
    expect(waited).toBeLessThan(1000);
    expect(responseTo(rec, 3)?.context.relatedRequestId).toBe(3);
  });

  it('fails the request when a stream without event ids ends before the response', async () => {
    const upstream = await startResumeServer(300, false);
    const { transport, rec } = await open({ url: upstream.url, openStandaloneStream: false });
    await initialize(transport, rec);
    await expect(transport.send({ jsonrpc: '2.0', id: 4, method: 'tools/call', params: { name: 'x', arguments: {} } }))
      .rejects.toMatchObject({ code: 'UPSTREAM_UNAVAILABLE', message: 'response stream ended before the response' });
    expect(resumeGets(upstream.log)).toHaveLength(0);
  });

  it('reconnects a dropped standalone GET stream after retry with Last-Event-ID, counting restarts', async () => {
    const upstream = await listen((req, res, entry) => {
      if (req.method === 'GET') {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        const resumed = req.headers['last-event-id'] !== undefined;
        const note = JSON.stringify({ jsonrpc: '2.0', method: resumed ? 'notifications/resources/list_changed' : 'notifications/tools/list_changed' });
        res.write(resumed ? `id: g3\ndata: ${note}\n\n` : `id: g1\nretry: 200\ndata: \n\nid: g2\ndata: ${note}\n\n`);
        if (!resumed) res.end(); // the first stream drops; the resumed one stays open
        return;
      }
      if (req.method === 'DELETE') {
        res.writeHead(200).end();
        return;
      }
      const msg = JSON.parse(entry.body) as { id?: JsonRpcId; method?: string };
      if (msg.method === 'initialize') {
        res.writeHead(200, { 'content-type': 'application/json', 'mcp-session-id': 'sess-g' });
        res.end(JSON.stringify({ jsonrpc: '2.0', id: msg.id, result: { protocolVersion: '2025-11-25', capabilities: {}, serverInfo: { name: 'raw', version: '1' } } }));
      } else {
        res.writeHead(202).end();
      }
    });
    const clock = new ManualClock();
    const { transport, rec } = await open({ url: upstream.url, clock });
    await initialize(transport, rec);
    await until(() => rec.seen.length === 2 && clock.pending === 1);
    expect(transport.stats.restarts).toBe(0);
    clock.advance(200);
    await until(() => rec.seen.length === 3);
    const gets = upstream.log.filter((e) => e.method === 'GET');
    expect(gets.map((g) => g.headers['last-event-id'])).toEqual([undefined, 'g2']);
    expect(gets[1]!.headers['mcp-session-id']).toBe('sess-g');
    expect(rec.seen.slice(1).map((s) => [('method' in s.message ? s.message.method : ''), s.context.relatedRequestId])).toEqual([
      ['notifications/tools/list_changed', undefined],
      ['notifications/resources/list_changed', undefined],
    ]);
    expect(transport.stats.restarts).toBe(1);
  });
});
