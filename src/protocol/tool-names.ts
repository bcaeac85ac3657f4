/**
 * Rules for the names agents see. A name is exposed unprefixed when exactly one target
 * offers it, and as `<target><separator><name>` when several do (or always, if configured).
 */

export type PrefixMode = 'on-collision' | 'always' | 'never';

export function exposedName(target: string, name: string, collides: boolean, mode: PrefixMode, separator: string): string {
  if (mode === 'always' || (mode === 'on-collision' && collides)) return `${target}${separator}${name}`;
  return name;
}

/**
 * Whether a toolset selector matches a tool. Selectors are `target/tool`, `target/*`, or an
 * exposed name; `*` matches any run of characters inside the tool part.
 */
export function selectorMatches(selector: string, target: string, upstreamName: string, exposed: string): boolean {
  const slash = selector.indexOf('/');
  if (slash === -1) return globMatch(selector, exposed);
  return selector.slice(0, slash) === target && globMatch(selector.slice(slash + 1), upstreamName);
}

function globMatch(pattern: string, value: string): boolean {
  if (!pattern.includes('*')) return pattern === value;
  const re = new RegExp(`^${pattern.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
  return re.test(value);
}
