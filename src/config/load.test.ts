import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfigFile, parseConfigText } from './load.ts';

const env = { configDir: '/etc/gatehouse' };
const minimal = 'targets:\n  one:\n    transport: stdio\n    command: node\n';

describe('config loading', () => {
  it('fills every default and resolves stdio cwd against the config file', () => {
    const config = parseConfigText(`${minimal}    cwd: servers\n`, 'g.yaml', env);
    expect(config.listener).toMatchObject({ host: '127.0.0.1', port: 8080, path: '/mcp' });
    expect(config.targets['one']).toMatchObject({ transport: 'stdio', args: [], era: 'auto', sessionMode: 'shared', cwd: '/etc/gatehouse/servers' });
  });

  it('takes the port from GATEHOUSE_PORT', () => {
    expect(parseConfigText(minimal, 'g.yaml', { ...env, port: '9123' }).listener.port).toBe(9123);
    expect(() => parseConfigText(minimal, 'g.yaml', { ...env, port: 'eighty' })).toThrow(/GATEHOUSE_PORT/);
  });

  it('refuses a non-loopback bind without authentication', () => {
    const text = `listener:\n  host: 0.0.0.0\n${minimal}`;
    expect(() => parseConfigText(text, 'g.yaml', env)).toThrow(/binding 0\.0\.0\.0 without authentication is refused/);
  });

  it('names the file, the path and the reason of every problem', () => {
    const text = 'targets:\n  bad name!:\n    transport: stdio\n  two:\n    transport: carrier-pigeon\n';
    try {
      parseConfigText(text, 'broken.yaml', env);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      const e = err as ConfigError;
      expect(e.file).toBe('broken.yaml');
      expect(e.message).toContain('broken.yaml');
      expect(e.issues.map((i) => i.path)).toEqual(expect.arrayContaining(['targets.bad name!', 'targets.two.transport']));
    }
  });

  it('reports YAML syntax errors with their line', () => {
    expect(() => parseConfigText('targets:\n  one: [unclosed\n', 'y.yaml', env)).toThrow(/y\.yaml[\s\S]*YAML line/);
  });

  it('refuses unknown keys (typos must not be silently ignored)', () => {
    expect(() => parseConfigText(`${minimal}    comand: typo\n`, 'g.yaml', env)).toThrow(/targets\.one/);
  });

  it('refuses toolsets that name unknown targets', () => {
    expect(() => parseConfigText(`${minimal}toolsets:\n  t:\n    tools: [nope/x]\n`, 'g.yaml', env)).toThrow(/toolsets\.t\.tools\.0: unknown target "nope"/);
  });

  it('reports an unreadable file as a config error', async () => {
    await expect(loadConfigFile('/nonexistent/gatehouse.yaml', env)).rejects.toThrow(/cannot read file \(ENOENT\)/);
  });

  it('loads every example config', async () => {
    const dir = path.resolve(import.meta.dirname, '../../examples');
    for (const file of ['default.yaml']) {
      const config = await loadConfigFile(path.join(dir, file), { configDir: dir });
      expect(Object.keys(config.targets).length).toBeGreaterThan(0);
    }
  });

  it('reads a file from disk', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'gh-config-'));
    writeFileSync(path.join(dir, 'g.yaml'), minimal);
    const config = await loadConfigFile(path.join(dir, 'g.yaml'), { configDir: dir });
    expect(Object.keys(config.targets)).toEqual(['one']);
  });
});
