/**
 * One downstream session: an `initialize`d legacy session (Mcp-Session-Id, or a legacy SSE
 * connection, or a stdio bridge), or the per-request context of a 2026-07-28 agent. Holds
 * what the agent declared and where unsolicited messages for it go.
 */
import type { JsonObject, JsonRpcId, JsonRpcMessage, JsonRpcResponse } from '../protocol/jsonrpc.ts';
import type { Era } from '../protocol/eras.ts';
import { anonymousPrincipal, type Principal } from '../auth/principal.ts';

export type LogLevel = 'debug' | 'info' | 'notice' | 'warning' | 'error' | 'critical' | 'alert' | 'emergency';

export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'notice', 'warning', 'error', 'critical', 'alert', 'emergency'];

/** Where messages not tied to any call go (legacy GET stream, legacy SSE stream). */
export interface UnsolicitedChannel {
  /** Returns false when the message could not be delivered (no open stream). */
  send(message: JsonRpcMessage): boolean;
}

export interface DownstreamSessionInit {
  id: string;
  era: Era;
  protocolVersion: string;
  transport: 'streamable-http' | 'sse' | 'stdio';
  toolset: string | undefined;
  clientInfo?: JsonObject | undefined;
  clientCapabilities?: JsonObject | undefined;
  /** Who opened the session; it is bound to them (absent: `auth.mode: none`, anonymous). */
  principal?: Principal | undefined;
  now: number;
}

export class DownstreamSession {
  readonly id: string;
  readonly era: Era;
  readonly transport: DownstreamSessionInit['transport'];
  readonly toolset: string | undefined;
  /** The principal the session belongs to: requests presenting another principal are refused. */
  readonly principal: Principal;
  protocolVersion: string;
  clientInfo: JsonObject | undefined;
  clientCapabilities: JsonObject;
  /** Minimum level of `notifications/message` forwarded; undefined until the agent sets one. */
  logLevel: LogLevel | undefined;
  /** Resource URIs this session subscribed to. */
  readonly subscriptions = new Set<string>();
  lastSeen: number;
  closed = false;
  /** Unsolicited messages (list_changed, resources/updated) go here when set. */
  unsolicited: UnsolicitedChannel | undefined;
  /** Calls in flight, by the agent's id: `notifications/cancelled` aborts them. */
  readonly inFlight = new Map<JsonRpcId, AbortController>();
  /** Server→client requests the gateway sent this agent, by the gateway's id. */
  readonly awaitingAgent = new Map<string, (response: JsonRpcResponse) => void>();
  private agentRequestSeq = 0;
  /** Called once when the session ends (DELETE, expiry, transport close). */
  private readonly closeHooks: Array<() => void> = [];

  constructor(init: DownstreamSessionInit) {
    this.id = init.id;
    this.era = init.era;
    this.transport = init.transport;
    this.toolset = init.toolset;
    this.principal = init.principal ?? anonymousPrincipal(undefined);
    this.protocolVersion = init.protocolVersion;
    this.clientInfo = init.clientInfo;
    this.clientCapabilities = init.clientCapabilities ?? {};
    this.lastSeen = init.now;
  }

  /** Whether a `notifications/message` at `level` passes this session's filter. */
  wantsLog(level: unknown): boolean {
    if (this.logLevel === undefined) return this.era === 'legacy';
    const index = LOG_LEVELS.indexOf(level as LogLevel);
    return index === -1 || index >= LOG_LEVELS.indexOf(this.logLevel);
  }

  /** A fresh id for a server→client request to this agent; prefixed so it never collides with agent ids. */
  nextAgentRequestId(): string {
    return `gh-${++this.agentRequestSeq}`;
  }

  onClose(hook: () => void): void {
    if (this.closed) hook();
    else this.closeHooks.push(hook);
  }

  /** End the session; idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.unsolicited = undefined;
    for (const controller of this.inFlight.values()) controller.abort();
    this.inFlight.clear();
    // Upstream requests waiting on this agent get an answer now instead of at their deadline.
    for (const [id, resolve] of this.awaitingAgent) {
      resolve({ jsonrpc: '2.0', id, error: { code: -32603, message: 'the agent session ended' } });
    }
    this.awaitingAgent.clear();
    for (const hook of this.closeHooks.splice(0)) {
      try {
        hook();
      } catch {
        // A failing hook must not keep the others from releasing their resources.
      }
    }
  }
}
