/**
 * Composition root and CLI: `gatehouse start|validate|connect`. Nothing runs at import time
 * except argument parsing when this file is the entry point.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { loadConfigFile, ConfigError } from './config/load.ts';
import { watchConfigFile } from './config/watch.ts';
import { systemClock } from './clock.ts';
import { Gateway } from './gateway.ts';
import { createLogger } from './telemetry/log.ts';
import { composeAuthorizationServer } from './auth/compose-authorization-server.ts';
import { GATEWAY_VERSION } from './version.ts';
import { registerAuditCommands } from './audit/audit-cli.ts';
import { registerApiKeyCommands } from './auth/api-key-cli.ts';
import { registerVaultCommands } from './vault/vault-cli.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
/** The embedded default: two real MCP servers from npm over stdio. */
export const DEFAULT_CONFIG = path.resolve(here, '../examples/default.yaml');

function envFor(file: string): { configDir: string; port: string | undefined } {
  return { configDir: path.dirname(path.resolve(file)), port: process.env['GATEHOUSE_PORT'] };
}

async function start(file: string): Promise<void> {
  const config = await loadConfigFile(file, envFor(file));
  const logger = createLogger(config.logging.level);
  const gateway = new Gateway({
    config,
    logger,
    // The OAuth authorization server (auth.mode: oauth), on the store the gateway opened.
    authorizationServer: composeAuthorizationServer(envFor(file).configDir),
    // Upstream credentials' secret files resolve from the config file's directory.
    configDir: envFor(file).configDir,
  });
  await gateway.start();
  const url = gateway.url;
  const ready = gateway.targets();
  // Loopback + auth.mode oauth: a fresh 12-hour development key, shown here once.
  const devKey = await gateway.mintDevCredential();
  const authLines =
    config.auth.mode !== 'oauth'
      ? ['Authentication: none (loopback only; set auth.mode: oauth to require credentials)']
      : [
          `Authentication: OAuth (issuer ${gateway.publicBase}/oauth, metadata ${gateway.publicBase}/.well-known/oauth-protected-resource${config.listener.path})`,
          ...(devKey === undefined
            ? []
            : [
                '',
                'Development API key (12 h, replaces the previous one; shown once):',
                `  ${devKey}`,
                `  try: curl -s -H 'Authorization: Bearer ${devKey}' -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' -H 'MCP-Protocol-Version: 2026-07-28' -H 'Mcp-Method: tools/list' -d '{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}' ${url}`,
              ]),
        ];
  const header = devKey === undefined ? '' : ` --header 'Authorization: Bearer ${devKey}'`;
  process.stderr.write(
    [
      `Gatehouse ${GATEWAY_VERSION} is serving ${ready.length} target(s) from ${file}`,
      ...ready.map((t) => `  - ${t.name} (${t.transport}): ${t.state}${t.lastError ? ` — ${t.lastError}` : ''}, ${t.tools} tools`),
      '',
      `MCP endpoint (Streamable HTTP, 2026-07-28 and 2025-era): ${url}`,
      ...(config.listener.legacySse ? [`Legacy HTTP+SSE endpoint (2024-11-05):              ${url.replace(/\/mcp$/, '')}/sse`] : []),
      ...Object.keys(config.toolsets).map((t) => `Toolset ${t}: ${url}/${t}`),
      ...(config.admin.enabled ? [`Admin (metrics, SLOs, audit):                       http://${config.admin.host}:${gateway.adminPort}/metrics`] : []),
      ...(config.audit.enabled ? [`Audit trail: ${config.storage.driver}${config.storage.driver === 'sqlite' ? ` ${config.storage.path}` : ''}`] : []),
      ...authLines,
      '',
      'Connect a client:',
      `  - Streamable HTTP clients: point them at ${url}${devKey === undefined ? '' : ' with the header Authorization: Bearer <key>'}`,
      `  - stdio-only clients:      npx gatehouse connect ${url}${devKey === undefined ? '' : ` -H 'Authorization: Bearer <key>'`}`,
      `  - MCP Inspector:           npx @modelcontextprotocol/inspector --cli ${url}${header} --method tools/list`,
      '',
    ].join('\n'),
  );
  const stopWatching = watchConfigFile(file, systemClock, () => {
    loadConfigFile(file, envFor(file))
      .then(async (next) => {
        await gateway.reload(next);
        logger.info({ kind: 'config', version: gateway.snapshot.version }, 'configuration reloaded');
      })
      .catch((err: unknown) => {
        // A bad edit never replaces the running config: the last good snapshot stays.
        const issues = err instanceof ConfigError ? err.issues : [{ path: '', reason: (err as Error).message }];
        logger.error({ kind: 'config', file, issues }, 'configuration refused; keeping the last good one');
        void gateway.auditRefusedReload(issues.map((i) => `${i.path}: ${i.reason}`).join('; ')).catch(() => undefined);
      });
  });
  const shutdown = (signal: string): void => {
    logger.info({ kind: 'lifecycle', signal }, 'shutting down');
    stopWatching();
    void gateway.stop().then(() => process.exit(0));
  };
  process.once('SIGINT', () => shutdown('SIGINT'));
  process.once('SIGTERM', () => shutdown('SIGTERM'));
}

export function buildCli(): Command {
  const program = new Command('gatehouse').description('An MCP gateway').version(GATEWAY_VERSION);
  program
    .command('start')
    .description('run the gateway')
    .option('-c, --config <file>', 'configuration file (YAML)', DEFAULT_CONFIG)
    .action(async (opts: { config: string }) => start(opts.config));
  program
    .command('validate')
    .description('check a configuration file and print what it normalizes to')
    .requiredOption('-c, --config <file>', 'configuration file (YAML)')
    .option('--quiet', 'print nothing on success')
    .action(async (opts: { config: string; quiet?: boolean }) => {
      const config = await loadConfigFile(opts.config, envFor(opts.config));
      if (!opts.quiet) process.stdout.write(`${JSON.stringify(config, null, 2)}\n`);
      process.stderr.write(`${opts.config}: valid (${Object.keys(config.targets).length} targets)\n`);
    });
  program
    .command('connect')
    .description('serve MCP on stdio and relay it to a remote gateway (for stdio-only clients)')
    .argument('<url>', 'the gateway MCP endpoint, e.g. http://127.0.0.1:8080/mcp')
    .option('-H, --header <header...>', 'extra HTTP header, "Name: value"')
    .action(async (url: string, opts: { header?: string[] }) => {
      const headers: Record<string, string> = {};
      for (const h of opts.header ?? []) {
        const i = h.indexOf(':');
        if (i > 0) headers[h.slice(0, i).trim()] = h.slice(i + 1).trim();
      }
      // Loaded here: the bridge is the only user of the MCP SDK's client and server transports,
      // which a serving gateway need not hold in memory.
      const { startStdioBridge } = await import('./downstream/stdio-bridge.ts');
      const bridge = await startStdioBridge({ url, headers });
      await bridge.closed;
      process.exit(0);
    });
  program
    .command('migrate')
    .description('bring the storage schema to this version (start does this too); refuses a database from a newer version')
    .requiredOption('-c, --config <file>', 'configuration file (YAML)')
    .action(async (opts: { config: string }) => {
      // Imported here so the other commands never load the database drivers.
      const { describeStorage, openStore } = await import('./storage/open-store.ts');
      const config = await loadConfigFile(opts.config, envFor(opts.config));
      const { configDir } = envFor(opts.config);
      const store = await openStore(config, undefined, { configDir });
      try {
        const { from, to } = await store.migrate();
        const where = describeStorage(config.storage, configDir);
        process.stdout.write(from === to ? `${where}: already at schema version ${to}\n` : `${where}: migrated schema version ${from} -> ${to}\n`);
      } finally {
        await store.close();
      }
    });
  registerAuditCommands(program, async (file) => {
    const { openStore } = await import('./storage/open-store.ts');
    const config = await loadConfigFile(file, envFor(file));
    return openStore(config, undefined, { configDir: envFor(file).configDir });
  });
  registerApiKeyCommands(program, async (file) => {
    const { openStore } = await import('./storage/open-store.ts');
    const { SqlStore } = await import('./storage/sql-store.ts');
    const config = await loadConfigFile(file, envFor(file));
    const store = await openStore(config, undefined, { configDir: envFor(file).configDir });
    try {
      // The key table may be newer than the database: bring it up (refuses a newer schema).
      await store.migrate();
      if (!(store instanceof SqlStore)) throw new Error('the configured store has no API key table');
      return { keys: store.apiKeyStore(), config, close: () => store.close() };
    } catch (err) {
      await store.close();
      throw err;
    }
  });
  registerVaultCommands(program, async (file) => {
    const { openStore } = await import('./storage/open-store.ts');
    const { SqlStore } = await import('./storage/sql-store.ts');
    const config = await loadConfigFile(file, envFor(file));
    const { configDir } = envFor(file);
    const store = await openStore(config, undefined, { configDir });
    try {
      // The credential table may be newer than the database: bring it up (refuses a newer schema).
      await store.migrate();
      if (!(store instanceof SqlStore)) throw new Error('the configured store has no credential table');
      return { table: store.credentialTable(), config, configDir, close: () => store.close() };
    } catch (err) {
      await store.close();
      throw err;
    }
  });
  return program;
}

export async function main(argv: string[]): Promise<void> {
  try {
    await buildCli().parseAsync(argv);
  } catch (err) {
    process.stderr.write(`${err instanceof ConfigError ? err.message : `gatehouse: ${(err as Error).message}`}\n`);
    process.exit(1);
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  void main(process.argv);
}
