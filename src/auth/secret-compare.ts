/**
 * Comparing values an attacker guesses at (CSRF tokens, browser ids, state, client secrets):
 * in time that does not depend on where they first differ, so the comparison leaks nothing
 * byte by byte. A length difference answers at once; lengths of these values are public.
 */
import { timingSafeEqual } from 'node:crypto';

export function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
