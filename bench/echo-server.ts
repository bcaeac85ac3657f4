/**
 * The upstream MCP echo server the benchmark drives, on 127.0.0.1 only.
 *
 *   echo-server --stdio
 *   echo-server --http PORT [--variant sdk|sdk-stateless|raw] [--catalog N --tools M]
 *
 * `sdk` (default): @modelcontextprotocol/sdk McpServer + StreamableHTTPServerTransport, one
 * long-lived server per session, JSON responses. `sdk-stateless`: a new server and transport
 * per request (no session ids). `raw`: a hand-written JSON-RPC answerer, no SDK.
 * `--catalog N --tools M` also serves N endpoints `/mcp/t<i>` with M tools each.
 * HTTP mode prints one `LISTENING <url>` line. The harness builds this file into
 * bench/.build/echo-server.mjs so per-session children start without the tsx loader.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { createSdkServer, rawAnswer, rawToolDefinitions } from './echo-tools.ts';

export type EchoVariant = 'sdk' | 'sdk-stateless' | 'raw';

interface Cli {
  mode: 'stdio' | 'http';
  port: number;
  variant: EchoVariant;
  catalog: number;
  tools: number;
}

const MAX_BODY = 8 * 1024 * 1024;

function parseArgs(argv: string[]): Cli {
  const cli: Cli = { mode: 'stdio', port: 0, variant: 'sdk', catalog: 0, tools: 0 };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    if (arg === '--stdio') cli.mode = 'stdio';
    else if (arg === '--http') {
      cli.mode = 'http';
      cli.port = Number(value());
    } else if (arg === '--variant') {
      const v = value();
      if (v !== 'sdk' && v !== 'sdk-stateless' && v !== 'raw') throw new Error('--variant is sdk, sdk-stateless or raw');
      cli.variant = v;
    } else if (arg === '--catalog') cli.catalog = Number(value());
    else if (arg === '--tools') cli.tools = Number(value());
    else throw new Error(`unknown argument ${arg}`);
  }
  return cli;
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) req.destroy(new Error('body too large'));
      else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)), ...headers });
  res.end(text);
}

/** Which catalog a path names: undefined for `/mcp`, null for an unknown path. */
function routeOf(pathname: string, catalogs: number, tools: number): { target: number; count: number } | undefined | null {
  if (pathname === '/mcp') return undefined;
  const m = /^\/mcp\/t(\d+)$/.exec(pathname);
  if (m && Number(m[1]) < catalogs) return { target: Number(m[1]), count: tools };
  return null;
}

function serveHttp(cli: Cli): http.Server {
  const sessions = new Map<string, StreamableHTTPServerTransport>();
  const rawTools = new Map<string, Array<Record<string, unknown>>>();
  return http.createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      const route = routeOf(url.pathname, cli.catalog, cli.tools);
      if (route === null) return sendJson(res, 404, { jsonrpc: '2.0', id: null, error: { code: -32000, message: 'Not found' } });
      const sid = req.headers['mcp-session-id'];
      if (cli.variant === 'raw') {
        if (req.method === 'DELETE') return void res.writeHead(200).end();
        if (req.method !== 'POST') return void res.writeHead(405, { allow: 'POST, DELETE' }).end();
        const message = JSON.parse(await readBody(req)) as Record<string, unknown>;
        let tools = rawTools.get(url.pathname);
        if (tools === undefined) rawTools.set(url.pathname, (tools = rawToolDefinitions(route)));
        const answer = rawAnswer(message, tools);
        if (answer === undefined) return void res.writeHead(202).end();
        const headers: Record<string, string> = message['method'] === 'initialize' ? { 'mcp-session-id': randomUUID() } : {};
        return sendJson(res, 200, answer, headers);
      }
      if (typeof sid === 'string' && cli.variant === 'sdk') {
        const transport = sessions.get(sid);
        if (transport === undefined) return sendJson(res, 404, { jsonrpc: '2.0', id: null, error: { code: -32001, message: 'Session not found' } });
        const body = req.method === 'POST' ? (JSON.parse(await readBody(req)) as unknown) : undefined;
        return transport.handleRequest(req, res, body);
      }
      if (req.method !== 'POST') return void res.writeHead(405, { allow: 'POST' }).end();
      const body = JSON.parse(await readBody(req)) as unknown;
      const stateful = cli.variant === 'sdk';
      const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
        sessionIdGenerator: stateful ? () => randomUUID() : undefined,
        enableJsonResponse: true,
        onsessioninitialized: (id) => {
          sessions.set(id, transport);
        },
      });
      const server = createSdkServer(route);
      // Set before connect: the SDK chains its own close handling onto this one.
      transport.onclose = () => {
        if (transport.sessionId) sessions.delete(transport.sessionId);
      };
      await server.connect(transport);
      await transport.handleRequest(req, res, body);
      if (!stateful) res.on('close', () => void transport.close());
    })().catch((err: unknown) => {
      process.stderr.write(`echo-server: ${(err as Error).stack ?? String(err)}\n`);
      if (!res.headersSent) sendJson(res, 500, { jsonrpc: '2.0', id: null, error: { code: -32603, message: 'Internal error' } });
      else res.end();
    });
  });
}

async function main(): Promise<void> {
  const cli = parseArgs(process.argv.slice(2));
  if (cli.mode === 'stdio') {
    const server = createSdkServer(undefined);
    const stop = (): void => {
      void server.close().finally(() => process.exit(0));
    };
    // The SDK's stdio transport does not notice EOF by itself.
    process.stdin.on('end', stop);
    process.on('SIGTERM', stop);
    await server.connect(new StdioServerTransport());
    return;
  }
  const server = serveHttp(cli);
  server.keepAliveTimeout = 65_000;
  server.on('connection', (socket) => socket.setNoDelay(true));
  process.on('SIGTERM', () => {
    server.closeAllConnections();
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 1_000).unref();
  });
  server.listen(cli.port, '127.0.0.1', () => {
    process.stdout.write(`LISTENING http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp\n`);
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    process.stderr.write(`echo-server failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
