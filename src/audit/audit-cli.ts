/**
 * `gatehouse audit verify` and `gatehouse audit query`: the operator's view of the trail,
 * straight from the configured store (the gateway need not be running).
 */
import type { Command } from 'commander';
import type { Store, AuditQuery } from '../storage/store.ts';
import { exportRows, type ExportFormat } from './audit-export.ts';
import { verifyChain } from './chain.ts';

/** Opens the store a config file names; the CLI owns closing it. */
export type StoreOpener = (configFile: string) => Promise<Store>;

function parseTime(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const ms = /^\d+$/.test(value) ? Number(value) : Date.parse(value);
  if (!Number.isFinite(ms)) throw new Error(`${flag}: not a time (ISO 8601 or epoch milliseconds): ${value}`);
  return ms;
}

export interface QueryOptions {
  config: string;
  from?: string;
  to?: string;
  user?: string;
  agent?: string;
  tool?: string;
  outcome?: string;
  tenant?: string;
  limit?: string;
  format: string;
}

/** The store query a set of CLI (or admin API) filters means. */
export function auditQueryOf(opts: Omit<QueryOptions, 'config' | 'format'>): AuditQuery {
  const query: AuditQuery = {};
  const from = parseTime(opts.from, '--from');
  const to = parseTime(opts.to, '--to');
  if (from !== undefined) query.from = from;
  if (to !== undefined) query.to = to;
  if (opts.user) query.user = opts.user;
  if (opts.agent) query.agent = opts.agent;
  if (opts.tool) query.tool = opts.tool;
  if (opts.outcome) query.outcome = opts.outcome;
  if (opts.tenant) query.tenant = opts.tenant;
  if (opts.limit !== undefined) {
    const limit = Number(opts.limit);
    if (!Number.isInteger(limit) || limit < 1) throw new Error(`--limit: not a positive integer: ${opts.limit}`);
    query.limit = limit;
  }
  return query;
}

export function registerAuditCommands(program: Command, openStore: StoreOpener): void {
  const audit = program.command('audit').description('verify and query the audit trail');
  audit
    .command('verify')
    .description('check the hash chain; names the first broken row and exits 1 when there is one')
    .requiredOption('-c, --config <file>', 'configuration file (YAML)')
    .action(async (opts: { config: string }) => {
      const store = await openStore(opts.config);
      try {
        const verdict = await verifyChain(store.queryAudit({}));
        if (verdict.ok) {
          process.stdout.write(`audit chain ok: ${verdict.checked} rows\n`);
        } else {
          process.stdout.write(`audit chain BROKEN at row ${verdict.broken!.seq}: ${verdict.broken!.reason} (${verdict.checked} rows before it verified)\n`);
          process.exitCode = 1;
        }
      } finally {
        await store.close();
      }
    });
  audit
    .command('query')
    .description('print audit rows matching the filters, as JSONL or CSV')
    .requiredOption('-c, --config <file>', 'configuration file (YAML)')
    .option('--from <time>', 'rows at or after this time (ISO 8601 or epoch ms)')
    .option('--to <time>', 'rows before this time')
    .option('--user <user>')
    .option('--agent <agent>')
    .option('--tool <tool>')
    .option('--outcome <outcome>', 'ok, error, upstream_error, cancelled, rejected …')
    .option('--tenant <tenant>')
    .option('--limit <n>')
    .option('--format <format>', 'jsonl or csv', 'jsonl')
    .action(async (opts: QueryOptions) => {
      if (opts.format !== 'jsonl' && opts.format !== 'csv') throw new Error(`--format: jsonl or csv, not ${opts.format}`);
      const query = auditQueryOf(opts);
      const store = await openStore(opts.config);
      try {
        for await (const chunk of exportRows(store.queryAudit(query), opts.format as ExportFormat)) {
          if (!process.stdout.write(chunk)) await new Promise((resolve) => process.stdout.once('drain', resolve));
        }
      } finally {
        await store.close();
      }
    });
}
