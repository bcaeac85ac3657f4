import { describe, expect, it } from 'vitest';
import { parseConfig } from '../config/load.ts';
import { buildCatalog, type TargetListing } from '../catalog/catalog.ts';
import { compilePolicy, isToolsetVisible } from './policy.ts';
import { anonymousPrincipal, type Principal } from './principal.ts';
import { compileNameMatcher } from './policy-match.ts';

const targets = {
  alpha: { transport: 'stdio', command: 'x' },
  beta: { transport: 'stdio', command: 'x' },
  gamma: { transport: 'stdio', command: 'x', tenant: 'other' },
};
const tool = (name: string) => ({ name, inputSchema: { type: 'object' } });
const listings: TargetListing[] = [
  { target: 'alpha', tools: [tool('search'), tool('read_file'), tool('delete_file')], prompts: [{ name: 'summary' }], resources: [{ uri: 'docs://a/1' }, { uri: 'secret://a' }], templates: [{ uriTemplate: 'docs://a/{id}' }] },
  { target: 'beta', tools: [tool('search'), tool('deploy')], prompts: [], resources: [], templates: [] },
  { target: 'gamma', tools: [tool('other_tool')], prompts: [{ name: 'other_prompt' }], resources: [{ uri: 'g://1' }], templates: [] },
];

const policy = {
  roles: {
    reader: { grants: [{ targets: ['alpha'], tools: ['search', 'read_*'], resources: ['docs://*'], prompts: ['summary'] }] },
    deployer: { grants: [{ targets: ['beta'], tools: ['deploy'], scopes: ['mcp:deploy'] }] },
    cleaner: { grants: [{ targets: ['alpha'], tools: ['delete_file'], arguments: { path: { pattern: '/tmp/.*', required: true } } }] },
    narrow: { grants: [{ targets: ['*'], tools: ['search'], toolsets: ['finder'] }] },
  },
  bindings: [
    { users: ['carol'], roles: ['deployer'] },
    { agents: ['ci-bot'], roles: ['cleaner'] },
    { tenant: 'other', users: ['alice'], roles: ['deployer'] },
  ],
};
const config = (extra: Record<string, unknown> = {}) =>
  parseConfig({ targets, policy, toolsets: { finder: { tools: ['alpha/search', 'beta/search'] } }, ...extra }, 'test', { configDir: '/' });
const who = (p: Partial<Principal>): Principal => ({ tenant: 'default', user: 'alice', agent: 'cli', roles: [], scopes: [], method: 'oauth', ...p });

describe('name matchers', () => {
  it('match exact names, * and prefix* (a * inside a name is literal)', () => {
    const m = compileNameMatcher(['read', 'list_*', 'a*b']);
    expect(['read', 'list_', 'list_x', 'a*b'].map((n) => m.matches(n))).toEqual([true, true, true, true]);
    expect(['reader', 'lis', 'axb'].map((n) => m.matches(n))).toEqual([false, false, false]);
    expect(compileNameMatcher([]).matches('x')).toBe(false);
    expect(compileNameMatcher(['x', '*']).matches('y')).toBe(true);
  });
});

describe('compiled policy', () => {
  const cfg = config();
  const catalog = buildCatalog(listings, cfg);
  const compiled = compilePolicy(cfg);
  const names = (p: Principal, toolset?: string) => compiled.accessFor(p, toolset).grantedView(toolset === undefined ? catalog.all : catalog.toolsets.get(toolset)!).tools.map((e) => e.exposedName);

  it('shows a role exactly what its grants name, by the target\'s own names', () => {
    expect(names(who({ roles: ['reader'] }))).toEqual(['alpha__search', 'read_file']);
    const view = compiled.accessFor(who({ roles: ['reader'] }), undefined).grantedView(catalog.all);
    expect(view.promptDefinitions.map((p) => p['name'])).toEqual(['summary']);
    expect(view.resources.map((r) => r['uri'])).toEqual(['docs://a/1']);
    expect(view.templateDefinitions.map((t) => t['uriTemplate'])).toEqual(['docs://a/{id}']);
    expect(view.targets).toEqual(['alpha']);
  });

  it('gives role * everything in its tenant, and shares the catalog\'s own view when nothing is hidden', () => {
    const anon = compiled.accessFor(anonymousPrincipal(undefined), undefined);
    expect(anon.grantedView(catalog.all).tools.map((e) => e.exposedName)).toEqual(['alpha__search', 'read_file', 'delete_file', 'beta__search', 'deploy']);
    const single = buildCatalog(listings.slice(0, 2), cfg);
    expect(anon.grantedView(single.all)).toBe(single.all);
  });

  it('adds roles bound to the user or agent in its tenant, and ignores unknown roles', () => {
    expect(names(who({ user: 'carol' }))).toEqual(['deploy']);
    expect(names(who({ agent: 'ci-bot', roles: ['no-such-role'] }))).toEqual(['delete_file']);
    expect(names(who({ roles: ['no-such-role'] }))).toEqual([]);
    // alice is bound to deployer in tenant other only.
    expect(names(who({}))).toEqual([]);
    expect(names(who({ tenant: 'other' }))).toEqual([]);
  });

  it('keeps other tenants\' targets invisible whatever the roles', () => {
    expect(names(who({ tenant: 'other', roles: ['*'] }))).toEqual(['other_tool']);
    const access = compiled.accessFor(who({ roles: ['*'] }), undefined);
    const gamma = catalog.all.toolByName.get('other_tool')!;
    expect(access.decideTool(catalog.all, gamma, {}, [])).toMatchObject({ allowed: false, kind: 'hidden', reason: 'target gamma is not in tenant default' });
    expect(access.decideResource('gamma', 'g://1', [])).toMatchObject({ allowed: false, kind: 'hidden' });
  });

  it('applies toolset-restricted grants only through those endpoints', () => {
    expect(names(who({ roles: ['narrow'] }))).toEqual([]);
    expect(names(who({ roles: ['narrow'] }), 'finder')).toEqual(['alpha__search', 'beta__search']);
  });

  it('decides scopes and arguments per call', () => {
    const deployer = compiled.accessFor(who({ user: 'carol' }), undefined);
    const deploy = catalog.all.toolByName.get('deploy')!;
    expect(deployer.decideTool(catalog.all, deploy, {}, ['mcp:deploy']).allowed).toBe(true);
    expect(deployer.decideTool(catalog.all, deploy, {}, ['mcp'])).toMatchObject({ kind: 'scope', scopes: ['mcp:deploy'] });
    const cleaner = compiled.accessFor(who({ agent: 'ci-bot' }), undefined);
    const del = catalog.all.toolByName.get('delete_file')!;
    expect(cleaner.decideTool(catalog.all, del, { path: '/tmp/x' }, []).allowed).toBe(true);
    expect(cleaner.decideTool(catalog.all, del, { path: '/etc/passwd' }, [])).toMatchObject({
      kind: 'arguments',
      violation: { argument: 'path', constraint: 'pattern' },
      reason: 'argument path outside the grant (pattern) for tool delete_file on target alpha',
    });
    const reader = compiled.accessFor(who({ roles: ['reader'] }), undefined);
    expect(reader.decideResource('alpha', 'docs://a/anything', []).allowed).toBe(true);
    expect(reader.decideResource('alpha', 'secret://a', [])).toMatchObject({ kind: 'hidden', reason: 'no grant for resource secret://a on target alpha' });
  });

  it('prefers a step-up over an argument error when another grant would allow the call with more scopes', () => {
    const cfg2 = config({
      policy: {
        roles: {
          r: {
            grants: [
              { targets: ['alpha'], tools: ['delete_file'], arguments: { path: { pattern: '/tmp/.*' } } },
              { targets: ['alpha'], tools: ['delete_file'], scopes: ['mcp:admin'] },
            ],
          },
        },
      },
    });
    const access = compilePolicy(cfg2).accessFor(who({ roles: ['r'] }), undefined);
    const cat = buildCatalog(listings, cfg2);
    const del = cat.all.toolByName.get('delete_file')!;
    expect(access.decideTool(cat.all, del, { path: '/tmp/a' }, []).allowed).toBe(true);
    expect(access.decideTool(cat.all, del, { path: '/etc' }, [])).toMatchObject({ kind: 'scope', scopes: ['mcp:admin'] });
    expect(access.decideTool(cat.all, del, { path: '/etc' }, ['mcp:admin']).allowed).toBe(true);
  });

  it('caches one access per view key: same roles and tenant share it, whatever the user', () => {
    const a = compiled.accessFor(who({ user: 'u1', roles: ['reader', 'nope'] }), undefined);
    const b = compiled.accessFor(who({ user: 'u2', roles: ['reader'] }), undefined);
    expect(a).toBe(b);
    expect(a.key).toBe('default\u0000reader\u0000');
    expect(compiled.accessFor(who({ roles: ['reader'] }), 'finder')).not.toBe(a);
    expect(a.grantedView(catalog.all)).toBe(b.grantedView(catalog.all));
  });

  it('refuses an unsafe argument pattern when the snapshot is compiled', () => {
    const bad = config({ policy: { roles: { r: { grants: [{ tools: ['x'], arguments: { p: { pattern: '(a+)+$' } } }] } } } });
    expect(() => compilePolicy(bad)).toThrow(/catastrophic/);
  });

  it('says whether a toolset endpoint is visible to a principal\'s tenant', () => {
    const cfg3 = config({ toolsets: { finder: { tools: ['alpha/search'] }, theirs: { tools: ['gamma/*'], tenant: 'other' } } });
    expect(isToolsetVisible({ config: cfg3 }, who({}), 'finder')).toBe(true);
    expect(isToolsetVisible({ config: cfg3 }, who({}), 'theirs')).toBe(false);
    expect(isToolsetVisible({ config: cfg3 }, who({ tenant: 'other' }), 'theirs')).toBe(true);
    expect(isToolsetVisible({ config: cfg3 }, who({}), 'constructor')).toBe(false);
  });
});
