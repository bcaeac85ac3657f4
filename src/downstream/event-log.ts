/**
 * Per-session log of SSE events for `Last-Event-ID` resumption (2025-11-25 transports,
 * "Resumability and Redelivery"). Bounded: the oldest events fall off, and a client that
 * resumes from an evicted id simply gets what is left of its stream.
 */

export interface LoggedEvent {
  readonly id: string;
  readonly stream: string;
  readonly data: string;
}

export class EventLog {
  private readonly capacity: number;
  private readonly events: LoggedEvent[] = [];
  private seq = 0;

  constructor(capacity: number) {
    this.capacity = capacity;
  }

  /** Record an event of `stream` and return its id. Ids encode the stream: `<stream>.<seq>`. */
  append(stream: string, data: string): string {
    const id = `${stream}.${++this.seq}`;
    if (this.capacity > 0) {
      this.events.push({ id, stream, data });
      if (this.events.length > this.capacity) this.events.shift();
    }
    return id;
  }

  /** The stream an event id belongs to, or undefined for ids this log never issued. */
  static streamOf(eventId: string): string | undefined {
    const dot = eventId.lastIndexOf('.');
    return dot > 0 && /^\d+$/.test(eventId.slice(dot + 1)) ? eventId.slice(0, dot) : undefined;
  }

  /** Events of the same stream after `eventId`, oldest first. */
  after(eventId: string): LoggedEvent[] {
    const stream = EventLog.streamOf(eventId);
    const seq = Number(eventId.slice(eventId.lastIndexOf('.') + 1));
    return this.events.filter((e) => e.stream === stream && Number(e.id.slice(e.id.lastIndexOf('.') + 1)) > seq);
  }
}
