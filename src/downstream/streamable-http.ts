/**
 * The Streamable HTTP MCP endpoint (`/mcp` and `/mcp/<toolset>`), serving both eras on one
 * URL, chosen per request: an `initialize` opens a legacy session (2025-03-26 … 2025-11-25,
 * Mcp-Session-Id, GET stream, resumption); a request declaring 2026-07-28 is served
 * statelessly; anything else must name a live legacy session.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { GatehouseError } from '../protocol/errors.ts';
import { allowsBatches, negotiateLegacyVersion, isSupportedVersion } from '../protocol/eras.ts';
import { isNotification, isRequest, isResponse, parseJson, toMessage, type JsonObject, type JsonRpcMessage, type JsonRpcRequest, type JsonRpcResponse } from '../protocol/jsonrpc.ts';
import type { CallRunner } from './call-runner.ts';
import { ChangeBus, LIST_CHANGED_METHOD } from './change-bus.ts';
import { EventLog } from './event-log.ts';
import { accepts, readBody, requireJsonContentType } from './http-guards.ts';
import { isModernRequest, shapeModernResult, validateModernRequest } from './modern-request.ts';
import { PostResponse } from './post-response.ts';
import { DownstreamSession } from './session.ts';
import { newSessionId, type SessionEntry, type SessionStore } from './session-store.ts';
import { SseWriter } from './sse-writer.ts';
import { openListenStream } from './subscriptions-listen.ts';
import { sendJson } from './http-answers.ts';
import type { Clock } from '../clock.ts';
import { principalKey, type Principal } from '../auth/principal.ts';
import type { CallRecord } from '../telemetry/call-record.ts';

export interface StreamableHttpDeps {
  runner: CallRunner;
  sessions: SessionStore;
  changes: ChangeBus;
  clock: Clock;
  limits(): { maxBodyBytes: number; maxJsonDepth: number };
  /** The `WWW-Authenticate` header of a 403 insufficient_scope at the endpoint of `toolset`. */
  scopeChallenge?(toolset: string | undefined, scope: string | undefined): Record<string, string>;
}

const TRANSPORT = 'streamable-http';

function sessionHeader(req: IncomingMessage): string | undefined {
  const value = req.headers['mcp-session-id'];
  return Array.isArray(value) ? value[0] : value;
}

export class StreamableHttpEndpoint {
  private readonly deps: StreamableHttpDeps;

  constructor(deps: StreamableHttpDeps) {
    this.deps = deps;
  }

  /** Serve one request that authentication has attributed to `principal`. */
  async handle(req: IncomingMessage, res: ServerResponse, toolset: string | undefined, principal: Principal): Promise<void> {
    switch (req.method) {
      case 'POST':
        return this.post(req, res, toolset, principal);
      case 'GET':
        return this.get(req, res, principal);
      case 'DELETE':
        return this.delete(req, res, principal);
      default:
        throw new GatehouseError('METHOD_NOT_ALLOWED', `${req.method} is not allowed`, { headers: { allow: 'GET, POST, DELETE' } });
    }
  }

  private async post(req: IncomingMessage, res: ServerResponse, toolset: string | undefined, principal: Principal): Promise<void> {
    requireJsonContentType(req);
    if (!accepts(req, 'application/json', 'text/event-stream')) {
      throw new GatehouseError('NOT_ACCEPTABLE', 'Accept must list application/json and text/event-stream');
    }
    const limits = this.deps.limits();
    const text = await readBody(req, limits.maxBodyBytes);
    const bytesIn = Buffer.byteLength(text);
    const value = parseJson(text, { maxDepth: limits.maxJsonDepth });
    if (Array.isArray(value)) return this.batch(req, res, value, bytesIn, principal);
    const message = toMessage(value);
    const sid = sessionHeader(req);
    // Era rules (2026-07-28 versioning): a request declaring the modern version is served
    // statelessly, even `initialize` (which that revision removed: 404); otherwise an
    // `initialize` opens a legacy session.
    if (sid === undefined && isRequest(message) && isModernRequest(req.headers, message)) return this.modern(req, res, message, toolset, bytesIn, principal);
    if (isRequest(message) && message.method === 'initialize') return this.initialize(req, res, message, toolset, bytesIn, principal);
    if (sid === undefined) {
      if (isModernRequest(req.headers, undefined)) throw new GatehouseError('INVALID_REQUEST', 'Only requests can be sent to a 2026-07-28 endpoint');
      throw new GatehouseError('SESSION_REQUIRED', 'Mcp-Session-Id header is required');
    }
    const entry = this.legacySession(req, sid, principal);
    return this.legacyMessage(res, entry, message, bytesIn, principal);
  }

  /**
   * The live session `sid` names, if it belongs to `principal`. A session is bound to the
   * principal that opened it: another principal's request answers exactly like an unknown
   * session, so a leaked session id is worth nothing without its owner's credential.
   */
  private ownedSession(sid: string | undefined, principal: Principal): SessionEntry | undefined {
    const entry = sid === undefined ? undefined : this.deps.sessions.peek(sid);
    if (entry === undefined || principalKey(entry.session.principal) !== principalKey(principal)) return undefined;
    return this.deps.sessions.get(sid!);
  }

  private legacySession(req: IncomingMessage, sid: string, principal: Principal): SessionEntry {
    const entry = this.ownedSession(sid, principal);
    if (entry === undefined) throw new GatehouseError('SESSION_NOT_FOUND', 'Session not found');
    const version = req.headers['mcp-protocol-version'];
    // A session negotiated one version, but clients send older headers on raw requests
    // (the conformance suite sends 2025-03-26 on a 2025-11-25 session): any supported
    // legacy version is accepted; an unknown one is refused.
    if (typeof version === 'string' && (!isSupportedVersion(version) || version === '2026-07-28')) {
      throw new GatehouseError('UNSUPPORTED_PROTOCOL_VERSION', `Unsupported MCP-Protocol-Version: ${version}`, {
        data: { requested: version, negotiated: entry.session.protocolVersion },
      });
    }
    return entry;
  }

  private async initialize(req: IncomingMessage, res: ServerResponse, message: JsonRpcRequest, toolset: string | undefined, bytesIn: number, principal: Principal): Promise<void> {
    if (sessionHeader(req) !== undefined) throw new GatehouseError('INVALID_REQUEST', 'initialize must not carry Mcp-Session-Id', { id: message.id });
    const params = message.params ?? {};
    const version = negotiateLegacyVersion(params['protocolVersion']);
    const session = new DownstreamSession({
      id: newSessionId(),
      era: 'legacy',
      protocolVersion: version,
      transport: TRANSPORT,
      toolset,
      clientInfo: params['clientInfo'] as JsonObject | undefined,
      clientCapabilities: params['capabilities'] as JsonObject | undefined,
      principal,
      now: this.deps.clock.now(),
    });
    const entry = this.deps.sessions.add(session);
    if (entry === undefined) throw new GatehouseError('SHUTTING_DOWN', 'Session limit reached', { id: message.id });
    this.attachChanges(entry);
    // initialize runs the pipeline like any call, so later stages (auth, audit) see it too.
    const { response, record } = await this.deps.runner.run(session, message, { write: () => false }, { bytesIn, transport: TRANSPORT, principal });
    await this.deps.runner.deliver(session, message, record, response, (body, final) => {
      if (final === undefined || 'error' in final) {
        session.close();
        const refusal = this.scopeRefusal(record, final, toolset);
        return body === undefined ? 0 : sendJson(res, refusal?.status ?? 200, final, refusal?.headers ?? {}, body);
      }
      return sendJson(res, 200, final, { 'mcp-session-id': session.id }, body);
    });
  }

  /** Route list changes and resource updates to this session's standalone stream. */
  private attachChanges(entry: SessionEntry): void {
    const session = entry.session;
    const unsubscribe = this.deps.changes.subscribe((event) => {
      if (event.kind === 'list_changed') this.sendStandalone(entry, { jsonrpc: '2.0', method: LIST_CHANGED_METHOD[event.list] });
      else if (session.subscriptions.has(event.uri)) {
        this.sendStandalone(entry, { jsonrpc: '2.0', method: 'notifications/resources/updated', params: event.params });
      }
    });
    session.unsolicited = { send: (m) => this.sendStandalone(entry, m) };
    session.onClose(unsubscribe);
  }

  private sendStandalone(entry: SessionEntry, message: JsonRpcMessage): boolean {
    const data = JSON.stringify(message);
    const streamId = (entry.standaloneStreamId ??= `s${++entry.streamSeq}`);
    const id = entry.events.append(streamId, data);
    return entry.standalone?.event(data, id) ?? false;
  }

  private async legacyMessage(res: ServerResponse, entry: SessionEntry, message: JsonRpcMessage, bytesIn: number, principal: Principal): Promise<void> {
    const session = entry.session;
    if (isResponse(message)) {
      this.deps.runner.response(session, message);
      res.writeHead(202).end();
      return;
    }
    if (isNotification(message)) {
      this.deps.runner.notification(session, message, { bytesIn, transport: TRANSPORT });
      res.writeHead(202).end();
      return;
    }
    const request = message as JsonRpcRequest;
    const streamId = `p${++entry.streamSeq}`;
    const answer = new PostResponse(res, { headers: { 'mcp-session-id': session.id }, log: { events: entry.events, streamId } });
    entry.openStreams.set(streamId, answer);
    try {
      const { response, record } = await this.deps.runner.run(session, request, answer, { bytesIn, transport: TRANSPORT, principal });
      await this.deps.runner.deliver(session, request, record, response, (body, final) => {
        const refusal = this.scopeRefusal(record, final, session.toolset);
        return answer.finish(body, refusal?.status, refusal?.headers);
      });
    } finally {
      entry.openStreams.delete(streamId);
    }
  }

  /** JSON-RPC batches exist only in 2025-03-26; elsewhere the whole batch is refused unexecuted. */
  private async batch(req: IncomingMessage, res: ServerResponse, values: unknown[], bytesIn: number, principal: Principal): Promise<void> {
    const entry = this.ownedSession(sessionHeader(req), principal);
    if (entry === undefined || !allowsBatches(entry.session.protocolVersion) || values.length === 0) {
      throw new GatehouseError('BATCH_NOT_SUPPORTED', 'JSON-RPC batches are not supported by this protocol version');
    }
    const messages = values.map((v) => toMessage(v));
    const responses: JsonRpcResponse[] = [];
    const channel = { write: (m: JsonRpcMessage) => this.sendStandalone(entry, m) };
    await Promise.all(
      messages.map(async (m) => {
        if (isResponse(m)) this.deps.runner.response(entry.session, m);
        else if (isNotification(m)) this.deps.runner.notification(entry.session, m, { bytesIn: 0, transport: TRANSPORT });
        else {
          const { response, record } = await this.deps.runner.run(entry.session, m as JsonRpcRequest, channel, { bytesIn: Math.floor(bytesIn / messages.length), transport: TRANSPORT, principal });
          await this.deps.runner.deliver(entry.session, m as JsonRpcRequest, record, response, (_body, final) => {
            if (final !== undefined) responses.push(final);
            return 0;
          });
        }
      }),
    );
    if (responses.length === 0) res.writeHead(202).end();
    else sendJson(res, 200, responses, { 'mcp-session-id': entry.session.id });
  }

  private async modern(req: IncomingMessage, res: ServerResponse, request: JsonRpcRequest, toolset: string | undefined, bytesIn: number, principal: Principal): Promise<void> {
    const declared = validateModernRequest(req.headers, request);
    const session = new DownstreamSession({
      id: `r-${newSessionId().slice(0, 12)}`,
      era: 'modern',
      protocolVersion: declared.protocolVersion,
      transport: TRANSPORT,
      toolset,
      clientInfo: declared.clientInfo,
      clientCapabilities: declared.clientCapabilities,
      // 2026-07-28 is stateless: the principal is this request's.
      principal,
      now: this.deps.clock.now(),
    });
    session.logLevel = declared.logLevel;
    if (request.method === 'subscriptions/listen') {
      openListenStream(res, request, session, this.deps.changes, this.deps.clock);
      return;
    }
    const answer = new PostResponse(res, { headers: {} });
    // 2026-07-28: closing the response stream is the cancellation signal.
    const onClose = (): void => {
      if (!answer.finished) session.close();
    };
    res.on('close', onClose);
    try {
      const { response, record } = await this.deps.runner.run(session, request, answer, { bytesIn, transport: TRANSPORT, httpHeaders: req.headers, principal });
      const shaped = response && 'result' in response ? { ...response, result: shapeModernResult(request.method, response.result) } : response;
      await this.deps.runner.deliver(session, request, record, shaped, (body, final) => {
        const refusal = this.scopeRefusal(record, final, toolset);
        return answer.finish(body, refusal?.status ?? (final && 'error' in final ? modernErrorStatus(final) : 200), refusal?.headers);
      });
    } finally {
      res.off('close', onClose);
      session.close();
    }
  }

  /**
   * MCP 2025-11-25 "Runtime Insufficient Scope Errors": the gateway's own insufficient_scope
   * (raised by the policy stage; an upstream's error of that type passes through untouched)
   * answers HTTP 403 with the challenge naming the scopes, when the answer is still plain JSON.
   */
  private scopeRefusal(record: CallRecord, final: JsonRpcResponse | undefined, toolset: string | undefined): { status: number; headers: Record<string, string> } | undefined {
    if (record.outcome !== 'error' || record.errorType !== 'insufficient_scope' || final === undefined || !('error' in final)) return undefined;
    const scope = (final.error.data as { scope?: unknown } | undefined)?.scope;
    const text = typeof scope === 'string' ? scope : Array.isArray(scope) ? scope.filter((s) => typeof s === 'string').join(' ') : undefined;
    return { status: 403, headers: this.deps.scopeChallenge?.(toolset, text) ?? {} };
  }

  private get(req: IncomingMessage, res: ServerResponse, principal: Principal): void {
    if (!accepts(req, 'text/event-stream')) throw new GatehouseError('NOT_ACCEPTABLE', 'Accept must list text/event-stream');
    const sid = sessionHeader(req);
    if (sid === undefined) {
      // 2026-07-28 removed the GET stream; a legacy client without a session is a client fault.
      if (req.headers['mcp-protocol-version'] === '2026-07-28') throw new GatehouseError('METHOD_NOT_ALLOWED', 'GET is not part of 2026-07-28', { headers: { allow: 'POST' } });
      throw new GatehouseError('SESSION_REQUIRED', 'Mcp-Session-Id header is required');
    }
    const entry = this.legacySession(req, sid, principal);
    const lastEventId = req.headers['last-event-id'];
    const writer = new SseWriter(res, { 'mcp-session-id': sid });
    if (typeof lastEventId === 'string' && EventLog.streamOf(lastEventId) !== undefined) {
      for (const event of entry.events.after(lastEventId)) writer.event(event.data, event.id);
      const stream = EventLog.streamOf(lastEventId)!;
      const open = entry.openStreams.get(stream);
      if (open !== undefined) {
        open.resume(writer);
        return;
      }
      if (stream !== entry.standaloneStreamId) {
        writer.end();
        return;
      }
    }
    entry.standalone?.end();
    entry.standalone = writer;
    res.on('close', () => {
      if (entry.standalone === writer) entry.standalone = undefined;
    });
  }

  private delete(req: IncomingMessage, res: ServerResponse, principal: Principal): void {
    const sid = sessionHeader(req);
    if (sid === undefined) throw new GatehouseError('SESSION_REQUIRED', 'Mcp-Session-Id header is required');
    const entry = this.legacySession(req, sid, principal);
    entry.session.close();
    res.writeHead(200).end();
  }
}

/**
 * The HTTP status of a modern error response (2026-07-28 streamable-http, basic/index). The
 * protocol-level codes carry their status whoever raised them, so an upstream's -32021 or
 * -32020 keeps its 400 through the gateway; the gateway's own invalid-params rejections
 * (malformed `_meta`) are 400 too. Errors about the call itself (an unknown tool, an
 * upstream's -32602) stay in-band with 200.
 */
function modernErrorStatus(response: { error: { code: number; data?: unknown } }): number {
  const { code } = response.error;
  if (code === -32601) return 404;
  if (code === -32020 || code === -32021 || code === -32022) return 400;
  const type = (response.error.data as { type?: unknown } | undefined)?.type;
  return type === 'invalid_params' ? 400 : 200;
}

