/**
 * Resource subscriptions across the fan-in: which downstream sessions watch which URI of
 * which target. One upstream subscription per (target, URI), shared by every subscriber.
 */
import type { DownstreamSession } from '../downstream/session.ts';

export class SubscriptionIndex {
  private readonly byKey = new Map<string, Set<DownstreamSession>>();
  /** Called when the last subscriber of a URI went away with its session: unsubscribe upstream. */
  private readonly onAbandoned: (target: string, uri: string) => void;

  constructor(onAbandoned: (target: string, uri: string) => void = () => undefined) {
    this.onAbandoned = onAbandoned;
  }

  private static key(target: string, uri: string): string {
    return `${target}\u0000${uri}`;
  }

  /** Add a subscriber; returns true when it is the first (subscribe upstream). */
  add(target: string, uri: string, session: DownstreamSession): boolean {
    const key = SubscriptionIndex.key(target, uri);
    let set = this.byKey.get(key);
    const first = set === undefined || set.size === 0;
    if (set === undefined) {
      set = new Set();
      this.byKey.set(key, set);
    }
    if (!set.has(session)) {
      set.add(session);
      session.subscriptions.add(uri);
      // A session that ends without unsubscribing must not leave the upstream subscribed.
      session.onClose(() => {
        if (this.remove(target, uri, session)) this.onAbandoned(target, uri);
      });
    }
    return first;
  }

  /** Remove a subscriber; returns true when it was the last (unsubscribe upstream). */
  remove(target: string, uri: string, session: DownstreamSession): boolean {
    const key = SubscriptionIndex.key(target, uri);
    const set = this.byKey.get(key);
    if (set === undefined || !set.delete(session)) return false;
    session.subscriptions.delete(uri);
    if (set.size > 0) return false;
    this.byKey.delete(key);
    return true;
  }

  /** Sessions subscribed to a URI of a target. */
  subscribers(target: string, uri: string): readonly DownstreamSession[] {
    return [...(this.byKey.get(SubscriptionIndex.key(target, uri)) ?? [])];
  }
}
