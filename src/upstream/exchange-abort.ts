/**
 * What ends one upstream HTTP exchange early: the caller's signal (cancellation, the attempt
 * deadline), the transport closing, or the transport itself (a request stream kept past its
 * answer). It used to be an AbortController per exchange linked to two signals: creating an
 * AbortSignal and adding and removing EventTarget listeners cost ~20 µs of a call that should
 * cost ~200. This is an EventEmitter, which undici accepts as a request signal, kept in the
 * transport's in-flight set (closing aborts the set), with one listener on the caller's signal.
 * A real AbortSignal is made only for the code that needs one (SSE streams that wait on timers).
 */
import { EventEmitter } from 'node:events';

export class ExchangeAbort extends EventEmitter {
  aborted = false;
  reason: unknown = undefined;
  private readonly inflight: Set<ExchangeAbort>;
  private readonly caller: AbortSignal | undefined;
  private readonly onCallerAbort: (() => void) | undefined;
  private controller: AbortController | undefined;

  constructor(inflight: Set<ExchangeAbort>, caller: AbortSignal | undefined) {
    super();
    this.inflight = inflight;
    inflight.add(this);
    if (caller?.aborted) {
      this.abort(caller.reason);
    } else if (caller !== undefined) {
      this.caller = caller;
      this.onCallerAbort = () => this.abort(caller.reason);
      caller.addEventListener('abort', this.onCallerAbort, { once: true });
    }
  }

  abort(reason?: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    this.controller?.abort(reason);
    this.emit('abort');
  }

  /** An AbortSignal that follows this exchange, for APIs that need a real one. */
  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController();
      if (this.aborted) this.controller.abort(this.reason);
    }
    return this.controller.signal;
  }

  /** The exchange is over: leave the in-flight set and stop listening to the caller. Idempotent. */
  release(): void {
    this.inflight.delete(this);
    if (this.onCallerAbort !== undefined) this.caller!.removeEventListener('abort', this.onCallerAbort);
  }
}

/** Abort every exchange still in flight (the transport is closing). */
export function abortAll(inflight: Set<ExchangeAbort>, reason: unknown): void {
  for (const exchange of [...inflight]) exchange.abort(reason);
}
