/**
 * Running downstream messages through the gateway, the same for every downstream transport:
 * requests go through the current snapshot's pipeline; `notifications/cancelled` aborts the
 * call it names; an agent's responses complete the server→client requests the gateway sent.
 * Each message ends as exactly one call record.
 */
import type { Clock } from '../clock.ts';
import type { Snapshot } from '../config/snapshot.ts';
import { GatehouseError, toGatehouseError } from '../protocol/errors.ts';
import type { JsonObject, JsonRpcMessage, JsonRpcNotification, JsonRpcRequest, JsonRpcResponse } from '../protocol/jsonrpc.ts';
import type { CallContext, CallSink } from '../pipeline/call-context.ts';
import type { CallTracer } from '../telemetry/tracing.ts';
import { createCallRecord, type CallRecord, type CallRecordListener } from '../telemetry/call-record.ts';
import type { DownstreamSession } from './session.ts';
import { missingCapability } from '../protocol/client-requests.ts';
import { serializeMessage } from '../protocol/jsonrpc.ts';
import type { Principal } from '../auth/principal.ts';

/** Where the messages of one call go: the POST stream, the legacy SSE stream, stdout. */
export interface CallChannel {
  /** Write a notification or server→client request related to the call. */
  write(message: JsonRpcMessage): boolean;
}

/** Where answered calls are audited; the row must be durable before the answer leaves. */
export interface CallAudit {
  recordCall(record: Readonly<CallRecord>, request: JsonRpcRequest, session: DownstreamSession): Promise<void>;
}

export interface CallRunnerDeps {
  snapshot(): Snapshot;
  clock: Clock;
  emit: CallRecordListener;
  audit?: CallAudit | undefined;
  /** Telemetry: starts each call's span (trace ids go on the record); absent in bare tests. */
  tracer?: CallTracer | undefined;
}

export interface RunOptions {
  bytesIn: number;
  transport: string;
  /** 2026-07-28 HTTP requests: their headers (see CallContext.httpHeaders). */
  httpHeaders?: CallContext['httpHeaders'];
  /**
   * The principal this request authenticated as, when it differs in more than identity from
   * the session's (a refreshed or stepped-up token carries other scopes and roles); the session
   * is bound to the same user, agent and tenant. Defaults to the session's principal.
   */
  principal?: Principal | undefined;
}

export class CallRunner {
  private readonly deps: CallRunnerDeps;

  constructor(deps: CallRunnerDeps) {
    this.deps = deps;
  }

  /**
   * Run one request. Resolves with the response to send, or undefined when the agent
   * cancelled it (the cancelled request gets no response, 2025-11-25 cancellation).
   * `finish` must be called with the bytes written once the response is out.
   */
  async run(session: DownstreamSession, request: JsonRpcRequest, channel: CallChannel, options: RunOptions): Promise<{ response: JsonRpcResponse | undefined; record: CallRecord }> {
    const snapshot = this.deps.snapshot();
    const record = createCallRecord(request.method, request.id, this.deps.clock.now(), options.transport);
    record.sessionId = session.id;
    record.protocolVersion = session.protocolVersion;
    record.toolset = session.toolset;
    record.bytesIn = options.bytesIn;
    const principal = options.principal ?? session.principal;
    if (principal.method !== 'none') {
      record.user = principal.user;
      record.agent = principal.agent;
      record.tenant = principal.tenant;
    }
    // Telemetry: the call's span, continuing the agent's trace; its record subscriber ends it.
    const trace = this.deps.tracer?.startCall(record, request, options.httpHeaders);
    const started = this.deps.clock.monotonic();
    const controller = new AbortController();
    // A duplicate in-flight id would make cancellation ambiguous; the newer call wins the slot.
    session.inFlight.set(request.id, controller);
    const ctx: CallContext = {
      request,
      session,
      principal,
      snapshot,
      record,
      signal: controller.signal,
      sink: this.sinkFor(session, channel),
      clock: this.deps.clock,
      httpHeaders: options.httpHeaders,
      trace,
    };
    try {
      const response = await snapshot.pipeline.run(ctx);
      record.latencyMs = this.deps.clock.monotonic() - started;
      if (controller.signal.aborted) {
        record.outcome = 'cancelled';
        return { response: undefined, record };
      }
      return { response, record };
    } finally {
      if (session.inFlight.get(request.id) === controller) session.inFlight.delete(request.id);
    }
  }

  /**
   * Deliver a call's answer: serialized once, audited, then written by `write`, and the
   * record emitted. The audit row is durable before the first byte of the answer leaves (an
   * answered call without its row is a defect); when it cannot be written the agent gets
   * `audit_unavailable` instead of the answer. `write` gets the body (undefined for a call
   * the agent cancelled) and the final response, and returns the bytes it wrote.
   */
  async deliver(
    session: DownstreamSession,
    request: JsonRpcRequest,
    record: CallRecord,
    response: JsonRpcResponse | undefined,
    write: (body: string | undefined, final: JsonRpcResponse | undefined) => number,
  ): Promise<void> {
    let final = response;
    // serializeMessage: an upstream result goes out as the text it came in (protocol/raw-json.ts).
    let body = final === undefined ? undefined : serializeMessage(final);
    record.bytesOut = body === undefined ? 0 : Buffer.byteLength(body);
    if (this.deps.audit !== undefined) {
      try {
        await this.deps.audit.recordCall(record, request, session);
      } catch (err) {
        const error = toGatehouseError(err);
        record.outcome = 'error';
        record.errorType = error.spec.type;
        final = { jsonrpc: '2.0', id: request.id, error: error.toRpcError(session.era) };
        body = JSON.stringify(final);
      }
    }
    const written = write(body, final);
    // The log line counts what went on the wire (SSE framing and notifications included).
    if (written > 0) record.bytesOut = written;
    this.deps.emit(record);
  }

  /** A notification from the agent. */
  notification(session: DownstreamSession, message: JsonRpcNotification, options: RunOptions): void {
    const record = createCallRecord(message.method, undefined, this.deps.clock.now(), options.transport);
    record.sessionId = session.id;
    record.bytesIn = options.bytesIn;
    record.outcome = 'accepted';
    if (message.method === 'notifications/cancelled') {
      const id = message.params?.['requestId'];
      const controller = typeof id === 'string' || typeof id === 'number' ? session.inFlight.get(id) : undefined;
      controller?.abort(new GatehouseError('REQUEST_CANCELLED', 'cancelled by the agent'));
    }
    // notifications/initialized and roots/list_changed need nothing from a shared upstream:
    // roots are asked for per call, through the call's own sink.
    this.deps.emit(record);
  }

  /** An agent's answer to a server→client request the gateway sent it. */
  response(session: DownstreamSession, message: JsonRpcResponse): void {
    if (typeof message.id !== 'string') return;
    const resolve = session.awaitingAgent.get(message.id);
    if (resolve === undefined) return;
    session.awaitingAgent.delete(message.id);
    resolve(message);
  }

  private sinkFor(session: DownstreamSession, channel: CallChannel): CallSink {
    return {
      notify(message) {
        if (message.method === 'notifications/message' && !session.wantsLog(message.params?.['level'])) return;
        channel.write(message);
      },
      request(method: string, params: JsonObject | undefined, signal: AbortSignal) {
        if (session.era === 'modern') {
          return Promise.reject(new GatehouseError('MISSING_CLIENT_CAPABILITY', `${method} cannot be relayed to a ${session.protocolVersion} agent as a server request`));
        }
        const missing = missingCapability(method, session.clientCapabilities);
        if (missing) return Promise.reject(missing);
        const id = session.nextAgentRequestId();
        return new Promise<JsonRpcResponse>((resolve, reject) => {
          const onAbort = (): void => {
            session.awaitingAgent.delete(id);
            reject(new GatehouseError('REQUEST_CANCELLED', `${method} abandoned`));
          };
          signal.addEventListener('abort', onAbort, { once: true });
          session.awaitingAgent.set(id, (response) => {
            signal.removeEventListener('abort', onAbort);
            resolve(response);
          });
          const message: JsonRpcRequest = params === undefined ? { jsonrpc: '2.0', id, method } : { jsonrpc: '2.0', id, method, params };
          if (!channel.write(message)) {
            session.awaitingAgent.delete(id);
            signal.removeEventListener('abort', onAbort);
            reject(new GatehouseError('UPSTREAM_UNAVAILABLE', 'the agent stream is closed'));
          }
        });
      },
    };
  }
}
