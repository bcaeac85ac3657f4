/**
 * The answer to one POSTed request. It starts undecided: if the final response is ready
 * before anything else, it goes out as one `application/json` body (the cheap, common case);
 * the first related notification or server→client request switches it to an SSE stream.
 * In legacy sessions, SSE events are logged for `Last-Event-ID` resumption, and a GET that
 * resumes this stream takes over delivery.
 */
import type { ServerResponse } from 'node:http';
import { serializeMessage, type JsonRpcMessage } from '../protocol/jsonrpc.ts';
import type { CallChannel } from './call-runner.ts';
import type { EventLog } from './event-log.ts';
import { SseWriter } from './sse-writer.ts';

export interface PostResponseOptions {
  /** Headers sent with the answer either way (Mcp-Session-Id). */
  headers: Record<string, string>;
  /** Set in legacy sessions: events are logged under `streamId` for resumption. */
  log?: { events: EventLog; streamId: string } | undefined;
}

export class PostResponse implements CallChannel {
  private readonly res: ServerResponse;
  private readonly options: PostResponseOptions;
  private sse: SseWriter | undefined;
  /** A resumed GET stream that replaced the original POST stream. */
  private resumed: SseWriter | undefined;
  private done = false;
  bytesOut = 0;

  constructor(res: ServerResponse, options: PostResponseOptions) {
    this.res = res;
    this.options = options;
  }

  /** Whether the agent went away before the answer was complete. */
  get abandoned(): boolean {
    return !this.done && this.res.destroyed && this.resumed === undefined;
  }

  get streamId(): string | undefined {
    return this.options.log?.streamId;
  }

  write(message: JsonRpcMessage): boolean {
    if (this.done) return false;
    return this.event(serializeMessage(message));
  }

  /**
   * Send the final response, already serialized (the runner serializes it once, to audit
   * its size before it leaves), and end the answer.
   */
  finish(body: string | undefined, status = 200, headers: Record<string, string> = {}): number {
    if (this.done) return 0;
    if (body === undefined) {
      // Cancelled by the agent: end whatever is open without a response.
      this.done = true;
      if (this.sse) this.sse.end();
      else if (!this.res.headersSent) this.res.writeHead(204, this.options.headers).end();
      this.resumed?.end();
      return 0;
    }
    if (this.sse === undefined && this.resumed === undefined) {
      this.done = true;
      if (this.res.destroyed) return 0;
      const bytes = Buffer.byteLength(body);
      this.res.writeHead(status, { ...this.options.headers, ...headers, 'content-type': 'application/json', 'content-length': String(bytes) });
      this.res.end(body);
      this.bytesOut += bytes;
      return this.bytesOut;
    }
    this.event(body);
    this.done = true;
    this.sse?.end();
    this.resumed?.end();
    return this.bytesOut;
  }

  /** A GET with Last-Event-ID of this stream continues it on a new response. */
  resume(writer: SseWriter): void {
    this.resumed?.end();
    this.resumed = writer;
  }

  get finished(): boolean {
    return this.done;
  }

  private event(data: string): boolean {
    const id = this.options.log ? this.options.log.events.append(this.options.log.streamId, data) : undefined;
    const target = this.resumed ?? (this.sse ??= this.openSse());
    const before = target.bytes;
    // A dropped stream still logs the event: a resuming GET replays it.
    const written = target.event(data, id);
    this.bytesOut += target.bytes - before;
    return written || id !== undefined;
  }

  private openSse(): SseWriter {
    return new SseWriter(this.res, this.options.headers);
  }
}
