/**
 * The audit trail: one row per answered call, per rejected request and per admin action,
 * built from the facts the call record and the request carry, and handed to the writer.
 * Which user, through which agent, called which tool, with what, and what happened.
 */
import { isPlainObject, type JsonRpcRequest } from '../protocol/jsonrpc.ts';
import type { GatehouseError } from '../protocol/errors.ts';
import type { CallRecord } from '../telemetry/call-record.ts';
import type { DownstreamSession } from '../downstream/session.ts';
import type { CallAudit } from '../downstream/call-runner.ts';
import type { AuditRowInput } from '../storage/store.ts';
import type { AuditWriter } from './audit-writer.ts';
import type { Principal } from '../auth/principal.ts';
import { argumentsHash, canonicalJson } from './canonical-json.ts';
import { redactSecrets } from './redact.ts';

export interface AuditPolicy {
  /** `redacted`: keep the arguments with secrets masked; `hash-only`: keep only their hash. */
  arguments: 'redacted' | 'hash-only';
  /** Extra argument keys (lower-case) to mask, beyond the built-in secret-looking ones. */
  redactKeys: ReadonlySet<string>;
}

/** What a request was "called with": a tool's or prompt's arguments, else its params sans `_meta`. */
function argumentsOf(request: Pick<JsonRpcRequest, 'params'>): unknown {
  const params = request.params;
  if (params === undefined) return undefined;
  if ('arguments' in params) return params['arguments'];
  const { _meta: _drop, ...rest } = params;
  return Object.keys(rest).length > 0 ? rest : undefined;
}

export class AuditTrail implements CallAudit {
  private readonly writer: AuditWriter;
  private readonly policy: () => AuditPolicy;
  private readonly targetVersion: (target: string) => string | null;
  private readonly now: () => number;

  constructor(writer: AuditWriter, policy: () => AuditPolicy, targetVersion: (target: string) => string | null, now: () => number) {
    this.writer = writer;
    this.policy = policy;
    this.targetVersion = targetVersion;
    this.now = now;
  }

  /** Whether a call may run now (see AuditWriter.accepting). */
  get accepting(): boolean {
    return this.writer.accepting;
  }

  recordCall(record: Readonly<CallRecord>, request: JsonRpcRequest, session: DownstreamSession): Promise<void> {
    const args = argumentsOf(request);
    return this.writer.append({
      time: record.startedAt,
      kind: 'call',
      requestId: record.requestId,
      sessionId: record.sessionId ?? null,
      traceId: record.traceId ?? null,
      user: record.user ?? null,
      agent: record.agent ?? declaredAgent(session),
      tenant: record.tenant ?? null,
      target: record.target ?? null,
      tool: record.name ?? null,
      toolVersion: null,
      method: record.method,
      argsHash: argumentsHash(args),
      args: this.storedArguments(args),
      outcome: record.outcome,
      errorType: record.errorType ?? null,
      latencyMs: record.latencyMs,
      bytesIn: wholeBytes(record.bytesIn),
      bytesOut: wholeBytes(record.bytesOut),
      targetVersion: record.target === undefined ? null : this.targetVersion(record.target),
    });
  }

  /**
   * A request refused before it became a call (malformed, bad headers, no credential, unknown
   * session …), with who sent it when authentication had passed (never the credential itself).
   */
  recordRejection(
    error: GatehouseError,
    facts: { requestId: string; method: string | undefined; sessionId: string | undefined; bytesIn: number; transport: string; principal?: Principal | undefined },
  ): Promise<void> {
    const who = facts.principal === undefined || facts.principal.method === 'none' ? undefined : facts.principal;
    return this.writer.append(this.bare('call', facts.requestId, facts.method ?? '(unparsed)', {
      sessionId: facts.sessionId ?? null,
      user: who?.user ?? null,
      agent: who?.agent ?? null,
      tenant: who?.tenant ?? null,
      outcome: 'rejected',
      errorType: error.spec.type,
      bytesIn: wholeBytes(facts.bytesIn),
    }));
  }

  /** An admin action (config reload, and the admin API's actions as they land). */
  recordAdmin(action: string, facts: { requestId: string; user?: string | undefined; outcome: string; errorType?: string | undefined; details?: unknown }): Promise<void> {
    return this.writer.append(this.bare('admin', facts.requestId, action, {
      user: facts.user ?? null,
      tool: action,
      outcome: facts.outcome,
      errorType: facts.errorType ?? null,
      argsHash: argumentsHash(facts.details),
      args: this.storedArguments(facts.details),
    }));
  }

  private bare(kind: AuditRowInput['kind'], requestId: string, method: string, fields: Partial<AuditRowInput>): AuditRowInput {
    return {
      time: this.now(),
      kind,
      requestId,
      sessionId: null,
      traceId: null,
      user: null,
      agent: null,
      tenant: null,
      target: null,
      tool: null,
      toolVersion: null,
      method,
      argsHash: null,
      args: null,
      outcome: 'ok',
      errorType: null,
      latencyMs: 0,
      bytesIn: 0,
      bytesOut: 0,
      targetVersion: null,
      ...fields,
    };
  }

  private storedArguments(args: unknown): string | null {
    const policy = this.policy();
    if (args === undefined || policy.arguments === 'hash-only') return null;
    return canonicalJson(redactSecrets(args, policy.redactKeys));
  }
}

function declaredAgent(session: DownstreamSession): string | null {
  const name = isPlainObject(session.clientInfo) ? session.clientInfo['name'] : undefined;
  return typeof name === 'string' ? name.slice(0, 200) : null;
}

/** Byte counts are whole and non-negative in the row, whatever an estimate produced. */
function wholeBytes(n: number): number {
  return Number.isFinite(n) && n > 0 ? Math.round(n) : 0;
}
