/**
 * Name patterns of grants (`targets`, `tools`, `resources`, `prompts`): exact names, `*` for
 * everything, and `prefix*`. Compiled once per snapshot into a set and a prefix list, so a
 * match is a set lookup plus a short loop, with no regular expression on the hot path.
 */

/** A compiled list of name patterns. */
export interface NameMatcher {
  /** Whether the list contains `*`. */
  readonly any: boolean;
  /** Whether nothing can match (an empty list). */
  readonly none: boolean;
  matches(name: string): boolean;
}

const NOTHING: NameMatcher = { any: false, none: true, matches: () => false };
const EVERYTHING: NameMatcher = { any: true, none: false, matches: () => true };

/**
 * Compile patterns. A `*` anywhere but at the end is taken literally: the schema documents
 * `*` and `prefix*` only, and a literal reading can only grant less than the author meant.
 */
export function compileNameMatcher(patterns: readonly string[]): NameMatcher {
  if (patterns.length === 0) return NOTHING;
  if (patterns.includes('*')) return EVERYTHING;
  const exact = new Set<string>();
  const prefixes: string[] = [];
  for (const p of patterns) {
    if (p.endsWith('*')) prefixes.push(p.slice(0, -1));
    else exact.add(p);
  }
  if (prefixes.length === 0) return { any: false, none: false, matches: (name) => exact.has(name) };
  return {
    any: false,
    none: false,
    matches(name) {
      if (exact.has(name)) return true;
      for (const prefix of prefixes) if (name.startsWith(prefix)) return true;
      return false;
    },
  };
}

/** The matcher of `*`, shared (role `*` and defaulted target lists). */
export const MATCH_ALL: NameMatcher = EVERYTHING;
