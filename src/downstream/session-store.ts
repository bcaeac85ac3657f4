/**
 * Live legacy sessions (Streamable HTTP with Mcp-Session-Id, legacy SSE, stdio bridge),
 * bounded in number and expired when idle. Expiry closes the session, which releases its
 * per-session upstream connections and subscriptions.
 */
import { randomBytes } from 'node:crypto';
import type { Clock, TimerHandle } from '../clock.ts';
import { EventLog } from './event-log.ts';
import type { DownstreamSession } from './session.ts';
import type { PostResponse } from './post-response.ts';
import type { SseWriter } from './sse-writer.ts';

/** A session plus the HTTP-side state needed to serve and resume its streams. */
export interface SessionEntry {
  readonly session: DownstreamSession;
  readonly events: EventLog;
  /** POST streams still waiting for their response, by stream id. */
  readonly openStreams: Map<string, PostResponse>;
  /** The standalone GET stream, when one is open. */
  standalone: SseWriter | undefined;
  standaloneStreamId: string | undefined;
  streamSeq: number;
}

export interface SessionStoreOptions {
  clock: Clock;
  idleTimeoutMs: number;
  maxSessions: number;
  replayBufferEvents: number;
}

/** Session ids are 128 random bits: unguessable, since a session id grants its session. */
export function newSessionId(): string {
  return randomBytes(16).toString('hex');
}

export class SessionStore {
  private readonly entries = new Map<string, SessionEntry>();
  private readonly options: SessionStoreOptions;
  private sweepTimer: TimerHandle | undefined;

  constructor(options: SessionStoreOptions) {
    this.options = options;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Register a session; returns false when the store is full. */
  add(session: DownstreamSession): SessionEntry | undefined {
    if (this.entries.size >= this.options.maxSessions) {
      this.sweep();
      if (this.entries.size >= this.options.maxSessions) return undefined;
    }
    const entry: SessionEntry = {
      session,
      events: new EventLog(this.options.replayBufferEvents),
      openStreams: new Map(),
      standalone: undefined,
      standaloneStreamId: undefined,
      streamSeq: 0,
    };
    this.entries.set(session.id, entry);
    session.onClose(() => {
      this.entries.delete(session.id);
      entry.standalone?.end();
    });
    this.schedule();
    return entry;
  }

  /** The entry without touching its idle clock (for checks that may still refuse the request). */
  peek(id: string): SessionEntry | undefined {
    return this.entries.get(id);
  }

  get(id: string): SessionEntry | undefined {
    const entry = this.entries.get(id);
    if (entry) entry.session.lastSeen = this.options.clock.now();
    return entry;
  }

  all(): IterableIterator<SessionEntry> {
    return this.entries.values();
  }

  /** Close every session whose last activity is older than the idle timeout. */
  sweep(): void {
    const cutoff = this.options.clock.now() - this.options.idleTimeoutMs;
    for (const entry of [...this.entries.values()]) {
      // A session with an open stream or a call in flight is not idle.
      const busy = entry.session.inFlight.size > 0 || (entry.standalone !== undefined && !entry.standalone.closed);
      if (!busy && entry.session.lastSeen < cutoff) entry.session.close();
    }
  }

  closeAll(): void {
    for (const entry of [...this.entries.values()]) entry.session.close();
    if (this.sweepTimer !== undefined) this.options.clock.clearTimeout(this.sweepTimer);
    this.sweepTimer = undefined;
  }

  private schedule(): void {
    if (this.sweepTimer !== undefined) return;
    const interval = Math.max(1_000, Math.min(60_000, Math.floor(this.options.idleTimeoutMs / 4)));
    this.sweepTimer = this.options.clock.setTimeout(() => {
      this.sweepTimer = undefined;
      this.sweep();
      if (this.entries.size > 0) this.schedule();
    }, interval);
  }
}
