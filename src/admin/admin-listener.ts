/**
 * The admin listener: a node:http server on its own address (loopback by default, see
 * normalize.ts), separate from the agent listener so operators' endpoints never share a port,
 * a Host/Origin policy or a body limit with agents. Features add routes to its table
 * (`/metrics` and `/slos` today; the audit API and break-glass later).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GatehouseError, toGatehouseError } from '../protocol/errors.ts';
import { buildOriginPolicy, checkOrigin, type OriginPolicy } from '../downstream/http-guards.ts';
import { sendHttpError } from '../downstream/http-answers.ts';

export type AdminMethod = 'GET' | 'POST' | 'PUT' | 'DELETE';

/** One admin endpoint. */
export interface AdminRoute {
  method: AdminMethod;
  /** An exact path (`/metrics`), or a prefix ending in `/*` (`/audit/rows/*`). */
  path: string;
  /** May throw a GatehouseError; it answers as HTTP with that error's status. */
  handle(req: IncomingMessage, res: ServerResponse, url: URL): void | Promise<void>;
}

export interface AdminListenerDeps {
  /** Current admin settings (from the snapshot). */
  settings(): { allowedHosts: readonly string[]; allowedOrigins: readonly string[] };
  /** Failures that are the gateway's fault, for the log (with correlation id). */
  onInternalError(error: GatehouseError): void;
}

export class AdminListener {
  private readonly deps: AdminListenerDeps;
  private readonly server: Server;
  /** path → method → route; prefix routes are kept apart and tried longest first. */
  private readonly exact = new Map<string, Map<AdminMethod, AdminRoute>>();
  private readonly prefixes: Array<{ prefix: string; routes: Map<AdminMethod, AdminRoute> }> = [];
  private policy: OriginPolicy | undefined;
  private portValue = 0;
  private closing: Promise<void> | undefined;

  constructor(deps: AdminListenerDeps) {
    this.deps = deps;
    this.server = createServer({ requestTimeout: 30_000 }, (req, res) => {
      void this.route(req, res);
    });
  }

  get port(): number {
    return this.portValue;
  }

  /** Add a route. Two routes for the same method and path are a programming error. */
  addRoute(route: AdminRoute): void {
    let routes: Map<AdminMethod, AdminRoute>;
    if (route.path.endsWith('/*')) {
      const prefix = route.path.slice(0, -1);
      let entry = this.prefixes.find((p) => p.prefix === prefix);
      if (entry === undefined) {
        entry = { prefix, routes: new Map() };
        this.prefixes.push(entry);
        this.prefixes.sort((a, b) => b.prefix.length - a.prefix.length);
      }
      routes = entry.routes;
    } else {
      routes = this.exact.get(route.path) ?? new Map();
      this.exact.set(route.path, routes);
    }
    if (routes.has(route.method)) throw new Error(`admin route ${route.method} ${route.path} is already registered`);
    routes.set(route.method, route);
  }

  /** Bind; resolves with the bound port (port 0 picks a free one). */
  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        this.portValue = (this.server.address() as AddressInfo).port;
        this.refreshPolicy();
        resolve(this.portValue);
      });
    });
  }

  /** Re-read allowed hosts and origins after a config swap. */
  refreshPolicy(): void {
    const s = this.deps.settings();
    this.policy = buildOriginPolicy(this.portValue, s.allowedHosts, s.allowedOrigins);
  }

  /** Stop accepting and close every connection. Idempotent; a never-bound listener closes at once. */
  close(): Promise<void> {
    this.closing ??= this.server.listening
      ? new Promise<void>((resolve) => {
          this.server.close(() => resolve());
          this.server.closeAllConnections();
        })
      : Promise.resolve();
    return this.closing;
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      // Same DNS-rebinding defence as the agent listener: a page in an operator's browser
      // must not read metrics or, later, audit rows through a rebound name.
      checkOrigin(req, this.policy!);
      const url = new URL(req.url ?? '/', 'http://admin.invalid');
      const routes = this.exact.get(url.pathname) ?? this.prefixes.find((p) => url.pathname.startsWith(p.prefix))?.routes;
      if (routes === undefined) throw new GatehouseError('NOT_FOUND', 'Unknown admin endpoint');
      const route = routes.get(req.method as AdminMethod);
      if (route === undefined) {
        throw new GatehouseError('METHOD_NOT_ALLOWED', `${req.method} is not allowed`, { headers: { allow: [...routes.keys()].join(', ') } });
      }
      await route.handle(req, res, url);
    } catch (err) {
      const error = toGatehouseError(err);
      if (error.code === 'INTERNAL') this.deps.onInternalError(error);
      sendHttpError(res, error);
    }
  }
}
