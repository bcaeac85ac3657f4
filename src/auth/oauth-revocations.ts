/**
 * Revoked access tokens (by jti) and grants (by gid). JWT access tokens are self-contained, so
 * the resource server asks this list on every request: it is held in memory (a synchronous
 * lookup), persisted so a restart keeps it, and pruned once no token it covers can still be
 * valid. Replicas sharing the database re-read the list every RELOAD_INTERVAL_MS, so another
 * replica's revocation bites here within seconds rather than at the token's expiry; a pushed
 * fan-out (Redis pub/sub) would make that immediate.
 */
import { repeatEvery, type Clock } from '../clock.ts';
import type { OAuthStore, RevocationKind } from '../storage/oauth-store.ts';

const PRUNE_INTERVAL_MS = 60_000;
/** How often the persisted list is re-read: one indexed query, the bound on cross-replica delay. */
export const RELOAD_INTERVAL_MS = 5_000;

export class RevocationList {
  private readonly entries = new Map<string, number>();
  /** Stops the prune and reload loops. */
  private stopLoops: Array<() => void> = [];

  private constructor(
    private readonly store: OAuthStore,
    private readonly clock: Clock,
  ) {}

  static async load(store: OAuthStore, clock: Clock): Promise<RevocationList> {
    const list = new RevocationList(store, clock);
    await list.reload();
    // A failed prune only delays cleanup (entries past expiry no longer match anyway); a failed
    // reload keeps what is known (revocations are only ever added here) and tries again.
    list.stopLoops = [repeatEvery(clock, PRUNE_INTERVAL_MS, () => list.prune(), () => {}), repeatEvery(clock, RELOAD_INTERVAL_MS, () => list.reload(), () => {})];
    return list;
  }

  /** Re-read the persisted list (entries revoked by other replicas). */
  async reload(): Promise<void> {
    const rows = await this.store.listRevocations(this.clock.now());
    for (const row of rows) this.entries.set(key(row.kind, row.id), row.expiresAt);
  }

  /** Is the token (jti) or its grant (gid) revoked? Synchronous, memory only. */
  isRevoked(claims: { jti?: string | undefined; gid?: string | undefined }): boolean {
    const now = this.clock.now();
    for (const k of [claims.jti === undefined ? undefined : key('jti', claims.jti), claims.gid === undefined ? undefined : key('gid', claims.gid)]) {
      if (k === undefined) continue;
      const until = this.entries.get(k);
      if (until !== undefined && until >= now) return true;
    }
    return false;
  }

  /**
   * Record a revocation until `expiresAt` (ms). Memory first, so it bites at once even when the
   * write then fails (the caller sees the error; failing towards "revoked" is the safe side).
   */
  async revoke(kind: RevocationKind, id: string, expiresAt: number): Promise<void> {
    const k = key(kind, id);
    this.entries.set(k, Math.max(expiresAt, this.entries.get(k) ?? 0));
    await this.store.addRevocation(kind, id, this.entries.get(k)!);
  }

  /** Drop entries whose tokens have all expired, in memory and in the table. */
  async prune(): Promise<void> {
    const now = this.clock.now();
    for (const [k, until] of this.entries) if (until < now) this.entries.delete(k);
    await this.store.pruneRevocations(now);
  }

  close(): void {
    for (const stop of this.stopLoops.splice(0)) stop();
  }

  /** Number of live entries (tests, metrics). */
  get size(): number {
    return this.entries.size;
  }
}

function key(kind: RevocationKind, id: string): string {
  return `${kind}:${id}`;
}
