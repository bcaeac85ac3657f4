/**
 * Bridging server→client requests to 2026-07-28 agents (basic/patterns/mrtr). A legacy
 * upstream asks for sampling, elicitation or roots with a JSON-RPC request in the middle of a
 * call; a modern agent cannot receive requests. So the gateway parks the upstream call, answers
 * the agent with an `InputRequiredResult` (`inputRequests` + an opaque `requestState`), and when
 * the agent retries with `inputResponses` and that state, it answers the upstream's requests and
 * carries on waiting for the call's final result, or for the next round of input.
 *
 * `requestState` is attacker-controlled input (mrtr "Server Requirements"): it is a 128-bit
 * random handle, single-use, bound to the method and name of the original request, and expires.
 */
import { randomBytes } from 'node:crypto';
import type { Clock, TimerHandle } from '../clock.ts';
import { GatehouseError } from '../protocol/errors.ts';
import { isPlainObject, type JsonObject, type JsonRpcResponse } from '../protocol/jsonrpc.ts';
import type { CallContext, CallSink } from '../pipeline/call-context.ts';
import { missingCapability } from '../protocol/client-requests.ts';

interface PendingInput {
  readonly method: string;
  readonly params: JsonObject | undefined;
  resolve(response: JsonRpcResponse): void;
  reject(error: Error): void;
}

/** One upstream call that may span several agent round trips. */
export class InputExchange {
  /** The agent call currently attached; notifications go to its stream. */
  private current: CallContext;
  private readonly pending = new Map<string, PendingInput>();
  private seq = 0;
  private wake: (() => void) | undefined;
  readonly binding: string;
  /** Aborts the upstream attempt (expiry, cancellation). */
  readonly controller = new AbortController();

  constructor(ctx: CallContext, binding: string) {
    this.current = ctx;
    this.binding = binding;
  }

  /** The sink the upstream connection uses for this call. */
  readonly sink: CallSink = {
    notify: (message) => this.current.sink.notify(message),
    request: (method, params) => {
      // mrtr: a server MUST NOT send an input request the client has not declared support for.
      const missing = missingCapability(method, this.current.session.clientCapabilities);
      if (missing) return Promise.reject(missing);
      return new Promise<JsonRpcResponse>((resolve, reject) => {
        const key = `${method.split('/')[0]}-${++this.seq}`;
        this.pending.set(key, { method, params, resolve, reject });
        this.wake?.();
      });
    },
  };

  attach(ctx: CallContext): void {
    this.current = ctx;
  }

  /** Resolves once the upstream has asked for input that the agent has not been shown. */
  inputWanted(): Promise<void> {
    if (this.pending.size > 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.wake = () => {
        this.wake = undefined;
        // Requests raised together (several elicitations) arrive on separate I/O turns; let
        // the current turn finish so they travel in one InputRequiredResult.
        setImmediate(resolve);
      };
    });
  }

  /** The `inputRequests` map for everything still unanswered. */
  inputRequests(): JsonObject {
    const out: JsonObject = {};
    for (const [key, p] of this.pending) out[key] = p.params === undefined ? { method: p.method } : { method: p.method, params: p.params };
    return out;
  }

  /** Apply the agent's `inputResponses`; unknown keys are ignored (mrtr "Error Handling"). */
  answer(responses: JsonObject): void {
    for (const [key, value] of Object.entries(responses)) {
      const p = this.pending.get(key);
      if (p === undefined || !isPlainObject(value)) continue;
      this.pending.delete(key);
      p.resolve({ jsonrpc: '2.0', id: key, result: value });
    }
  }

  /** Fail every unanswered input request (the exchange expired or was cancelled). */
  abandon(error: GatehouseError): void {
    for (const p of this.pending.values()) p.reject(error);
    this.pending.clear();
    this.controller.abort(error);
  }
}

export class InputRequiredBroker {
  private readonly parked = new Map<string, { exchange: InputExchange; upstream: Promise<JsonRpcResponse>; timer: TimerHandle }>();
  private readonly clock: Clock;
  private readonly ttlMs: number;

  constructor(clock: Clock, ttlMs: number) {
    this.clock = clock;
    this.ttlMs = ttlMs;
  }

  get size(): number {
    return this.parked.size;
  }

  /**
   * Run (or resume) an upstream call for a modern agent. `start` issues the upstream request
   * with the exchange's sink and signal; it is called only for a fresh call.
   */
  async run(ctx: CallContext, binding: string, timeoutMs: number, start: (exchange: InputExchange) => Promise<JsonRpcResponse>): Promise<JsonRpcResponse> {
    const state = ctx.request.params?.['requestState'];
    let exchange: InputExchange;
    let upstream: Promise<JsonRpcResponse>;
    if (state !== undefined) {
      const entry = typeof state === 'string' ? this.parked.get(state) : undefined;
      // Unknown, expired, reused, or presented on another request: refuse, never guess.
      if (entry === undefined || entry.exchange.binding !== binding) {
        throw new GatehouseError('INVALID_INPUT_RESPONSE', 'requestState is unknown, expired, already used or belongs to another request', { id: ctx.request.id });
      }
      this.parked.delete(state as string);
      this.clock.clearTimeout(entry.timer);
      exchange = entry.exchange;
      upstream = entry.upstream;
      exchange.attach(ctx);
      const responses = ctx.request.params?.['inputResponses'];
      if (isPlainObject(responses)) exchange.answer(responses);
    } else {
      exchange = new InputExchange(ctx, binding);
      upstream = start(exchange);
    }
    // Between rounds nobody awaits the upstream promise; its failure is seen on the next round.
    upstream.catch(() => undefined);
    // Within a round: the agent closing its stream cancels the call (2026-07-28 cancellation),
    // and the target's deadline runs while the gateway waits on the upstream, not on the user.
    const onAbort = (): void => exchange.abandon(new GatehouseError('REQUEST_CANCELLED', 'cancelled by the agent'));
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    const deadline = this.clock.setTimeout(
      () => exchange.abandon(new GatehouseError('UPSTREAM_TIMEOUT', `no answer within ${timeoutMs} ms`, { data: { timeoutMs } })),
      timeoutMs,
    );
    let outcome: { done: JsonRpcResponse | undefined };
    try {
      outcome = await Promise.race([upstream.then((r) => ({ done: r })), exchange.inputWanted().then(() => ({ done: undefined }))]);
    } finally {
      this.clock.clearTimeout(deadline);
      ctx.signal.removeEventListener('abort', onAbort);
    }
    if (outcome.done !== undefined) return { ...outcome.done, id: ctx.request.id };
    const token = randomBytes(16).toString('base64url');
    const timer = this.clock.setTimeout(() => {
      if (this.parked.get(token)?.exchange !== exchange) return;
      this.parked.delete(token);
      exchange.abandon(new GatehouseError('REQUEST_CANCELLED', 'the agent did not provide the requested input in time'));
    }, this.ttlMs);
    this.parked.set(token, { exchange, upstream, timer });
    return { jsonrpc: '2.0', id: ctx.request.id, result: { resultType: 'input_required', inputRequests: exchange.inputRequests(), requestState: token } };
  }

  /** Abandon every parked exchange (shutdown). */
  closeAll(): void {
    for (const [token, entry] of this.parked) {
      this.clock.clearTimeout(entry.timer);
      entry.exchange.abandon(new GatehouseError('SHUTTING_DOWN', 'gateway is shutting down'));
      this.parked.delete(token);
    }
  }
}
