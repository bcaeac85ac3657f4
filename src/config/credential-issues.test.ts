// What each upstream credential mode needs beyond the schema, refused at load.
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from './load.ts';

const stdio = { transport: 'stdio', command: 'true' };
const http = { transport: 'streamable-http', url: 'https://saas.example/mcp' };
const key = { id: 'k1', secret: { env: 'GATEHOUSE_VAULT_KEY' } };
const issues = (raw: Record<string, unknown>): string[] => {
  try {
    parseConfig(raw, 'test', { configDir: '/etc/gatehouse' });
    return [];
  } catch (err) {
    return (err as ConfigError).issues.map((i) => `${i.path}: ${i.reason}`);
  }
};

describe('upstream credential modes', () => {
  it('defaults to none, which needs nothing', () => {
    expect(parseConfig({ targets: { t: stdio } }, 'test', { configDir: '/' }).targets['t']!.credentials).toEqual({ mode: 'none' });
  });

  it('a static secret goes to a stdio child in a named environment variable, to HTTP in a header', () => {
    const secret = { env: 'UPSTREAM_TOKEN' };
    expect(issues({ targets: { t: { ...stdio, credentials: { mode: 'static', secret } } } })).toEqual([expect.stringMatching(/^targets.t.credentials.envVar: .*name it in envVar/)]);
    expect(issues({ targets: { t: { ...stdio, credentials: { mode: 'static', secret, envVar: 'TOKEN' } } } })).toEqual([]);
    expect(issues({ targets: { t: { ...stdio, env: { TOKEN: 'x' }, credentials: { mode: 'static', secret, envVar: 'TOKEN' } } } })).toEqual([expect.stringMatching(/shadowed/)]);
    expect(issues({ targets: { t: { ...http, credentials: { mode: 'static', secret, envVar: 'TOKEN' } } } })).toEqual([expect.stringMatching(/envVar is for stdio targets/)]);
    expect(issues({ targets: { t: { ...http, credentials: { mode: 'static', secret } } } })).toEqual([]);
  });

  it('a secret is a reference, never an inline value', () => {
    expect(issues({ targets: { t: { ...http, credentials: { mode: 'static', secret: 'hunter2' } } } }).join('\n')).toMatch(/targets.t.credentials.secret/);
  });

  it('OAuth modes store tokens, so they need a vault key and an HTTP target', () => {
    const service = { mode: 'client-credentials', client: { id: 'gw', secret: { env: 'CLIENT_SECRET' } }, authorizationServer: 'https://as.example' };
    expect(issues({ targets: { t: { ...http, credentials: service } } })).toEqual([expect.stringMatching(/configure vault.keys/)]);
    expect(issues({ vault: { keys: [key] }, targets: { t: { ...http, credentials: service } } })).toEqual([]);
    expect(issues({ vault: { keys: [key] }, targets: { t: { ...stdio, credentials: { mode: 'user-oauth' } } } })).toEqual([expect.stringMatching(/needs an HTTP target/)]);
    expect(issues({ vault: { keys: [key] }, targets: { t: { ...http, credentials: { mode: 'client-credentials', client: { id: 'gw' } } } } })).toEqual([expect.stringMatching(/client.secret or client.privateKey/)]);
    expect(issues({ vault: { keys: [key] }, targets: { t: { ...http, credentials: { mode: 'user-oauth' } } } })).toEqual([]);
  });

  it("a client's secret goes only to the authorization server config names, never to one the upstream's metadata picks", () => {
    const client = { id: 'gw', secret: { env: 'CLIENT_SECRET' } };
    expect(issues({ vault: { keys: [key] }, targets: { t: { ...http, credentials: { mode: 'client-credentials', client } } } })).toEqual([expect.stringMatching(/^targets.t.credentials.authorizationServer: /)]);
    expect(issues({ vault: { keys: [key] }, targets: { t: { ...http, credentials: { mode: 'user-oauth', client } } } })).toEqual([expect.stringMatching(/authorizationServer/)]);
    // A public pre-registered client holds nothing to leak.
    expect(issues({ vault: { keys: [key] }, targets: { t: { ...http, credentials: { mode: 'user-oauth', client: { id: 'public' } } } } })).toEqual([]);
  });

  it('loopback authorization servers only for a gateway on loopback', () => {
    expect(issues({ vault: { allowLoopbackAuthorizationServers: true }, targets: { t: stdio } })).toEqual([]);
    expect(issues({ listener: { host: '0.0.0.0' }, auth: { mode: 'oauth', publicUrl: 'https://mcp.example.com' }, vault: { allowLoopbackAuthorizationServers: true }, targets: { t: stdio } })).toEqual([
      expect.stringMatching(/^vault.allowLoopbackAuthorizationServers: /),
    ]);
  });

  it('vault keys are unique and the active key is one of them', () => {
    expect(issues({ vault: { keys: [key, key] }, targets: { t: stdio } })).toEqual([expect.stringMatching(/unique/)]);
    expect(issues({ vault: { keys: [key], activeKey: 'k2' }, targets: { t: stdio } })).toEqual([expect.stringMatching(/vault.activeKey/)]);
  });
});
