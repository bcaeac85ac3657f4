/**
 * `gatehouse vault generate-key|status|rotate`: the vault's keys, straight against the
 * configured store (the gateway need not be running; `POST /vault/rotate` on the admin listener
 * does the same from a running one).
 *
 * Key rotation, end to end:
 *   1. `gatehouse vault generate-key` and put the output in a secret (env var or file);
 *   2. add it at the end of `vault.keys` (or name it in `vault.activeKey`) on every replica;
 *   3. `gatehouse vault rotate --config <file>`: every row moves to the new key;
 *   4. `gatehouse vault status` shows no row under the old key: drop it from `vault.keys`.
 *
 * Nothing here prints a secret except `generate-key`, whose output is the new key itself.
 */
import type { Command } from 'commander';
import { systemClock } from '../clock.ts';
import type { GatehouseConfig } from '../config/schema.ts';
import type { CredentialTable } from '../storage/credential-table.ts';
import { createCredentialVault } from './credential-vault.ts';
import { createVaultCipher, generateVaultKey } from './vault-cipher.ts';

/** Opens the credential table of the store a config file names (migrated); `close` releases it. */
export type VaultStoreOpener = (configFile: string) => Promise<{ table: CredentialTable; config: GatehouseConfig; configDir: string; close(): Promise<void> }>;

export function registerVaultCommands(program: Command, open: VaultStoreOpener, out: (text: string) => void = (t) => process.stdout.write(t)): void {
  const vault = program.command('vault').description('the keys that encrypt upstream credentials at rest');

  const withTable = async <T>(file: string, use: (opened: Awaited<ReturnType<VaultStoreOpener>>) => Promise<T>): Promise<T> => {
    const opened = await open(file);
    try {
      return await use(opened);
    } finally {
      await opened.close();
    }
  };

  vault
    .command('generate-key')
    .description('print a new key secret (32 random bytes, base64) for vault.keys')
    .action(() => {
      out(
        [
          generateVaultKey(),
          '',
          '# Keep it in a secret store, hand it to the gateway as an environment variable or a file,',
          '# and list it in vault.keys, e.g. { id: k2, secret: { env: GATEHOUSE_VAULT_K2 } }.',
          '',
        ].join('\n'),
      );
    });

  vault
    .command('status')
    .description('the configured keys and how many credentials each one encrypts (never a value)')
    .requiredOption('-c, --config <file>', 'configuration file (YAML)')
    .option('--json', 'one JSON object')
    .action(async (opts: { config: string; json?: boolean }) => {
      await withTable(opts.config, async ({ table, config, configDir }) => {
        const configured = config.vault.keys.map((k) => k.id);
        const active = config.vault.activeKey ?? configured[configured.length - 1] ?? null;
        // The secrets are resolved and checked too, but a failure is reported, not fatal: counts
        // are what an operator needs when a key went missing.
        let keyCheck: string;
        try {
          createVaultCipher(config.vault, configDir);
          keyCheck = 'ok';
        } catch (err) {
          keyCheck = (err as Error).message;
        }
        const counts = new Map((await table.countByKey()).map((c) => [c.keyId, c.rows]));
        const keys = [...new Set([...configured, ...counts.keys()])].map((id) => ({
          id,
          configured: configured.includes(id),
          active: id === active,
          rows: counts.get(id) ?? 0,
        }));
        if (opts.json) {
          out(`${JSON.stringify({ activeKey: active, keyCheck, keys })}\n`);
          return;
        }
        out(`active key: ${active ?? '(none: vault.keys is empty)'}\nkey check: ${keyCheck}\n`);
        for (const key of keys) {
          const state = !key.configured ? 'NOT CONFIGURED (these rows cannot be read)' : key.active ? 'active' : key.rows > 0 ? 'decrypt only (run `gatehouse vault rotate`)' : 'decrypt only (no rows: may be dropped)';
          out(`${key.id.padEnd(32)}  ${String(key.rows).padStart(8)} rows  ${state}\n`);
        }
      });
    });

  vault
    .command('rotate')
    .description('re-encrypt every credential not under the active key')
    .requiredOption('-c, --config <file>', 'configuration file (YAML)')
    .action(async (opts: { config: string }) => {
      await withTable(opts.config, async ({ table, config, configDir }) => {
        const credentials = createCredentialVault(table, createVaultCipher(config.vault, configDir), systemClock);
        const { rewritten, activeKey } = await credentials.rotate();
        out(`rewrote ${rewritten} credential(s) under key ${activeKey}\n`);
      });
    });
}
