/**
 * The load client's MCP side: Streamable HTTP (2025-11-25 sessions) over one undici Pool with
 * keep-alive. Answers may come as application/json or as an SSE stream (the SDK-based peers
 * answer that way); both are parsed and every tools/call result is checked.
 */
import { Pool } from 'undici';

export const PROTOCOL_VERSION = '2025-11-25';
const CALL_TIMEOUT_MS = 30_000;

export interface McpSession {
  /** Undefined when the server is stateless and gave none. */
  id: string | undefined;
  headers: Record<string, string>;
  /** initialize + notifications/initialized, ms. */
  setupMs: number;
}

export interface Answer {
  status: number;
  sessionId: string | undefined;
  /** The JSON-RPC response with the id asked for, if any. */
  message: Record<string, unknown> | undefined;
}

function header(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** Find the response with `id` in an SSE body (events separated by blank lines). */
function fromSse(text: string, id: number): Record<string, unknown> | undefined {
  for (const block of text.split(/\r?\n\r?\n/)) {
    let data = '';
    for (const line of block.split(/\r?\n/)) if (line.startsWith('data:')) data += line.slice(line.charAt(5) === ' ' ? 6 : 5);
    if (data === '') continue;
    const message = JSON.parse(data) as Record<string, unknown>;
    if (message['id'] === id) return message;
  }
  return undefined;
}

export class McpHttpClient {
  readonly url: URL;
  private readonly pool: Pool;
  private nextId = 1;
  /** Sent with every request (the gateway's credential, when the path needs one). */
  private readonly baseHeaders: Record<string, string>;

  constructor(url: string, connections: number, headers: Record<string, string> = {}) {
    this.url = new URL(url);
    this.baseHeaders = headers;
    this.pool = new Pool(this.url.origin, {
      connections,
      pipelining: 1,
      keepAliveTimeout: 60_000,
      headersTimeout: CALL_TIMEOUT_MS,
      bodyTimeout: CALL_TIMEOUT_MS,
    });
  }

  /** POST one JSON-RPC message and read the whole answer. */
  async post(body: string, id: number | undefined, headers: Record<string, string>): Promise<Answer> {
    const res = await this.pool.request({
      path: this.url.pathname,
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...this.baseHeaders, ...headers },
      body,
    });
    const text = await res.body.text();
    const sessionId = header(res.headers['mcp-session-id']);
    if (id === undefined || text === '') return { status: res.statusCode, sessionId, message: undefined };
    const type = header(res.headers['content-type']) ?? '';
    const message = type.startsWith('text/event-stream') ? fromSse(text, id) : (JSON.parse(text) as Record<string, unknown>);
    return { status: res.statusCode, sessionId, message };
  }

  /** initialize, then notifications/initialized: one legacy session. */
  async openSession(): Promise<McpSession> {
    const started = performance.now();
    const id = this.nextId++;
    const init = JSON.stringify({
      jsonrpc: '2.0',
      id,
      method: 'initialize',
      params: { protocolVersion: PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: 'gatehouse-bench', version: '1.0.0' } },
    });
    const answer = await this.post(init, id, {});
    if (answer.status !== 200 || answer.message === undefined || !('result' in answer.message)) {
      throw new Error(`initialize failed: HTTP ${answer.status} ${JSON.stringify(answer.message)?.slice(0, 300)}`);
    }
    const headers: Record<string, string> = { 'mcp-protocol-version': PROTOCOL_VERSION };
    if (answer.sessionId !== undefined) headers['mcp-session-id'] = answer.sessionId;
    const note = await this.post(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }), undefined, headers);
    if (note.status !== 202 && note.status !== 200) throw new Error(`notifications/initialized: HTTP ${note.status}`);
    return { id: answer.sessionId, headers, setupMs: performance.now() - started };
  }

  /** One request; throws on a transport failure or a JSON-RPC error. */
  async request(session: McpSession, method: string, params: unknown): Promise<Record<string, unknown>> {
    const id = this.nextId++;
    const answer = await this.post(JSON.stringify({ jsonrpc: '2.0', id, method, params }), id, session.headers);
    const result = answer.message?.['result'];
    if (answer.status !== 200 || result === undefined) throw new Error(`${method}: HTTP ${answer.status} ${JSON.stringify(answer.message)?.slice(0, 300)}`);
    return result as Record<string, unknown>;
  }

  /**
   * tools/call of the echo tool; resolves true when the result is a text of `size` bytes.
   * The body is built by string concatenation: the client's cost should not depend on size.
   */
  async callEcho(session: McpSession, size: number): Promise<boolean> {
    const id = this.nextId++;
    const body = `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":{"name":"echo","arguments":{"size":${size}}}}`;
    const answer = await this.post(body, id, session.headers);
    if (answer.status !== 200) return false;
    const result = answer.message?.['result'] as { content?: Array<{ text?: unknown }>; isError?: unknown } | undefined;
    const text = result?.content?.[0]?.text;
    return result?.isError !== true && typeof text === 'string' && text.length === size;
  }

  /** Open the standalone GET stream and leave it open; returns a closer. */
  async openStream(session: McpSession): Promise<{ status: number; close(): void }> {
    const res = await this.pool.request({
      path: this.url.pathname,
      method: 'GET',
      headers: { accept: 'text/event-stream', ...this.baseHeaders, ...session.headers },
      bodyTimeout: 0,
    });
    res.body.on('data', () => undefined);
    res.body.on('error', () => undefined);
    return { status: res.statusCode, close: () => res.body.destroy() };
  }

  /** End a session (DELETE); failures are ignored: the server may not support it. */
  async closeSession(session: McpSession): Promise<void> {
    if (session.id === undefined) return;
    try {
      const res = await this.pool.request({ path: this.url.pathname, method: 'DELETE', headers: { ...this.baseHeaders, ...session.headers }, headersTimeout: 5_000, bodyTimeout: 5_000 });
      await res.body.text();
    } catch {
      // best effort
    }
  }

  async close(): Promise<void> {
    await this.pool.destroy();
  }
}
