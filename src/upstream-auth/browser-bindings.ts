/**
 * What the connect page knows of each browser that opened a consent flow: whether that browser
 * proved to be the flow's user, and the OAuth `state` values of the redirects it was sent on
 * (the identity round trip through the gateway's authorization server, and the upstream
 * authorization). A browser is named by a random id in an HttpOnly cookie; every redirect that
 * comes back is accepted only from the browser that was sent out, so an authorization response
 * forced into another browser (the MCP "Phishing" account-takeover) dies there.
 *
 * In memory, bounded in count and time, like the flows themselves.
 */
import type { Clock } from '../clock.ts';
import { sameSecret } from '../auth/secret-compare.ts';

/** One browser's standing in one flow. */
export interface BrowserBinding {
  readonly browser: string;
  readonly elicitationId: string;
  /** The browser proved to be the flow's tenant and user (always true under `auth.mode: none`). */
  verified: boolean;
  expiresAt: number;
}

interface PendingRedirect {
  readonly kind: 'identity' | 'upstream';
  readonly browser: string;
  readonly elicitationId: string;
  /** The PKCE verifier of the identity round trip. */
  readonly verifier: string | undefined;
  readonly expiresAt: number;
}

const DEFAULT_MAX = 20_000;
/**
 * Browsers, and redirects under way, per flow. One user opening their own link again and again
 * (or a script doing it) replaces their own oldest entries, never other users' ones.
 */
const PER_FLOW = 8;

export class BrowserBindings {
  private readonly clock: Clock;
  private readonly ttlMs: number;
  private readonly max: number;
  /** Insertion order is expiry order (an extended binding is re-inserted). */
  private readonly bindings = new Map<string, BrowserBinding>();
  private readonly redirects = new Map<string, PendingRedirect>();

  constructor(clock: Clock, ttlMs: number, max = DEFAULT_MAX) {
    this.clock = clock;
    this.ttlMs = ttlMs;
    this.max = max;
  }

  /** The binding of `browser` to the flow, if this browser opened it and it has not expired. */
  get(browser: string | undefined, elicitationId: string): BrowserBinding | undefined {
    if (browser === undefined) return undefined;
    const binding = this.bindings.get(keyOf(browser, elicitationId));
    return binding !== undefined && binding.expiresAt > this.clock.now() ? binding : undefined;
  }

  /** The binding, created unverified when new; either way it lives another TTL. */
  open(browser: string, elicitationId: string): BrowserBinding {
    const now = this.clock.now();
    this.prune(now);
    const key = keyOf(browser, elicitationId);
    const existing = this.get(browser, elicitationId);
    if (existing === undefined) this.makeRoom(this.bindings, elicitationId);
    const binding = existing ?? { browser, elicitationId, verified: false, expiresAt: 0 };
    binding.expiresAt = now + this.ttlMs;
    this.bindings.delete(key);
    this.bindings.set(key, binding);
    while (this.bindings.size > this.max) this.bindings.delete(this.bindings.keys().next().value!);
    return binding;
  }

  /** Remember a redirect this browser is sent on; `state` is its single-use key. */
  expect(kind: PendingRedirect['kind'], state: string, binding: BrowserBinding, verifier?: string): void {
    const now = this.clock.now();
    this.prune(now);
    this.makeRoom(this.redirects, binding.elicitationId);
    this.redirects.set(state, { kind, browser: binding.browser, elicitationId: binding.elicitationId, verifier, expiresAt: now + this.ttlMs });
    while (this.redirects.size > this.max) this.redirects.delete(this.redirects.keys().next().value!);
  }

  /**
   * The redirect that `state` answers, if it is of `kind`, still fresh, and comes back to the
   * browser it was sent from. Single use: a state that was looked up is gone, whatever the
   * outcome. `wrongBrowser` tells a state that exists but belongs to another browser.
   */
  take(kind: PendingRedirect['kind'], state: string, browser: string | undefined): { browser: string; elicitationId: string; verifier: string | undefined } | 'unknown' | 'wrongBrowser' {
    const pending = this.redirects.get(state);
    if (pending === undefined) return 'unknown';
    this.redirects.delete(state);
    if (pending.kind !== kind || pending.expiresAt <= this.clock.now()) return 'unknown';
    if (browser === undefined || !sameSecret(browser, pending.browser)) return 'wrongBrowser';
    return { browser, elicitationId: pending.elicitationId, verifier: pending.verifier };
  }

  /** Drop the flow's oldest entry when it already holds PER_FLOW of them (insertion order is age). */
  private makeRoom(entries: Map<string, { readonly elicitationId: string }>, elicitationId: string): void {
    let count = 0;
    let oldest: string | undefined;
    for (const [key, entry] of entries) {
      if (entry.elicitationId !== elicitationId) continue;
      oldest ??= key;
      count++;
    }
    if (count >= PER_FLOW && oldest !== undefined) entries.delete(oldest);
  }

  private prune(now: number): void {
    for (const [key, binding] of this.bindings) {
      if (binding.expiresAt > now) break;
      this.bindings.delete(key);
    }
    for (const [state, pending] of this.redirects) {
      if (pending.expiresAt > now) break;
      this.redirects.delete(state);
    }
  }
}

function keyOf(browser: string, elicitationId: string): string {
  return `${browser}\u0000${elicitationId}`;
}

