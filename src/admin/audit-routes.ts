/**
 * Admin routes over the audit trail: `GET /audit` (the same filters as `gatehouse audit
 * query`, streamed as JSONL or CSV) and `GET /audit/verify` (the hash chain verdict).
 * Reading the trail is itself an admin action, and audited as one.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { GatehouseError } from '../protocol/errors.ts';
import { sendJson } from '../downstream/http-answers.ts';
import { auditQueryOf } from '../audit/audit-cli.ts';
import { exportRows } from '../audit/audit-export.ts';
import { verifyChain } from '../audit/chain.ts';
import type { AuditService } from '../audit/audit-service.ts';
import type { Store } from '../storage/store.ts';
import type { AdminRoute } from './admin-listener.ts';

const FILTERS = ['from', 'to', 'user', 'agent', 'tool', 'outcome', 'tenant', 'limit'] as const;

export function auditRoutes(deps: { store: () => Store | undefined; audit: () => AuditService | undefined }): AdminRoute[] {
  const ready = (): { store: Store; audit: AuditService } => {
    const store = deps.store();
    const audit = deps.audit();
    if (store === undefined || audit === undefined) throw new GatehouseError('AUDIT_UNAVAILABLE', 'the audit trail is off or not started');
    return { store, audit };
  };
  return [
    {
      method: 'GET',
      path: '/audit',
      async handle(req: IncomingMessage, res: ServerResponse) {
        const { store, audit } = ready();
        const url = new URL(req.url ?? '/', 'http://admin.invalid');
        const format = url.searchParams.get('format') ?? 'jsonl';
        if (format !== 'jsonl' && format !== 'csv') throw new GatehouseError('INVALID_PARAMS', 'format must be jsonl or csv');
        const filters: Record<string, string> = {};
        for (const key of FILTERS) {
          const value = url.searchParams.get(key);
          if (value !== null) filters[key] = value;
        }
        let query;
        try {
          query = auditQueryOf(filters);
        } catch (err) {
          throw new GatehouseError('INVALID_PARAMS', (err as Error).message);
        }
        await audit.admin('audit/query', { outcome: 'ok', details: { ...filters, format } });
        res.writeHead(200, { 'content-type': format === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson', 'cache-control': 'no-store' });
        for await (const chunk of exportRows(store.queryAudit(query), format)) {
          if (!res.write(chunk)) await new Promise((resolve) => res.once('drain', resolve));
          if (res.destroyed) return;
        }
        res.end();
      },
    },
    {
      method: 'GET',
      path: '/audit/verify',
      async handle(_req, res) {
        const { store, audit } = ready();
        const verdict = await verifyChain(store.queryAudit({}));
        await audit.admin('audit/verify', { outcome: verdict.ok ? 'ok' : 'broken', details: verdict });
        sendJson(res, verdict.ok ? 200 : 409, verdict, { 'cache-control': 'no-store' });
      },
    },
  ];
}
