/**
 * The agent-facing HTTP listener: one node:http (or node:https, with `listener.tls`) server, a
 * small fixed route table, the Host/Origin guard, authentication, and the single place where a
 * failure becomes an HTTP answer.
 *
 * Routes, in order: `/healthz`, `/readyz` (open); the authorization server's own paths (open,
 * it authenticates its clients itself); the upstream connect pages under `/upstream-auth/`
 * (open, they verify the browser's user themselves); Protected Resource Metadata (open, RFC 9728); then the
 * MCP endpoints, each only after authentication: `<path>` and `<path>/<toolset>` (Streamable
 * HTTP), `/sse[/<toolset>]` and `/messages` (legacy HTTP+SSE).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TlsOptions } from 'node:tls';
import { GatehouseError, toGatehouseError } from '../protocol/errors.ts';
import type { Authenticator } from '../auth/authenticate.ts';
import type { Principal } from '../auth/principal.ts';
import { metadataTarget } from '../auth/protected-resource.ts';
import { buildOriginPolicy, checkHost, checkOrigin, readBody, type OriginPolicy } from './http-guards.ts';
import { sendHttpError, sendJson } from './http-answers.ts';
import type { StreamableHttpEndpoint } from './streamable-http.ts';
import type { LegacySseEndpoint } from './legacy-sse.ts';

/** The OAuth authorization server's HTTP side: answers its own paths, returns false for others. */
export interface AuthorizationServerRoutes {
  handle(req: IncomingMessage, res: ServerResponse): Promise<boolean>;
}

export interface ListenerDeps {
  streamable: StreamableHttpEndpoint;
  legacySse: LegacySseEndpoint;
  authenticator: Authenticator;
  /** Mounted before the MCP routes when present (`auth.mode: oauth`). */
  authorizationServer?(): AuthorizationServerRoutes | undefined;
  /** The upstream connect pages (`/upstream-auth/…`, browser pages that authenticate the browser themselves). */
  upstreamAuth?(): AuthorizationServerRoutes | undefined;
  /** The Protected Resource Metadata document of an endpoint (undefined: not served). */
  protectedResource(toolset: string | undefined): Record<string, unknown> | undefined;
  /** Current listener settings (from the snapshot). */
  settings(): { path: string; legacySse: boolean; allowedHosts: readonly string[]; allowedOrigins: readonly string[] };
  hasToolset(name: string): boolean;
  /** Whether `principal` may see the toolset endpoint; another tenant's toolset answers 404. */
  isToolsetVisible(name: string, principal: Principal): boolean;
  health(): { ready: boolean; body: unknown };
  /** Failures that are the gateway's fault, for the log (with correlation id). */
  onInternalError(error: GatehouseError): void;
  /** A credential refused (debug log: the reason, never the credential). */
  onAuthRefused?(error: GatehouseError): void;
  /**
   * A request to an MCP endpoint refused before it became a call (malformed, bad headers,
   * unknown session, wrong Origin, no credential …): audited before the refusal is sent, with
   * the principal when authentication had passed. Never throws.
   */
  onRejected?(error: GatehouseError, facts: { sessionId: string | undefined; bytesIn: number; transport: string; principal: Principal | undefined }): Promise<void>;
}

export class HttpListener {
  private readonly deps: ListenerDeps;
  private server: Server | undefined;
  private policy: OriginPolicy | undefined;
  private port = 0;
  private tls = false;

  constructor(deps: ListenerDeps) {
    this.deps = deps;
  }

  /** Whether the listener serves HTTPS. */
  get secure(): boolean {
    return this.tls;
  }

  /** Bind; resolves with the bound port (config port 0 picks a free one). With `tls`, HTTPS. */
  listen(host: string, port: number, tls?: TlsOptions): Promise<number> {
    const handler = (req: IncomingMessage, res: ServerResponse): void => void this.route(req, res);
    const options = { requestTimeout: 0, keepAliveTimeout: 65_000 };
    const server = tls === undefined ? createServer(options, handler) : createHttpsServer({ ...options, ...tls }, handler);
    this.tls = tls !== undefined;
    this.server = server;
    // Small JSON-RPC frames: send them now rather than waiting for Nagle.
    server.on(tls === undefined ? 'connection' : 'secureConnection', (socket: import('node:net').Socket) => socket.setNoDelay(true));
    // A failed TLS handshake (no or bad client certificate with requireClientCert) is the client's
    // problem: the socket is closed by node; nothing to log per attempt.
    if (tls !== undefined) server.on('tlsClientError', () => undefined);
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        this.port = (server.address() as AddressInfo).port;
        this.refreshPolicy();
        resolve(this.port);
      });
    });
  }

  /** Re-read allowed hosts and origins after a config swap. */
  refreshPolicy(): void {
    const s = this.deps.settings();
    this.policy = buildOriginPolicy(this.port, s.allowedHosts, s.allowedOrigins, this.tls);
  }

  /** Stop accepting, and close idle and open connections. */
  close(): Promise<void> {
    const server = this.server;
    if (server === undefined) return Promise.resolve();
    return new Promise((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let transport: string | undefined;
    let principal: Principal | undefined;
    try {
      const url = new URL(req.url ?? '/', 'http://gateway.invalid');
      const path = url.pathname;
      const settings = this.deps.settings();
      const base = settings.path;
      if (path === '/healthz') {
        sendJson(res, 200, { status: 'ok' });
        return;
      }
      if (path === '/readyz') {
        const health = this.deps.health();
        sendJson(res, health.ready ? 200 : 503, health.body);
        return;
      }
      // DNS-rebinding protection for every route below; Origin is checked per route, since the
      // authorization server and the metadata serve browsers of other origins.
      checkHost(req, this.policy!);
      const as = this.deps.authorizationServer?.();
      if (as !== undefined && (await as.handle(req, res))) return;
      const connect = this.deps.upstreamAuth?.();
      if (connect !== undefined && (await connect.handle(req, res))) return;
      const prm = metadataTarget(path, base);
      if (prm !== undefined) return this.metadata(req, res, prm.toolset);

      if (path === base || path.startsWith(`${base}/`)) transport = 'streamable-http';
      else if (path === '/sse' || path.startsWith('/sse/') || path === '/messages') transport = 'sse';
      else throw new GatehouseError('NOT_FOUND', 'Unknown endpoint');
      checkOrigin(req, this.policy!);
      if (transport === 'sse' && !settings.legacySse) throw new GatehouseError('NOT_FOUND', 'Unknown endpoint');
      await this.refuseFormToken(req);
      const toolset = this.toolsetOf(path, base, url);
      principal = await this.deps.authenticator.authenticate(req, url, toolset);
      if (toolset !== undefined && (!this.deps.hasToolset(toolset) || !this.deps.isToolsetVisible(toolset, principal))) {
        // Another tenant's toolset looks exactly like one that does not exist.
        throw new GatehouseError('NOT_FOUND', 'Unknown endpoint');
      }
      if (transport === 'streamable-http') return await this.deps.streamable.handle(req, res, toolset, principal);
      if (path === '/messages') return await this.deps.legacySse.message(req, res, url, principal);
      return this.deps.legacySse.open(req, res, '/messages', toolset, principal);
    } catch (err) {
      const error = toGatehouseError(err);
      // AUTH_UNAVAILABLE is the gateway's problem too (its key or revocation store failed).
      if (error.code === 'INTERNAL' || error.code === 'AUTH_UNAVAILABLE') this.deps.onInternalError(error);
      if (error.code === 'INVALID_TOKEN') this.deps.onAuthRefused?.(error);
      if (transport !== undefined && this.deps.onRejected !== undefined && !res.headersSent) {
        const sid = req.headers['mcp-session-id'] ?? new URL(req.url ?? '/', 'http://gateway.invalid').searchParams.get('sessionId') ?? undefined;
        const length = Number(req.headers['content-length']);
        await this.deps.onRejected(error, { sessionId: typeof sid === 'string' ? sid : undefined, bytesIn: Number.isFinite(length) ? length : 0, transport, principal });
      }
      sendHttpError(res, error);
    }
  }

  /**
   * The toolset whose resource a request addresses: `/mcp/<t>`, `/sse/<t>`, and for
   * `/messages` the toolset of the session it names (the token's audience must match the
   * endpoint the session was opened on).
   */
  private toolsetOf(path: string, base: string, url: URL): string | undefined {
    if (path.startsWith(`${base}/`)) return path.slice(base.length + 1);
    if (path.startsWith('/sse/')) return path.slice(5);
    if (path === '/messages') return this.deps.legacySse.toolsetOfSession(url.searchParams.get('sessionId'));
    return undefined;
  }

  /**
   * RFC 6750 §2.2 form-encoded tokens are not accepted (bearer_methods_supported: header). MCP
   * bodies are JSON, so a form body is refused either way; one carrying a token says why.
   */
  private async refuseFormToken(req: IncomingMessage): Promise<void> {
    const type = req.headers['content-type']?.split(';')[0]?.trim().toLowerCase();
    if (type !== 'application/x-www-form-urlencoded' || !this.deps.authenticator.enabled) return;
    const body = await readBody(req, 64 * 1024);
    if (new URLSearchParams(body).has('access_token')) {
      throw new GatehouseError('TOKEN_IN_QUERY', 'Access tokens are accepted in the Authorization header only');
    }
    throw new GatehouseError('UNSUPPORTED_MEDIA_TYPE', 'Content-Type must be application/json');
  }

  /** RFC 9728 §3.1: GET only; public, so any origin may read it (browser-based agents). */
  private metadata(req: IncomingMessage, res: ServerResponse, toolset: string | undefined): void {
    if (req.method !== 'GET' && req.method !== 'HEAD') throw new GatehouseError('METHOD_NOT_ALLOWED', `${req.method} is not allowed`, { headers: { allow: 'GET' } });
    const document = toolset !== undefined && !this.deps.hasToolset(toolset) ? undefined : this.deps.protectedResource(toolset);
    if (document === undefined) throw new GatehouseError('NOT_FOUND', 'Unknown endpoint');
    sendJson(res, 200, document, { 'access-control-allow-origin': '*', 'cache-control': 'max-age=300' });
  }
}
