/**
 * Newline framing for byte streams (a stdio child's stdout and stderr).
 *
 * Splits on Buffers, not strings: a multibyte UTF-8 character may straddle two chunks, and
 * decoding each chunk on its own would corrupt it. Lines are capped so that a child that never
 * writes a newline cannot make the gateway buffer without bound.
 */

export interface LineSplitterOptions {
  /** Longest line, in bytes and without its `\n` (and `\r`), that is delivered whole. */
  maxLineBytes: number;
  /** One complete line, without its trailing `\n` or `\r\n`. */
  onLine(line: Buffer): void;
  /**
   * A line grew past `maxLineBytes`. Receives its first `maxLineBytes` bytes; the rest of that
   * line, up to the next `\n`, is discarded and splitting then resumes.
   */
  onOverflow(head: Buffer): void;
}

const LF = 0x0a;
const CR = 0x0d;

export class LineSplitter {
  private readonly options: LineSplitterOptions;
  /** Chunks of the partial line not yet ended by `\n`; kept apart to avoid quadratic concat. */
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** True after an overflow, until the `\n` that ends the oversized line. */
  private discarding = false;

  constructor(options: LineSplitterOptions) {
    this.options = options;
  }

  /** Feed one chunk of the stream. */
  push(chunk: Buffer): void {
    let start = 0;
    while (start < chunk.length) {
      const lf = chunk.indexOf(LF, start);
      if (lf === -1) {
        this.keepPartial(chunk.subarray(start));
        return;
      }
      if (this.discarding) {
        this.discarding = false;
      } else {
        this.emit(this.takePending(chunk.subarray(start, lf)));
      }
      start = lf + 1;
    }
  }

  /** The stream ended: a final line without `\n` is still delivered. */
  end(): void {
    if (this.discarding) {
      this.discarding = false;
      return;
    }
    if (this.pendingBytes > 0) this.emit(this.takePending(Buffer.alloc(0)));
  }

  private keepPartial(tail: Buffer): void {
    if (this.discarding || tail.length === 0) return;
    // Copied: the stream may hand out views into a shared pool.
    this.pending.push(Buffer.from(tail));
    this.pendingBytes += tail.length;
    // One byte of slack for the `\r` of a `\r\n` ending that has not arrived yet.
    if (this.pendingBytes > this.options.maxLineBytes + 1) {
      const head = Buffer.concat(this.pending, this.pendingBytes).subarray(0, this.options.maxLineBytes);
      this.pending = [];
      this.pendingBytes = 0;
      this.discarding = true;
      this.options.onOverflow(head);
    }
  }

  private takePending(last: Buffer): Buffer {
    if (this.pendingBytes === 0) return last;
    const line = Buffer.concat([...this.pending, last], this.pendingBytes + last.length);
    this.pending = [];
    this.pendingBytes = 0;
    return line;
  }

  private emit(raw: Buffer): void {
    const line = raw.length > 0 && raw[raw.length - 1] === CR ? raw.subarray(0, raw.length - 1) : raw;
    if (line.length > this.options.maxLineBytes) {
      this.options.onOverflow(line.subarray(0, this.options.maxLineBytes));
      return;
    }
    this.options.onLine(line);
  }
}
