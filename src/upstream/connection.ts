/**
 * One live connection to a target, over any transport. It runs the handshake (handshake.ts)
 * and owns request-id remapping, progress-token remapping, timeouts and cancellation,
 * and routing of server→client traffic back to the call that caused it.
 *
 * State machine (docs/upstream-connection.md): idle → connecting → ready ⇄ reconnecting → closed.
 */
import type { Clock } from '../clock.ts';
import { GatehouseError } from '../protocol/errors.ts';
import { META_PROTOCOL_VERSION } from '../protocol/eras.ts';
import {
  isRequest,
  isResponse,
  metaOf,
  type JsonObject,
  type JsonRpcMessage,
  type JsonRpcNotification,
  type JsonRpcRequest,
  type JsonRpcResponse,
} from '../protocol/jsonrpc.ts';
import type { CallSink } from '../pipeline/call-context.ts';
import type { InboundContext, UpstreamTransport } from './transport.ts';
import { modernMeta, performHandshake, type ServerFacts } from './handshake.ts';

export type { ServerFacts };

export type ConnectionState = 'idle' | 'connecting' | 'ready' | 'reconnecting' | 'closed';

export interface ConnectionOptions {
  target: string;
  transport: UpstreamTransport;
  era: 'auto' | 'modern' | 'legacy';
  connectTimeoutMs: number;
  clock: Clock;
  /** Unsolicited notifications (list_changed, resources/updated, unattributed log lines). */
  onNotification(message: JsonRpcNotification): void;
  /** State changes, after a (re)handshake completes or the link drops. */
  onStateChange(state: ConnectionState, facts: ServerFacts | undefined): void;
  onDiagnostic(line: string): void;
}

export interface OutboundRequest {
  method: string;
  params: JsonObject | undefined;
  /** Where related notifications and server→client requests go. */
  sink?: CallSink | undefined;
  /** Abort sends `notifications/cancelled` upstream and rejects with `signal.reason`. */
  signal?: AbortSignal | undefined;
  /** Extra transport headers for this request (see SendOptions.headers). */
  headers?: Readonly<Record<string, string>> | undefined;
  /**
   * A long-lived `subscriptions/listen` request rather than a call: it never counts as the
   * one call in flight, so it cannot capture another call's unattributed traffic.
   */
  subscription?: boolean | undefined;
}

interface Pending {
  readonly id: number;
  readonly sink: CallSink | undefined;
  readonly progressToken: string | number | undefined;
  readonly upstreamToken: string | undefined;
  readonly subscription: boolean;
  resolve(response: JsonRpcResponse): void;
  reject(error: Error): void;
}

export class UpstreamConnection {
  readonly target: string;
  private readonly options: ConnectionOptions;
  private readonly transport: UpstreamTransport;
  private stateValue: ConnectionState = 'idle';
  private factsValue: ServerFacts | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly byProgressToken = new Map<string, Pending>();
  private readyWaiters: Array<{ resolve(): void; reject(e: Error): void }> = [];
  private closing: Promise<void> | undefined;
  private readonly closedListeners: Array<() => void> = [];

  constructor(options: ConnectionOptions) {
    this.options = options;
    this.target = options.target;
    this.transport = options.transport;
  }

  get state(): ConnectionState {
    return this.stateValue;
  }

  get facts(): ServerFacts | undefined {
    return this.factsValue;
  }

  get transportKind(): UpstreamTransport['kind'] {
    return this.transport.kind;
  }

  get inFlight(): number {
    return this.pending.size;
  }

  get stats(): UpstreamTransport['stats'] {
    return this.transport.stats;
  }

  /** Start the transport and complete the handshake. */
  async start(): Promise<ServerFacts> {
    if (this.stateValue !== 'idle') throw new Error(`connection to ${this.target} already started`);
    this.setState('connecting');
    await this.transport.start({
      onMessage: (message, context) => this.receive(message, context),
      onDisconnect: (error, willRestart) => this.lost(error, willRestart),
      onConnect: () => {
        if (this.stateValue === 'reconnecting') void this.rehandshake();
      },
      onDiagnostic: (line) => this.options.onDiagnostic(line),
    });
    try {
      await this.handshake();
    } catch (err) {
      await this.close();
      throw err;
    }
    return this.factsValue!;
  }

  /** Send a request upstream and resolve with its response (upstream id). */
  async request(req: OutboundRequest): Promise<JsonRpcResponse> {
    if (this.stateValue !== 'ready') await this.whenReady();
    return this.send(req);
  }

  /** Send a notification upstream (best effort). */
  async notify(method: string, params?: JsonObject): Promise<void> {
    if (this.stateValue !== 'ready') return;
    await this.transport.send(params === undefined ? { jsonrpc: '2.0', method } : { jsonrpc: '2.0', method, params });
  }

  /** Close for good: pending calls fail, the transport stops. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.setState('closed');
      this.failAll(new GatehouseError('UPSTREAM_UNAVAILABLE', `upstream ${this.target} closed`));
      for (const waiter of this.readyWaiters.splice(0)) waiter.reject(new GatehouseError('UPSTREAM_UNAVAILABLE', `upstream ${this.target} closed`));
      await this.transport.close();
    })();
    return this.closing;
  }

  /** Run `listener` once the connection is closed for good (the registry forgets it then). */
  onClosed(listener: () => void): void {
    if (this.stateValue === 'closed') listener();
    else this.closedListeners.push(listener);
  }

  private setState(state: ConnectionState): void {
    if (this.stateValue === 'closed' && state !== 'closed') return;
    const wasClosed = this.stateValue === 'closed';
    this.stateValue = state;
    if (state === 'ready') for (const waiter of this.readyWaiters.splice(0)) waiter.resolve();
    this.options.onStateChange(state, this.factsValue);
    if (state === 'closed' && !wasClosed) for (const listener of this.closedListeners.splice(0)) listener();
  }

  private whenReady(): Promise<void> {
    if (this.stateValue === 'closed' || this.stateValue === 'idle') {
      return Promise.reject(new GatehouseError('UPSTREAM_UNAVAILABLE', `upstream ${this.target} is not connected`));
    }
    return new Promise((resolve, reject) => {
      const timer = this.options.clock.setTimeout(() => {
        this.readyWaiters = this.readyWaiters.filter((w) => w !== waiter);
        reject(new GatehouseError('UPSTREAM_UNAVAILABLE', `upstream ${this.target} is reconnecting`));
      }, this.options.connectTimeoutMs);
      const waiter = {
        resolve: () => {
          this.options.clock.clearTimeout(timer);
          resolve();
        },
        reject: (e: Error) => {
          this.options.clock.clearTimeout(timer);
          reject(e);
        },
      };
      this.readyWaiters.push(waiter);
    });
  }

  private async handshake(): Promise<void> {
    this.factsValue = await performHandshake(
      {
        target: this.target,
        clock: this.options.clock,
        transport: this.transport,
        request: (method, params, signal) => this.send({ method, params, signal }),
      },
      this.options.era,
      this.options.connectTimeoutMs,
    );
    this.setState('ready');
  }

  private async rehandshake(): Promise<void> {
    try {
      await this.handshake();
    } catch (err) {
      this.options.onDiagnostic(`handshake after reconnect failed: ${(err as Error).message}`);
    }
  }

  private send(req: OutboundRequest): Promise<JsonRpcResponse> {
    const { signal } = req;
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    const id = this.nextId++;
    let params = req.params;
    let progressToken: string | number | undefined;
    let upstreamToken: string | undefined;
    const meta = metaOf(params);
    const token = meta?.['progressToken'];
    if (typeof token === 'string' || typeof token === 'number') {
      // Two agents may both use token 1: the upstream sees a token unique to this connection.
      progressToken = token;
      upstreamToken = `gh-${id}`;
      params = { ...params, _meta: { ...meta, progressToken: upstreamToken } };
    }
    if (this.factsValue?.era === 'modern' && !meta?.[META_PROTOCOL_VERSION]) {
      params = { ...params, _meta: { ...metaOf(params), ...modernMeta() } };
    }
    const message: JsonRpcRequest = params === undefined ? { jsonrpc: '2.0', id, method: req.method } : { jsonrpc: '2.0', id, method: req.method, params };

    return new Promise<JsonRpcResponse>((resolve, reject) => {
      const onAbort = (): void => {
        if (!this.pending.has(id)) return;
        this.forget(entry);
        // 2025-11-25 cancellation: tell the upstream to stop; its late response is dropped.
        void this.notify('notifications/cancelled', { requestId: id, reason: String((abortReason(signal!) as Error).message) }).catch(() => undefined);
        reject(abortReason(signal!));
      };
      const entry: Pending = {
        id,
        sink: req.sink,
        progressToken,
        upstreamToken,
        subscription: req.subscription === true,
        resolve: (response) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(response);
        },
        reject: (error) => {
          signal?.removeEventListener('abort', onAbort);
          reject(error);
        },
      };
      this.pending.set(id, entry);
      if (upstreamToken !== undefined) this.byProgressToken.set(upstreamToken, entry);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.transport.send(message, signal || req.headers ? { signal, headers: req.headers } : undefined).catch((err: unknown) => {
        if (!this.pending.has(id)) return;
        this.forget(entry);
        entry.reject(err instanceof GatehouseError ? err : new GatehouseError('UPSTREAM_UNAVAILABLE', `send to ${this.target} failed`, { cause: err }));
      });
    });
  }

  private forget(entry: Pending): void {
    this.pending.delete(entry.id);
    if (entry.upstreamToken !== undefined) this.byProgressToken.delete(entry.upstreamToken);
  }

  private lost(error: Error, willRestart: boolean): void {
    this.failAll(new GatehouseError('UPSTREAM_UNAVAILABLE', `upstream ${this.target} disconnected: ${error.message}`));
    if (this.stateValue !== 'closed') this.setState(willRestart ? 'reconnecting' : 'closed');
  }

  private failAll(error: GatehouseError): void {
    const entries = [...this.pending.values()];
    this.pending.clear();
    this.byProgressToken.clear();
    for (const entry of entries) entry.reject(error);
  }

  private receive(message: JsonRpcMessage, context: InboundContext): void {
    if (isResponse(message)) {
      const id = message.id;
      const entry = typeof id === 'number' ? this.pending.get(id) : undefined;
      if (entry === undefined) return; // late answer to a cancelled or timed-out call
      this.forget(entry);
      entry.resolve(message);
      return;
    }
    if (isRequest(message)) {
      void this.serveServerRequest(message, context);
      return;
    }
    this.routeNotification(message, context);
  }

  /** The call a server-originated message belongs to, when it can be known. */
  private attribute(context: InboundContext): Pending | undefined {
    if (context.relatedRequestId !== undefined) {
      return typeof context.relatedRequestId === 'number' ? this.pending.get(context.relatedRequestId) : undefined;
    }
    // Transports that cannot tell (stdio, standalone streams): attribute only when exactly one
    // call is in flight. Anything else could hand one agent's traffic to another.
    let only: Pending | undefined;
    for (const entry of this.pending.values()) {
      if (entry.subscription) continue;
      if (only !== undefined) return undefined;
      only = entry;
    }
    return only?.sink ? only : undefined;
  }

  private routeNotification(message: JsonRpcNotification, context: InboundContext): void {
    if (message.method === 'notifications/progress') {
      const token = message.params?.['progressToken'];
      const entry = typeof token === 'string' ? this.byProgressToken.get(token) : undefined;
      if (entry?.sink && entry.progressToken !== undefined) {
        entry.sink.notify({ jsonrpc: '2.0', method: message.method, params: { ...message.params, progressToken: entry.progressToken } });
      }
      return;
    }
    if (message.method === 'notifications/message') {
      const entry = this.attribute(context);
      if (entry?.sink) entry.sink.notify(message);
      else this.options.onNotification(message);
      return;
    }
    if (context.relatedRequestId !== undefined && !message.method.endsWith('/list_changed') && message.method !== 'notifications/resources/updated') {
      this.attribute(context)?.sink?.notify(message);
      return;
    }
    this.options.onNotification(message);
  }

  private async serveServerRequest(message: JsonRpcRequest, context: InboundContext): Promise<void> {
    const reply = (body: { result: JsonObject } | { error: { code: number; message: string; data?: unknown } }): Promise<void> =>
      this.transport.send({ jsonrpc: '2.0', id: message.id, ...body } as JsonRpcResponse, { relatedRequestId: message.id }).catch(() => undefined);
    if (message.method === 'ping') {
      await reply({ result: {} });
      return;
    }
    const entry = this.attribute(context);
    if (!entry?.sink) {
      await reply({ error: { code: -32603, message: `Gatehouse cannot tell which agent session ${message.method} is for` } });
      return;
    }
    const controller = new AbortController();
    try {
      const response = await entry.sink.request(message.method, message.params, controller.signal);
      await reply('result' in response ? { result: response.result } : { error: response.error });
    } catch (err) {
      const rpc = err instanceof GatehouseError ? err.toRpcError() : { code: -32603, message: 'agent did not answer' };
      await reply({ error: rpc });
    }
  }
}

function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason : new GatehouseError('REQUEST_CANCELLED', 'request cancelled');
}

