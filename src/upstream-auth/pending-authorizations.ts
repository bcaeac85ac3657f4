/**
 * Authorization-code flows under way: what the upstream's redirect must find again, by its
 * single-use `state`. Kept apart from the flow itself (user-authorization.ts) so the gateway
 * can hold one across authorizer rebuilds without loading the OAuth client at start.
 */
import type { OAuthDiscoveryState } from '@modelcontextprotocol/client';
import type { Clock } from '../clock.ts';
import type { UserRef } from './upstream-credential.ts';

/** How long a user has to come back from the upstream's consent page. */
export const PENDING_TTL_MS = 10 * 60_000;
/** Pending flows held at once; the oldest goes first beyond this (each costs a few hundred bytes). */
export const MAX_PENDING = 10_000;

export interface PendingAuthorization {
  readonly target: string;
  readonly who: UserRef;
  readonly redirectUri: string;
  readonly codeVerifier: string;
  /** The discovery the authorization URL was built from: the code goes back to that server only. */
  readonly discovery: OAuthDiscoveryState | undefined;
  /** The scope asked for (recorded with the tokens: granted scope when the server echoes none). */
  readonly scope: string | undefined;
  readonly expiresAt: number;
}

/** Pending flows by `state`. */
export class PendingAuthorizations {
  private readonly byState = new Map<string, PendingAuthorization>();

  constructor(private readonly clock: Clock) {}

  add(state: string, pending: PendingAuthorization): void {
    this.sweep();
    if (this.byState.size >= MAX_PENDING) {
      const oldest = this.byState.keys().next();
      if (oldest.done !== true) this.byState.delete(oldest.value);
    }
    this.byState.set(state, pending);
  }

  /** The flow for `state`, removed whatever happens next (single use); undefined when unknown or expired. */
  take(state: string): PendingAuthorization | undefined {
    const pending = this.byState.get(state);
    if (pending === undefined) return undefined;
    this.byState.delete(state);
    return pending.expiresAt > this.clock.now() ? pending : undefined;
  }

  get size(): number {
    return this.byState.size;
  }

  private sweep(): void {
    const now = this.clock.now();
    for (const [state, pending] of this.byState) if (pending.expiresAt <= now) this.byState.delete(state);
  }
}
