/**
 * Keeps a `subscriptions/listen` stream open to a 2026-07-28 target (basic/patterns/
 * subscriptions). A modern server sends `list_changed` only on such a stream, so without one
 * the catalog would go stale until the next reconnect. What arrives on it reaches the
 * registry through the connection's shared notification path, like a legacy server's
 * unsolicited notifications. The stream is reopened with backoff whenever it ends, for as
 * long as the connection lives.
 */
import type { Clock, TimerHandle } from '../clock.ts';
import { isPlainObject, type JsonObject } from '../protocol/jsonrpc.ts';
import type { CallSink } from '../pipeline/call-context.ts';
import { GatehouseError } from '../protocol/errors.ts';
import type { UpstreamConnection } from './connection.ts';

const MIN_DELAY_MS = 1_000;
const MAX_DELAY_MS = 30_000;
/** A stream that stayed open this long was healthy: the next reopen starts from the minimum. */
const HEALTHY_MS = 60_000;

/** The stream carries nothing a call needs: the acknowledgement is dropped, requests refused. */
const SINK: CallSink = {
  notify: () => undefined,
  request: () => Promise.reject(new GatehouseError('MISSING_CLIENT_CAPABILITY', 'a subscription stream cannot carry server requests')),
};

/** The list notifications a server's capabilities say it can send. */
export function listenFilter(capabilities: JsonObject): JsonObject | undefined {
  const filter: JsonObject = {};
  const flag = (capability: string, key: string): void => {
    const value = capabilities[capability];
    if (isPlainObject(value) && value['listChanged'] === true) filter[key] = true;
  };
  flag('tools', 'toolsListChanged');
  flag('prompts', 'promptsListChanged');
  flag('resources', 'resourcesListChanged');
  return Object.keys(filter).length > 0 ? filter : undefined;
}

export class ChangeListener {
  private readonly connection: UpstreamConnection;
  private readonly clock: Clock;
  private readonly onDiagnostic: (line: string) => void;
  private readonly controller = new AbortController();
  private timer: TimerHandle | undefined;
  private wake: (() => void) | undefined;

  constructor(connection: UpstreamConnection, clock: Clock, onDiagnostic: (line: string) => void) {
    this.connection = connection;
    this.clock = clock;
    this.onDiagnostic = onDiagnostic;
  }

  /** Open the stream (and keep reopening it) when the server can announce list changes. */
  start(capabilities: JsonObject): void {
    const filter = listenFilter(capabilities);
    if (filter !== undefined) void this.run(filter);
  }

  stop(): void {
    this.controller.abort(new GatehouseError('REQUEST_CANCELLED', 'change listener stopped'));
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.wake?.();
  }

  private get stopped(): boolean {
    return this.controller.signal.aborted || this.connection.state === 'closed';
  }

  private async run(filter: JsonObject): Promise<void> {
    let delay = MIN_DELAY_MS;
    while (!this.stopped) {
      const opened = this.clock.monotonic();
      try {
        const response = await this.connection.request({
          method: 'subscriptions/listen',
          params: { notifications: filter },
          sink: SINK,
          signal: this.controller.signal,
          subscription: true,
        });
        if ('error' in response && response.error.code === -32601) {
          this.onDiagnostic('upstream does not serve subscriptions/listen; list changes are picked up on reconnect only');
          return;
        }
      } catch (err) {
        if (this.stopped) return;
        this.onDiagnostic(`subscription stream ended: ${(err as Error).message}`);
      }
      if (this.clock.monotonic() - opened >= HEALTHY_MS) delay = MIN_DELAY_MS;
      await this.sleep(delay);
      delay = Math.min(delay * 2, MAX_DELAY_MS);
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.wake = resolve;
      this.timer = this.clock.setTimeout(resolve, ms);
    });
  }
}
