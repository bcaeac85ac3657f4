/**
 * The restart policy of supervised stdio children: jittered exponential backoff that resets
 * after a stable run.
 */

/** How a crashed child is restarted. */
export interface StdioRestartPolicy {
  initialDelayMs: number;
  maxDelayMs: number;
  multiplier: number;
  /** 0..1: the fraction of each delay that is randomized (downwards). */
  jitter: number;
  /** Consecutive restarts allowed without a stable run in between; undefined = unlimited. */
  maxRestarts?: number;
}

/** A child that stayed up this long is healthy again: the next crash restarts after the initial delay. */
export const STABLE_UPTIME_MS = 30_000;
/**
 * Delay before restart number `attempt` (0-based):
 *
 *   base  = min(maxDelayMs, initialDelayMs * multiplier ^ attempt)
 *   delay = round(base * (1 - jitter * random()))
 *
 * Jitter only shortens the delay, so jitter 0 gives the exact exponential value and
 * `maxDelayMs` is a hard ceiling that still keeps the full random spread.
 */
export function computeRestartDelay(policy: StdioRestartPolicy, attempt: number, random: () => number): number {
  const base = Math.min(policy.maxDelayMs, policy.initialDelayMs * Math.pow(policy.multiplier, attempt));
  const jitter = clamp01(policy.jitter);
  return Math.max(0, Math.round(base * (1 - jitter * clamp01(random()))));
}

function clamp01(n: number): number {
  return Number.isFinite(n) ? Math.min(1, Math.max(0, n)) : 0;
}
