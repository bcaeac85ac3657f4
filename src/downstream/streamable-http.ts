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

export interface StreamableHttpDeps {
  runner: CallRunner;
  sessions: SessionStore;
  changes: ChangeBus;
  clock: Clock;
  limits(): { maxBodyBytes: number; maxJsonDepth: number };
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

  async handle(req: IncomingMessage, res: ServerResponse, toolset: string | undefined): Promise<void> {
    switch (req.method) {
      case 'POST':
        return this.post(req, res, toolset);
      case 'GET':
        return this.get(req, res);
      case 'DELETE':
        return this.delete(req, res);
      default:
        throw new GatehouseError('METHOD_NOT_ALLOWED', `${req.method} is not allowed`, { headers: { allow: 'GET, POST, DELETE' } });
    }
  }

  private async post(req: IncomingMessage, res: ServerResponse, toolset: string | undefined): Promise<void> {
    requireJsonContentType(req);
    if (!accepts(req, 'application/json', 'text/event-stream')) {
      throw new GatehouseError('NOT_ACCEPTABLE', 'Accept must list application/json and text/event-stream');
    }
    const limits = this.deps.limits();
    const text = await readBody(req, limits.maxBodyBytes);
    const bytesIn = Buffer.byteLength(text);
    const value = parseJson(text, { maxDepth: limits.maxJsonDepth });
    if (Array.isArray(value)) return this.batch(req, res, value, bytesIn);
    const message = toMessage(value);
    const sid = sessionHeader(req);
    // Era rules (2026-07-28 versioning): a request declaring the modern version is served
    // statelessly, even `initialize` (which that revision removed: 404); otherwise an
    // `initialize` opens a legacy session.
    if (sid === undefined && isRequest(message) && isModernRequest(req.headers, message)) return this.modern(req, res, message, toolset, bytesIn);
    if (isRequest(message) && message.method === 'initialize') return this.initialize(req, res, message, toolset, bytesIn);
    if (sid === undefined) {
      if (isModernRequest(req.headers, undefined)) throw new GatehouseError('INVALID_REQUEST', 'Only requests can be sent to a 2026-07-28 endpoint');
      throw new GatehouseError('SESSION_REQUIRED', 'Mcp-Session-Id header is required');
    }
    const entry = this.legacySession(req, sid);
    return this.legacyMessage(res, entry, message, bytesIn);
  }

  private legacySession(req: IncomingMessage, sid: string): SessionEntry {
    const entry = this.deps.sessions.get(sid);
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

  private async initialize(req: IncomingMessage, res: ServerResponse, message: JsonRpcRequest, toolset: string | undefined, bytesIn: number): Promise<void> {
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
      now: this.deps.clock.now(),
    });
    const entry = this.deps.sessions.add(session);
    if (entry === undefined) throw new GatehouseError('SHUTTING_DOWN', 'Session limit reached', { id: message.id });
    this.attachChanges(entry);
    // initialize runs the pipeline like any call, so later stages (auth, audit) see it too.
    const { response, record } = await this.deps.runner.run(session, message, { write: () => false }, { bytesIn, transport: TRANSPORT });
    await this.deps.runner.deliver(session, message, record, response, (body, final) => {
      if (final === undefined || 'error' in final) {
        session.close();
        return body === undefined ? 0 : sendJson(res, 200, final, {}, body);
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

  private async legacyMessage(res: ServerResponse, entry: SessionEntry, message: JsonRpcMessage, bytesIn: number): Promise<void> {
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
      const { response, record } = await this.deps.runner.run(session, request, answer, { bytesIn, transport: TRANSPORT });
      await this.deps.runner.deliver(session, request, record, response, (body) => answer.finish(body));
    } finally {
      entry.openStreams.delete(streamId);
    }
  }

  /** JSON-RPC batches exist only in 2025-03-26; elsewhere the whole batch is refused unexecuted. */
  private async batch(req: IncomingMessage, res: ServerResponse, values: unknown[], bytesIn: number): Promise<void> {
    const sid = sessionHeader(req);
    const entry = sid === undefined ? undefined : this.deps.sessions.get(sid);
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
          const { response, record } = await this.deps.runner.run(entry.session, m as JsonRpcRequest, channel, { bytesIn: Math.floor(bytesIn / messages.length), transport: TRANSPORT });
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

  private async modern(req: IncomingMessage, res: ServerResponse, request: JsonRpcRequest, toolset: string | undefined, bytesIn: number): Promise<void> {
    const declared = validateModernRequest(req.headers, request);
    const session = new DownstreamSession({
      id: `r-${newSessionId().slice(0, 12)}`,
      era: 'modern',
      protocolVersion: declared.protocolVersion,
      transport: TRANSPORT,
      toolset,
      clientInfo: declared.clientInfo,
      clientCapabilities: declared.clientCapabilities,
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
      const { response, record } = await this.deps.runner.run(session, request, answer, { bytesIn, transport: TRANSPORT, httpHeaders: req.headers });
      const shaped = response && 'result' in response ? { ...response, result: shapeModernResult(request.method, response.result) } : response;
      await this.deps.runner.deliver(session, request, record, shaped, (body, final) => answer.finish(body, final && 'error' in final ? modernErrorStatus(final) : 200));
    } finally {
      res.off('close', onClose);
      session.close();
    }
  }

  private get(req: IncomingMessage, res: ServerResponse): void {
    if (!accepts(req, 'text/event-stream')) throw new GatehouseError('NOT_ACCEPTABLE', 'Accept must list text/event-stream');
    const sid = sessionHeader(req);
    if (sid === undefined) {
      // 2026-07-28 removed the GET stream; a legacy client without a session is a client fault.
      if (req.headers['mcp-protocol-version'] === '2026-07-28') throw new GatehouseError('METHOD_NOT_ALLOWED', 'GET is not part of 2026-07-28', { headers: { allow: 'POST' } });
      throw new GatehouseError('SESSION_REQUIRED', 'Mcp-Session-Id header is required');
    }
    const entry = this.legacySession(req, sid);
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

  private delete(req: IncomingMessage, res: ServerResponse): void {
    const sid = sessionHeader(req);
    if (sid === undefined) throw new GatehouseError('SESSION_REQUIRED', 'Mcp-Session-Id header is required');
    const entry = this.legacySession(req, sid);
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

