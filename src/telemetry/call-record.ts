/**
 * The call record: the facts stages write about one downstream message. One record per
 * message is emitted once, at the end; logs (and later audit rows, metrics and traces)
 * subscribe to it instead of being called from stages.
 */
import type { JsonRpcId } from '../protocol/jsonrpc.ts';

export type CallOutcome = 'ok' | 'error' | 'upstream_error' | 'cancelled' | 'accepted';

export interface CallRecord {
  /** Gateway-assigned id of this call, unique across the process. */
  readonly requestId: string;
  /** Id the agent used; absent for notifications. */
  readonly downstreamId: JsonRpcId | undefined;
  readonly method: string;
  readonly startedAt: number;
  sessionId: string | undefined;
  /** `streamable-http`, `sse` or `stdio`: how the agent reached the gateway. */
  downstreamTransport: string;
  protocolVersion: string | undefined;
  toolset: string | undefined;
  /** Exposed tool, prompt or resource name the call was about. */
  name: string | undefined;
  target: string | undefined;
  upstreamTransport: string | undefined;
  upstreamId: JsonRpcId | undefined;
  bytesIn: number;
  bytesOut: number;
  latencyMs: number;
  outcome: CallOutcome;
  errorType: string | undefined;
  /** Set for INTERNAL errors so the log line and the agent's error share it. */
  correlationId: string | undefined;
  /** The principal behind the call: set by authentication (issue 5); the agent is the client's declared name until then. */
  user?: string | undefined;
  agent?: string | undefined;
  tenant?: string | undefined;
  /**
   * Authorization's decision for calls that name a tool, prompt or resource: `would_deny` in
   * observe-only mode. Absent for methods the policy does not judge.
   */
  policyDecision?: 'allow' | 'deny' | 'would_deny' | undefined;
  /** Why it was denied (or would be): short and non-secret, e.g. `no grant for tool x on target y`. */
  policyReason?: string | undefined;
  /** W3C trace context of the call's span, when tracing is on. */
  traceId?: string | undefined;
  spanId?: string | undefined;
}

export type CallRecordListener = (record: Readonly<CallRecord>) => void;

let counter = 0;
const prefix = process.pid.toString(36);

/** A process-unique, cheap request id (no crypto on the hot path). */
export function nextRequestId(): string {
  counter = (counter + 1) % Number.MAX_SAFE_INTEGER;
  return `${prefix}-${counter.toString(36)}`;
}

export function createCallRecord(method: string, downstreamId: JsonRpcId | undefined, startedAt: number, downstreamTransport: string): CallRecord {
  return {
    requestId: nextRequestId(),
    downstreamId,
    method,
    startedAt,
    sessionId: undefined,
    downstreamTransport,
    protocolVersion: undefined,
    toolset: undefined,
    name: undefined,
    target: undefined,
    upstreamTransport: undefined,
    upstreamId: undefined,
    bytesIn: 0,
    bytesOut: 0,
    latencyMs: 0,
    outcome: 'ok',
    errorType: undefined,
    correlationId: undefined,
  };
}
