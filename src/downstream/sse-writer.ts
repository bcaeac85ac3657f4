/**
 * Writing Server-Sent Events to a Node response: headers once, one `message` event per
 * JSON-RPC message, keep-alive comments, and a closed flag every deferred writer checks.
 */
import type { ServerResponse } from 'node:http';

export const SSE_HEADERS: Readonly<Record<string, string>> = {
  'content-type': 'text/event-stream',
  'cache-control': 'no-cache, no-transform',
  connection: 'keep-alive',
  // Tell buffering reverse proxies (nginx) to pass events through immediately.
  'x-accel-buffering': 'no',
};

export class SseWriter {
  private readonly res: ServerResponse;
  private closedValue = false;
  bytes = 0;

  constructor(res: ServerResponse, extraHeaders: Record<string, string> = {}) {
    this.res = res;
    res.writeHead(200, { ...SSE_HEADERS, ...extraHeaders });
    // Flush headers now so the client sees the stream open before the first event.
    res.flushHeaders();
    res.on('close', () => {
      this.closedValue = true;
    });
  }

  get closed(): boolean {
    return this.closedValue || this.res.writableEnded || this.res.destroyed;
  }

  /** Write one event; returns false when the stream is gone. */
  event(data: string, id?: string, name = 'message'): boolean {
    if (this.closed) return false;
    const chunk = `${id === undefined ? '' : `id: ${id}\n`}event: ${name}\ndata: ${data}\n\n`;
    this.bytes += Buffer.byteLength(chunk);
    this.res.write(chunk);
    return true;
  }

  comment(text = ''): boolean {
    if (this.closed) return false;
    this.res.write(`:${text}\n\n`);
    return true;
  }

  end(): void {
    if (!this.closed) this.res.end();
    this.closedValue = true;
  }
}
