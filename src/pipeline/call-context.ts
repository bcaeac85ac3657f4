/**
 * What a stage sees of one call. Built by the downstream layer per request; read-only except
 * for the call record, which stages fill with facts.
 */
import type { Clock } from '../clock.ts';
import type { JsonObject, JsonRpcNotification, JsonRpcRequest, JsonRpcResponse } from '../protocol/jsonrpc.ts';
import type { CallRecord } from '../telemetry/call-record.ts';
import type { DownstreamSession } from '../downstream/session.ts';
import type { Snapshot } from '../config/snapshot.ts';
import type { CallSpan } from '../telemetry/tracing.ts';
import type { Principal } from '../auth/principal.ts';

/**
 * The downstream side of one call: messages the upstream sends while handling it travel
 * through here to the agent that made the call, and to no other.
 */
export interface CallSink {
  /** A notification related to this call (progress, log message). */
  notify(message: JsonRpcNotification): void;
  /**
   * A server→client request (sampling, elicitation, roots, ping) raised while handling this
   * call. Resolves with the agent's response, id as the agent sent it.
   */
  request(method: string, params: JsonObject | undefined, signal: AbortSignal): Promise<JsonRpcResponse>;
}

export interface CallContext {
  readonly request: JsonRpcRequest;
  readonly session: DownstreamSession;
  /** Who is calling (authentication's verdict for this request); authorization reads it. */
  readonly principal: Principal;
  readonly snapshot: Snapshot;
  readonly record: CallRecord;
  /** Aborted when the agent cancels the call or its stream closes. */
  readonly signal: AbortSignal;
  readonly sink: CallSink;
  readonly clock: Clock;
  /**
   * 2026-07-28 HTTP requests: the request's headers, lower-cased, for the checks that need
   * the catalog (`Mcp-Param-*` against the tool's `x-mcp-header` parameters).
   */
  readonly httpHeaders?: Readonly<Record<string, string | string[] | undefined>> | undefined;
  /** The call's trace span, when tracing is on: forward.ts opens a child per upstream attempt. */
  readonly trace?: CallSpan | undefined;
}
