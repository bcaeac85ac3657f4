/**
 * The agent-facing HTTP listener: one node:http server, a small fixed route table, the
 * Host/Origin guard, and the single place where a failure becomes an HTTP answer.
 *
 * Routes: `<path>` and `<path>/<toolset>` (Streamable HTTP), `/sse[/<toolset>]` and
 * `/messages` (legacy HTTP+SSE), `/healthz`, `/readyz`.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GatehouseError, toGatehouseError } from '../protocol/errors.ts';
import { buildOriginPolicy, checkOrigin, type OriginPolicy } from './http-guards.ts';
import { sendHttpError, sendJson } from './http-answers.ts';
import type { StreamableHttpEndpoint } from './streamable-http.ts';
import type { LegacySseEndpoint } from './legacy-sse.ts';

export interface ListenerDeps {
  streamable: StreamableHttpEndpoint;
  legacySse: LegacySseEndpoint;
  /** Current listener settings (from the snapshot). */
  settings(): { path: string; legacySse: boolean; allowedHosts: readonly string[]; allowedOrigins: readonly string[] };
  hasToolset(name: string): boolean;
  health(): { ready: boolean; body: unknown };
  /** Failures that are the gateway's fault, for the log (with correlation id). */
  onInternalError(error: GatehouseError): void;
  /**
   * A request to an MCP endpoint refused before it became a call (malformed, bad headers,
   * unknown session, wrong Origin …): audited before the refusal is sent. Never throws.
   */
  onRejected?(error: GatehouseError, facts: { sessionId: string | undefined; bytesIn: number; transport: string }): Promise<void>;
}

export class HttpListener {
  private readonly deps: ListenerDeps;
  private readonly server: Server;
  private policy: OriginPolicy | undefined;
  private port = 0;

  constructor(deps: ListenerDeps) {
    this.deps = deps;
    this.server = createServer({ requestTimeout: 0, keepAliveTimeout: 65_000 }, (req, res) => {
      void this.route(req, res);
    });
    // Small JSON-RPC frames: send them now rather than waiting for Nagle.
    this.server.on('connection', (socket) => socket.setNoDelay(true));
  }

  /** Bind; resolves with the bound port (config port 0 picks a free one). */
  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        this.port = (this.server.address() as AddressInfo).port;
        this.refreshPolicy();
        resolve(this.port);
      });
    });
  }

  /** Re-read allowed hosts and origins after a config swap. */
  refreshPolicy(): void {
    const s = this.deps.settings();
    this.policy = buildOriginPolicy(this.port, s.allowedHosts, s.allowedOrigins);
  }

  /** Stop accepting, and close idle and open connections. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let transport: string | undefined;
    try {
      const url = new URL(req.url ?? '/', 'http://gateway.invalid');
      const path = url.pathname;
      const base = this.deps.settings().path;
      if (path === base || path.startsWith(`${base}/`)) transport = 'streamable-http';
      else if (path === '/sse' || path.startsWith('/sse/') || path === '/messages') transport = 'sse';
      if (path === '/healthz') {
        sendJson(res, 200, { status: 'ok' });
        return;
      }
      if (path === '/readyz') {
        const health = this.deps.health();
        sendJson(res, health.ready ? 200 : 503, health.body);
        return;
      }
      checkOrigin(req, this.policy!);
      const settings = this.deps.settings();
      if (path === base) return await this.deps.streamable.handle(req, res, undefined);
      if (path.startsWith(`${base}/`)) {
        const toolset = path.slice(base.length + 1);
        if (!this.deps.hasToolset(toolset)) throw new GatehouseError('NOT_FOUND', 'Unknown endpoint');
        return await this.deps.streamable.handle(req, res, toolset);
      }
      if (settings.legacySse) {
        if (path === '/sse') return this.deps.legacySse.open(req, res, '/messages', undefined);
        if (path.startsWith('/sse/')) {
          const toolset = path.slice(5);
          if (!this.deps.hasToolset(toolset)) throw new GatehouseError('NOT_FOUND', 'Unknown endpoint');
          return this.deps.legacySse.open(req, res, '/messages', toolset);
        }
        if (path === '/messages') return await this.deps.legacySse.message(req, res, url);
      }
      throw new GatehouseError('NOT_FOUND', 'Unknown endpoint');
    } catch (err) {
      const error = toGatehouseError(err);
      if (error.code === 'INTERNAL') this.deps.onInternalError(error);
      if (transport !== undefined && this.deps.onRejected !== undefined && !res.headersSent) {
        const sid = req.headers['mcp-session-id'];
        const length = Number(req.headers['content-length']);
        await this.deps.onRejected(error, { sessionId: typeof sid === 'string' ? sid : undefined, bytesIn: Number.isFinite(length) ? length : 0, transport });
      }
      sendHttpError(res, error);
    }
  }
}
