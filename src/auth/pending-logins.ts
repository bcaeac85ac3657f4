/**
 * Logins waiting for the IdP's answer, keyed by the OAuth `state` sent to the IdP. Server-side
 * by design: the PKCE verifier and nonce never reach the browser, and the state is tied to one
 * interaction and one client (MCP security best practices, "OAuth State Parameter Validation").
 */

export interface PendingLogin {
  /** The gateway interaction the login belongs to. */
  readonly uid: string;
  /** The downstream client of that interaction. */
  readonly clientId: string;
  readonly codeVerifier: string;
  readonly nonce: string;
}

export interface PendingLoginStore {
  put(state: string, login: PendingLogin): Promise<void>;
  /** Looks without consuming (the relay hop from the fixed callback URL). */
  peek(state: string): Promise<PendingLogin | undefined>;
  /** Consumes: a state is redeemed at most once. */
  take(state: string): Promise<PendingLogin | undefined>;
}

/**
 * In memory, per process: a login must come back to the replica that started it (sticky
 * sessions) or be retried. Bounded so unauthenticated login starts cannot grow it without limit.
 */
export function createMemoryPendingLogins(options: { ttlMs?: number; maxEntries?: number; now?: () => number } = {}): PendingLoginStore {
  const ttlMs = options.ttlMs ?? 10 * 60_000;
  const maxEntries = options.maxEntries ?? 10_000;
  const now = options.now ?? Date.now;
  // Insertion order is expiry order (one TTL), so the oldest entry is always first.
  const entries = new Map<string, { login: PendingLogin; expiresAt: number }>();

  const prune = (): void => {
    const t = now();
    for (const [state, e] of entries) {
      if (e.expiresAt > t && entries.size < maxEntries) break;
      entries.delete(state);
    }
  };
  const live = (state: string): PendingLogin | undefined => {
    const e = entries.get(state);
    return e && e.expiresAt > now() ? e.login : undefined;
  };

  return {
    async put(state, login) {
      prune();
      entries.set(state, { login, expiresAt: now() + ttlMs });
    },
    async peek(state) {
      return live(state);
    },
    async take(state) {
      const login = live(state);
      entries.delete(state);
      return login;
    },
  };
}
