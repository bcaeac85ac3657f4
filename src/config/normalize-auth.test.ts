// Normalization of the auth-related settings: what a routable bind needs, and what the public
// URL and TLS paths become.
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from './load.ts';

const targets = { t: { transport: 'stdio', command: 'true' } };
const parse = (raw: Record<string, unknown>) => parseConfig({ targets, ...raw }, 'test', { configDir: '/etc/gatehouse' });
const issues = (raw: Record<string, unknown>): string[] => {
  try {
    parse(raw);
    return [];
  } catch (err) {
    return (err as ConfigError).issues.map((i) => `${i.path}: ${i.reason}`);
  }
};

describe('auth normalization', () => {
  it('auth.mode stays none by default, on loopback only', () => {
    expect(parse({}).auth.mode).toBe('none');
    expect(issues({ listener: { host: '0.0.0.0' } })[0]).toMatch(/^listener.host: .*without authentication is refused/);
  });

  it('a routable bind with oauth needs auth.publicUrl, https unless loopback', () => {
    expect(issues({ listener: { host: '0.0.0.0' }, auth: { mode: 'oauth' } })).toEqual([expect.stringMatching(/^auth.publicUrl: .*needs auth.publicUrl/)]);
    expect(issues({ listener: { host: '0.0.0.0' }, auth: { mode: 'oauth', publicUrl: 'http://mcp.example.com' } })).toEqual([expect.stringMatching(/must be https/)]);
    expect(issues({ listener: { host: '0.0.0.0' }, auth: { mode: 'oauth', publicUrl: 'https://mcp.example.com/' } })).toEqual([]);
    expect(issues({ auth: { mode: 'oauth' } })).toEqual([]);
  });

  it('every tenant named in targets, clients, certificates, issuers and bindings must be declared', () => {
    const auth = { mode: 'oauth', tenants: ['acme'], registration: { tenant: 'acme' } };
    expect(issues({ auth, targets: { t: { transport: 'stdio', command: 'true', tenant: 'acme' } } })).toEqual([]);
    expect(issues({ auth, targets: { t: { transport: 'stdio', command: 'true', tenant: 'acmee' } } })).toEqual([expect.stringMatching(/^targets.t.tenant: tenant "acmee" is not in auth.tenants/)]);
    expect(issues({ auth, targets: { t: { transport: 'stdio', command: 'true', tenant: 'acme' } }, policy: { bindings: [{ tenant: 'globex', users: ['u'], roles: ['admin'] }] } })).toEqual([
      expect.stringMatching(/^policy.bindings.0.tenant: /),
    ]);
    expect(issues({ auth: { ...auth, clients: { c: { tenant: 'globex' } } }, targets: { t: { transport: 'stdio', command: 'true', tenant: 'acme' } } })).toEqual([
      expect.stringMatching(/^auth.clients.c.tenant: /),
    ]);
  });

  it('the admin listener stays on loopback even with oauth: agent credentials do not open it', () => {
    const oauth = { listener: { host: '0.0.0.0' }, auth: { mode: 'oauth', publicUrl: 'https://mcp.example.com' } };
    expect(issues({ ...oauth, admin: { host: '0.0.0.0' } })).toEqual([expect.stringMatching(/^admin.host: .*no authentication yet/)]);
    expect(issues({ ...oauth, admin: { host: '0.0.0.0', enabled: false } })).toEqual([]);
  });

  it("the public URL loses its trailing slash and its host and origin are the listener's own", () => {
    const config = parse({ listener: { host: '0.0.0.0' }, auth: { mode: 'oauth', publicUrl: 'https://MCP.example.com:8443/' } });
    expect(config.auth.publicUrl).toBe('https://MCP.example.com:8443');
    expect(config.listener.allowedHosts).toContain('mcp.example.com:8443');
    expect(config.listener.allowedOrigins).toContain('https://mcp.example.com:8443');
  });

  it('TLS paths resolve against the config directory; mTLS identities need a client CA', () => {
    const config = parse({ listener: { tls: { certFile: 'tls/cert.pem', keyFile: 'tls/key.pem', clientCaFile: 'ca.pem' } } });
    expect(config.listener.tls).toMatchObject({ certFile: '/etc/gatehouse/tls/cert.pem', keyFile: '/etc/gatehouse/tls/key.pem', clientCaFile: '/etc/gatehouse/ca.pem' });
    const fp = 'AB'.repeat(32);
    expect(issues({ auth: { mode: 'oauth', mtls: { [fp]: { agent: 'robot' } } } })).toEqual([expect.stringMatching(/^auth.mtls: .*clientCaFile/)]);
    expect(issues({ listener: { tls: { certFile: 'c', keyFile: 'k', requireClientCert: true } } })).toEqual([expect.stringMatching(/requireClientCert needs/)]);
  });
});
