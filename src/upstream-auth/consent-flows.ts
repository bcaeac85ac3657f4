/**
 * The pending per-user authorizations at upstream targets: one consent flow per URL
 * elicitation the gateway hands an agent (2025-11-25 error -32042, or an InputRequiredResult
 * in 2026-07-28). The elicitation URL leads the user's browser to the connect page
 * (connect-routes.ts), which proves who the user is, asks for consent and starts the upstream
 * authorization code flow; the flow ends completed (tokens stored) or declined.
 *
 * In memory, per process: the connect URL must reach the replica that made it. Bounded in count
 * and in time; nothing here is a secret (the elicitation id is an unguessable handle, not a
 * credential: the connect page authenticates the browser itself, MCP "Safe URL Handling").
 */
import { randomBytes } from 'node:crypto';
import type { Clock } from '../clock.ts';
import type { GatehouseConfig } from '../config/schema.ts';
import type { AuthorizationRequiredData } from './upstream-credential.ts';

/** Path prefix of every connect page; the id follows. */
export const CONNECT_PATH = '/upstream-auth/connect/';
/** 128 random bits, base64url: the only shape of an elicitation id. */
export const ELICITATION_ID = /^[A-Za-z0-9_-]{22}$/;

const DEFAULT_TTL_MS = 10 * 60_000;
const DEFAULT_MAX_FLOWS = 10_000;
/** Sessions remembered per flow for the completion notification (one agent rarely holds more). */
const MAX_SESSIONS_PER_FLOW = 16;

export type ConsentFlowStatus = 'pending' | 'completed' | 'declined' | 'expired';

/** What the gateway knows when a call needs a user's upstream authorization. */
export interface ConsentFlowRequest {
  readonly tenant: string;
  readonly user: string;
  /** The agent (OAuth client id) the user is asked to connect the target for. */
  readonly agent: string;
  readonly target: string;
  readonly reason: AuthorizationRequiredData['reason'];
  readonly scopes?: readonly string[] | undefined;
  /** The downstream session that asked, to be told of the completion (`notifications/elicitation/complete`). */
  readonly session?: string | undefined;
}

/** The URL elicitation to send to the agent. */
export interface ConnectElicitation {
  readonly elicitationId: string;
  /** `<publicUrl>/upstream-auth/connect/<elicitationId>`: no user data, not pre-authenticated. */
  readonly url: string;
  readonly message: string;
  /** Milliseconds since the epoch. */
  readonly expiresAt: number;
}

/** One flow as the connect page and the completion listeners see it. */
export interface ConsentFlow extends ConnectElicitation {
  readonly tenant: string;
  readonly user: string;
  readonly agent: string;
  readonly target: string;
  readonly reason: AuthorizationRequiredData['reason'];
  /** Scopes to ask the upstream for; undefined lets the upstream authorizer choose. */
  readonly scopes: readonly string[] | undefined;
  /** Downstream sessions that were handed this elicitation. */
  readonly sessions: readonly string[];
  readonly status: ConsentFlowStatus;
}

export type ConsentFlowListener = (flow: ConsentFlow) => void;

export interface ConsentFlowsOptions {
  clock: Clock;
  /** `auth.publicUrl`, else the listener's own loopback URL; read per flow (the port is known late). */
  publicBase(): string;
  /** The current snapshot's config (target display names). */
  config(): Readonly<GatehouseConfig>;
  ttlMs?: number;
  maxFlows?: number;
  /** A completion listener threw; the others still run. */
  onListenerError?(err: unknown): void;
}

interface FlowRecord {
  readonly elicitationId: string;
  readonly key: string;
  request: Omit<ConsentFlowRequest, 'scopes' | 'session'>;
  scopes: readonly string[] | undefined;
  sessions: string[];
  expiresAt: number;
  outcome: 'completed' | 'declined' | undefined;
}

/** The target's `credentials.displayName`, else its name. */
export function targetDisplayName(config: Readonly<GatehouseConfig>, target: string): string {
  const credentials = Object.hasOwn(config.targets, target) ? config.targets[target]?.credentials : undefined;
  return credentials?.mode === 'user-oauth' && credentials.displayName !== undefined ? credentials.displayName : target;
}

export class ConsentFlows {
  private readonly options: ConsentFlowsOptions;
  private readonly ttlMs: number;
  private readonly maxFlows: number;
  /** Insertion order is expiry order: a flow whose expiry moves is re-inserted. */
  private readonly flows = new Map<string, FlowRecord>();
  /** tenant, user, agent, target → the live flow's id. */
  private readonly live = new Map<string, string>();
  private readonly listeners = new Set<ConsentFlowListener>();

  constructor(options: ConsentFlowsOptions) {
    this.options = options;
    this.ttlMs = options.ttlMs ?? DEFAULT_TTL_MS;
    this.maxFlows = options.maxFlows ?? DEFAULT_MAX_FLOWS;
  }

  /** How long a flow stays open. */
  get ttl(): number {
    return this.ttlMs;
  }

  /**
   * The elicitation for a call that needs the user's authorization at `target`. The live flow
   * of the same tenant, user, agent and target is reused (its URL stays valid for another TTL,
   * and it asks for the union of the scopes), so an agent retrying does not pile up links.
   */
  create(request: ConsentFlowRequest): ConnectElicitation {
    const now = this.options.clock.now();
    this.prune(now);
    const key = [request.tenant, request.user, request.agent, request.target].join('\u0000');
    const existingId = this.live.get(key);
    let record = existingId === undefined ? undefined : this.flows.get(existingId);
    if (record !== undefined && record.outcome === undefined && record.expiresAt > now) {
      record.scopes = mergeScopes(record.scopes, request.scopes);
      // The latest reason is the true one (an operator's link, then a revoked refresh: re-consent).
      record.request = { ...record.request, reason: request.reason };
      this.flows.delete(record.elicitationId);
    } else {
      const { scopes: _scopes, session: _session, ...rest } = request;
      record = { elicitationId: randomBytes(16).toString('base64url'), key, request: rest, scopes: request.scopes === undefined ? undefined : [...new Set(request.scopes)], sessions: [], expiresAt: 0, outcome: undefined };
      this.live.set(key, record.elicitationId);
    }
    record.expiresAt = now + this.ttlMs;
    if (request.session !== undefined && !record.sessions.includes(request.session)) {
      record.sessions.push(request.session);
      if (record.sessions.length > MAX_SESSIONS_PER_FLOW) record.sessions.shift();
    }
    this.flows.set(record.elicitationId, record);
    // Bounded: past the limit the oldest flow goes (its page then answers "unknown"); failing the
    // agent's call instead would let one busy principal block every other user's elicitations.
    while (this.flows.size > this.maxFlows) this.forget(this.flows.keys().next().value!);
    const flow = this.view(record, now);
    return { elicitationId: flow.elicitationId, url: flow.url, message: flow.message, expiresAt: flow.expiresAt };
  }

  /** The flow, expired ones included while they are remembered (one TTL past expiry); undefined when unknown. */
  get(elicitationId: string): ConsentFlow | undefined {
    const record = this.flows.get(elicitationId);
    return record === undefined ? undefined : this.view(record, this.options.clock.now());
  }

  /**
   * Who a flow belongs to while it is live or completed and not yet expired (what a
   * 2026-07-28 retry's `requestState` is checked against); undefined otherwise.
   */
  owner(elicitationId: string): { tenant: string; user: string; agent: string; target: string } | undefined {
    const record = this.flows.get(elicitationId);
    if (record === undefined || record.outcome === 'declined' || record.expiresAt <= this.options.clock.now()) return undefined;
    const { tenant, user, agent, target } = record.request;
    return { tenant, user, agent, target };
  }

  /**
   * End a flow: `completed` (the upstream tokens are stored) or `declined` (the user said no).
   * Listeners are told once. A flow that expired while the user was at the upstream can still
   * complete: the tokens are stored by then. Returns false when the flow is unknown or already ended.
   */
  complete(elicitationId: string, outcome: 'completed' | 'declined' = 'completed'): boolean {
    const record = this.flows.get(elicitationId);
    if (record === undefined || record.outcome !== undefined) return false;
    record.outcome = outcome;
    if (this.live.get(record.key) === elicitationId) this.live.delete(record.key);
    const flow = this.view(record, this.options.clock.now());
    for (const listener of [...this.listeners]) {
      try {
        listener(flow);
      } catch (err) {
        this.options.onListenerError?.(err);
      }
    }
    return true;
  }

  /** Be told when a flow ends (the gateway sends `notifications/elicitation/complete`). Returns the unsubscribe. */
  onComplete(listener: ConsentFlowListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Number of flows remembered (live, ended and recently expired). */
  get size(): number {
    return this.flows.size;
  }

  private view(record: FlowRecord, now: number): ConsentFlow {
    const { request } = record;
    const status: ConsentFlowStatus = record.outcome ?? (record.expiresAt <= now ? 'expired' : 'pending');
    return {
      ...request,
      elicitationId: record.elicitationId,
      url: `${this.options.publicBase().replace(/\/+$/, '')}${CONNECT_PATH}${record.elicitationId}`,
      message: elicitationMessage(targetDisplayName(this.options.config(), request.target), request.reason),
      expiresAt: record.expiresAt,
      scopes: record.scopes,
      sessions: [...record.sessions],
      status,
    };
  }

  /** Drop flows one TTL past their expiry (until then their page says "expired", not "unknown"). */
  private prune(now: number): void {
    for (const [id, record] of this.flows) {
      if (record.expiresAt + this.ttlMs > now) break;
      this.forget(id);
    }
  }

  private forget(id: string): void {
    const record = this.flows.get(id);
    this.flows.delete(id);
    if (record !== undefined && this.live.get(record.key) === id) this.live.delete(record.key);
  }
}

/** The elicitation's `message`: plain text naming the target and why, nothing about the user. */
function elicitationMessage(name: string, reason: AuthorizationRequiredData['reason']): string {
  switch (reason) {
    case 'reconsent':
      return `Your authorization for ${name} has expired or was revoked. Open the link to connect it again, then retry.`;
    case 'step_up':
      return `${name} needs more permissions for this request. Open the link to grant them, then retry.`;
    default:
      return `${name} needs your authorization. Open the link to connect your account, then retry.`;
  }
}

function mergeScopes(current: readonly string[] | undefined, more: readonly string[] | undefined): readonly string[] | undefined {
  if (more === undefined) return current;
  return [...new Set([...(current ?? []), ...more])];
}
