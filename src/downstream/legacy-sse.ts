/**
 * The deprecated 2024-11-05 HTTP+SSE transport, for old clients: `GET /sse` opens the
 * session's only stream and names the message endpoint in an `endpoint` event; each
 * `POST /messages?sessionId=…` is acknowledged with 202 and answered on the stream.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Clock } from '../clock.ts';
import { GatehouseError, toGatehouseError } from '../protocol/errors.ts';
import { negotiateLegacyVersion } from '../protocol/eras.ts';
import { isNotification, isResponse, parseJson, toMessage, type JsonObject, type JsonRpcMessage, type JsonRpcRequest } from '../protocol/jsonrpc.ts';
import type { CallRunner } from './call-runner.ts';
import { LIST_CHANGED_METHOD, type ChangeBus } from './change-bus.ts';
import { accepts, readBody, requireJsonContentType } from './http-guards.ts';
import { DownstreamSession } from './session.ts';
import { newSessionId, type SessionStore } from './session-store.ts';
import { SseWriter } from './sse-writer.ts';
import { principalKey, type Principal } from '../auth/principal.ts';

export interface LegacySseDeps {
  runner: CallRunner;
  sessions: SessionStore;
  changes: ChangeBus;
  clock: Clock;
  limits(): { maxBodyBytes: number; maxJsonDepth: number };
}

const TRANSPORT = 'sse';

export class LegacySseEndpoint {
  private readonly deps: LegacySseDeps;
  private readonly writers = new Map<string, SseWriter>();

  constructor(deps: LegacySseDeps) {
    this.deps = deps;
  }

  /**
   * The toolset of the session `sid` names (for the audience its messages' tokens must carry);
   * undefined for an unknown session, which then fails on the main endpoint's terms.
   */
  toolsetOfSession(sid: string | null): string | undefined {
    return sid === null ? undefined : this.deps.sessions.peek(sid)?.session.toolset;
  }

  /** `GET <base>/sse`: open a session, bound to `principal`, and its stream. */
  open(req: IncomingMessage, res: ServerResponse, messagePath: string, toolset: string | undefined, principal: Principal): void {
    if (req.method !== 'GET') throw new GatehouseError('METHOD_NOT_ALLOWED', 'Use GET to open the SSE stream', { headers: { allow: 'GET' } });
    if (!accepts(req, 'text/event-stream')) throw new GatehouseError('NOT_ACCEPTABLE', 'Accept must list text/event-stream');
    const session = new DownstreamSession({
      id: newSessionId(),
      era: 'legacy',
      protocolVersion: '2024-11-05',
      transport: TRANSPORT,
      toolset,
      principal,
      now: this.deps.clock.now(),
    });
    const entry = this.deps.sessions.add(session);
    if (entry === undefined) throw new GatehouseError('SHUTTING_DOWN', 'Session limit reached');
    const writer = new SseWriter(res);
    this.writers.set(session.id, writer);
    const send = (m: JsonRpcMessage): boolean => writer.event(JSON.stringify(m));
    session.unsolicited = { send };
    const unsubscribe = this.deps.changes.subscribe((event) => {
      if (event.kind === 'list_changed') send({ jsonrpc: '2.0', method: LIST_CHANGED_METHOD[event.list] });
      else if (session.subscriptions.has(event.uri)) send({ jsonrpc: '2.0', method: 'notifications/resources/updated', params: event.params });
    });
    session.onClose(() => {
      unsubscribe();
      this.writers.delete(session.id);
      writer.end();
    });
    // The stream is the session: when the client goes, so does the session.
    res.on('close', () => session.close());
    writer.event(`${messagePath}?sessionId=${session.id}`, undefined, 'endpoint');
  }

  /** `POST <base>/messages?sessionId=…`. */
  async message(req: IncomingMessage, res: ServerResponse, url: URL, principal: Principal): Promise<void> {
    if (req.method !== 'POST') throw new GatehouseError('METHOD_NOT_ALLOWED', 'Use POST to send messages', { headers: { allow: 'POST' } });
    const sid = url.searchParams.get('sessionId');
    if (sid === null) throw new GatehouseError('SESSION_REQUIRED', 'sessionId query parameter is required');
    // Bound to its principal: another principal's message answers exactly like an unknown session.
    const owned = this.deps.sessions.peek(sid);
    const entry = owned !== undefined && principalKey(owned.session.principal) === principalKey(principal) ? this.deps.sessions.get(sid) : undefined;
    const writer = this.writers.get(sid);
    if (entry === undefined || writer === undefined) throw new GatehouseError('SESSION_NOT_FOUND', 'Session not found');
    requireJsonContentType(req);
    const limits = this.deps.limits();
    const text = await readBody(req, limits.maxBodyBytes);
    const value = parseJson(text, { maxDepth: limits.maxJsonDepth });
    if (Array.isArray(value)) throw new GatehouseError('BATCH_NOT_SUPPORTED', 'JSON-RPC batches are not supported');
    const message = toMessage(value);
    const session = entry.session;
    res.writeHead(202).end('Accepted');
    const bytesIn = Buffer.byteLength(text);
    if (isResponse(message)) return this.deps.runner.response(session, message);
    if (isNotification(message)) return this.deps.runner.notification(session, message, { bytesIn, transport: TRANSPORT, principal });
    const request = message as JsonRpcRequest;
    if (request.method === 'initialize') {
      const params = request.params ?? {};
      session.protocolVersion = negotiateLegacyVersion(params['protocolVersion']);
      session.clientInfo = params['clientInfo'] as JsonObject | undefined;
      session.clientCapabilities = (params['capabilities'] as JsonObject | undefined) ?? {};
    }
    const channel = { write: (m: JsonRpcMessage) => writer.event(JSON.stringify(m)) };
    try {
      const { response, record } = await this.deps.runner.run(session, request, channel, { bytesIn, transport: TRANSPORT, principal });
      await this.deps.runner.deliver(session, request, record, response, (body) => {
        const before = writer.bytes;
        if (body !== undefined) writer.event(body);
        return writer.bytes - before;
      });
    } catch (err) {
      // The 202 is out: a failure can only travel on the stream.
      writer.event(JSON.stringify({ jsonrpc: '2.0', id: request.id, error: toGatehouseError(err).toRpcError() }));
    }
  }
}
