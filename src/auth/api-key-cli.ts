/**
 * `gatehouse keys create|list|revoke`: service-account API keys, straight in the configured
 * store (the gateway need not be running; a running gateway sees a revocation within its
 * cache lifetime). `create` prints the key once; nothing ever prints a secret or a hash again.
 */
import type { Command } from 'commander';
import { systemClock } from '../clock.ts';
import type { GatehouseConfig } from '../config/schema.ts';
import type { ApiKeyStore } from '../storage/api-key-table.ts';
import { ApiKeyService, type ApiKeyInfo } from './api-keys.ts';

/** Opens the API key table of the store a config file names (migrated); `close` releases it. */
export type ApiKeyStoreOpener = (configFile: string) => Promise<{ keys: ApiKeyStore; config: GatehouseConfig; close(): Promise<void> }>;

interface CreateOptions {
  config: string;
  user: string;
  agent: string;
  tenant?: string;
  roles?: string;
  ttlDays: string;
  name?: string;
}

function state(key: ApiKeyInfo, now: number): string {
  if (key.revokedAt !== null) return `revoked ${new Date(key.revokedAt).toISOString()}`;
  return key.expiresAt <= now ? 'expired' : 'active';
}

export function registerApiKeyCommands(program: Command, open: ApiKeyStoreOpener, out: (text: string) => void = (t) => process.stdout.write(t)): void {
  const keys = program.command('keys').description('API keys for service accounts (auth.mode: oauth)');

  const withService = async <T>(file: string, use: (service: ApiKeyService, config: GatehouseConfig) => Promise<T>): Promise<T> => {
    const opened = await open(file);
    try {
      return await use(new ApiKeyService(opened.keys, systemClock, () => opened.config.auth.apiKeys.maxTtlDays), opened.config);
    } finally {
      await opened.close();
    }
  };

  keys
    .command('create')
    .description('create a key and print it once')
    .requiredOption('-c, --config <file>', 'configuration file (YAML)')
    .requiredOption('--user <account>', 'the service account the key acts as')
    .requiredOption('--agent <name>', 'the agent name recorded for calls made with the key')
    .option('--tenant <tenant>', 'tenant (default: the first of auth.tenants)')
    .option('--roles <roles>', 'comma-separated roles', '')
    .requiredOption('--ttl-days <days>', 'lifetime in days (at most auth.apiKeys.maxTtlDays)')
    .option('--name <label>', 'a label for `keys list`')
    .action(async (opts: CreateOptions) => {
      const ttlDays = Number(opts.ttlDays);
      if (!Number.isInteger(ttlDays) || ttlDays < 1) throw new Error('--ttl-days must be a whole number of days, at least 1');
      await withService(opts.config, async (service, config) => {
        const tenant = opts.tenant ?? config.auth.tenants[0] ?? 'default';
        if (!config.auth.tenants.includes(tenant)) throw new Error(`--tenant ${tenant} is not in auth.tenants`);
        const roles = (opts.roles ?? '').split(',').map((r) => r.trim()).filter((r) => r !== '');
        const { key, secret } = await service.create({ user: opts.user, agent: opts.agent, tenant, roles, ttlDays, name: opts.name });
        out(
          [
            `Created API key ${key.id} for ${key.user} (agent ${key.agent}, tenant ${key.tenant}, roles ${key.roles.join(',') || '-'}), expires ${new Date(key.expiresAt).toISOString()}.`,
            'The key is shown once; store it now:',
            '',
            `  ${secret}`,
            '',
            'Agents send it as: Authorization: Bearer <the key>',
            '',
          ].join('\n'),
        );
      });
    });

  keys
    .command('list')
    .description('list keys (never their secrets)')
    .requiredOption('-c, --config <file>', 'configuration file (YAML)')
    .option('--json', 'one JSON object per line')
    .action(async (opts: { config: string; json?: boolean }) => {
      await withService(opts.config, async (service) => {
        const now = Date.now();
        const all = await service.list();
        if (opts.json) {
          for (const key of all) out(`${JSON.stringify({ ...key, state: state(key, now) })}\n`);
          return;
        }
        if (all.length === 0) out('no API keys\n');
        for (const key of all) {
          out(`${key.id}  ${state(key, now).padEnd(8)}  user=${key.user} agent=${key.agent} tenant=${key.tenant} roles=${key.roles.join(',') || '-'}${key.name ? ` name=${key.name}` : ''}  expires=${new Date(key.expiresAt).toISOString()}\n`);
        }
      });
    });

  keys
    .command('revoke')
    .description('revoke a key by id')
    .argument('<id>', 'the key id (from `keys list`)')
    .requiredOption('-c, --config <file>', 'configuration file (YAML)')
    .action(async (id: string, opts: { config: string }) => {
      await withService(opts.config, async (service) => {
        if (!(await service.revoke(id))) throw new Error(`no active API key ${id}`);
        out(`revoked ${id}\n`);
      });
    });
}
