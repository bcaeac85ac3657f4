/**
 * Admin routes over the credential vault: `GET /upstream-credentials` (who holds a credential
 * where, and its state), `DELETE /upstream-credentials` (revoke a subject's or a whole target's
 * rows, upstream and in memory too), `POST /upstream-credentials/connect` (an operator's link for a
 * target's first authorization) and `POST /vault/rotate` (re-encrypt every row under the active key). Output is built
 * from summaries field by field, so no value can ride along; the changes are audited.
 */
import type { IncomingMessage } from 'node:http';
import { GatehouseError, toGatehouseError } from '../protocol/errors.ts';
import { sendJson } from '../downstream/http-answers.ts';
import type { AuditService } from '../audit/audit-service.ts';
import { isCredentialKind, isCredentialSubject, type CredentialKind, type CredentialSubject, type CredentialSummary, type CredentialVault } from '../vault/credential-vault.ts';
import type { AdminRoute } from './admin-listener.ts';

const NO_STORE = { 'cache-control': 'no-store' };

interface Filter {
  tenant?: string;
  target?: string;
  subject?: CredentialSubject;
  kind?: CredentialKind;
}

/**
 * The query's filter. Unknown parameters are refused: a misspelt `?subjet=` on a DELETE must
 * not quietly widen the revocation to the whole target.
 */
function filterOf(url: URL, allowed: readonly (keyof Filter)[]): Filter {
  const filter: Filter = {};
  for (const [name, value] of url.searchParams) {
    if (!(allowed as readonly string[]).includes(name)) throw new GatehouseError('INVALID_PARAMS', `unknown parameter ${name}; allowed: ${allowed.join(', ')}`);
    if (value === '') throw new GatehouseError('INVALID_PARAMS', `${name} is empty`);
    if (name === 'subject') {
      if (!isCredentialSubject(value)) throw new GatehouseError('INVALID_PARAMS', 'subject must be `service` or `user:<id>`');
      filter.subject = value;
    } else if (name === 'kind') {
      if (!isCredentialKind(value)) throw new GatehouseError('INVALID_PARAMS', 'kind must be oauth-tokens, oauth-client, oauth-discovery or identity-token');
      filter.kind = value;
    } else if (name === 'tenant' || name === 'target') {
      filter[name] = value;
    }
  }
  return filter;
}

/** A summary as the admin API shows it: every field named here, nothing else passes. */
function shown(summary: CredentialSummary): Record<string, unknown> {
  const { key, meta } = summary;
  return {
    tenant: key.tenant,
    target: key.target,
    subject: key.subject,
    kind: key.kind,
    status: meta.status,
    expiresAt: meta.expiresAt,
    refreshAt: meta.refreshAt,
    failures: meta.failures,
    lastError: meta.lastError,
    updatedAt: meta.updatedAt,
    keyId: meta.keyId,
  };
}

/** Starts a connect-page flow for a user an operator names (the first authorization of a target). */
export type StartConnect = (request: { tenant: string; target: string; user: string; agent: string }) => { elicitationId: string; url: string; expiresAt: number };

/** Revokes what a DELETE names everywhere it lives (upstream, memory, connections), then deletes the rows. */
export type RevokeCredentials = (filter: { tenant: string; target: string; subject?: CredentialSubject | undefined }) => Promise<number>;

export function credentialRoutes(deps: { vault: () => CredentialVault | undefined; audit: () => AuditService | undefined; connect?: StartConnect; revoke?: RevokeCredentials }): AdminRoute[] {
  const vaultOrThrow = (): CredentialVault => {
    const vault = deps.vault();
    if (vault === undefined) throw new GatehouseError('NOT_FOUND', 'no credential vault runs here (vault.keys is empty)');
    return vault;
  };
  /** Run an admin change and audit it either way; a failure is audited with its error type, then answered. */
  const audited = async <T>(action: string, details: Record<string, unknown>, work: () => Promise<T>, outcome: (result: T) => Record<string, unknown>): Promise<T> => {
    let result: T;
    try {
      result = await work();
    } catch (err) {
      const error = toGatehouseError(err);
      await deps.audit()?.admin(action, { outcome: 'error', errorType: error.spec.type, details: { ...details, ...error.details.data } });
      throw error;
    }
    await deps.audit()?.admin(action, { outcome: 'ok', details: { ...details, ...outcome(result) } });
    return result;
  };

  return [
    {
      method: 'GET',
      path: '/upstream-credentials',
      async handle(_req: IncomingMessage, res, url) {
        const vault = vaultOrThrow();
        const filter = filterOf(url, ['tenant', 'target', 'subject', 'kind']);
        const credentials = (await vault.list(filter)).map(shown);
        sendJson(res, 200, { activeKey: vault.activeKeyId, credentials }, NO_STORE);
      },
    },
    {
      method: 'DELETE',
      path: '/upstream-credentials',
      async handle(_req, res, url) {
        const vault = vaultOrThrow();
        const filter = filterOf(url, ['tenant', 'target', 'subject']);
        // A revocation is always scoped to one tenant's target; wider sweeps are several calls.
        if (filter.tenant === undefined || filter.target === undefined) throw new GatehouseError('INVALID_PARAMS', 'tenant and target are required (subject narrows to one user or the service identity)');
        const { tenant, target, subject } = filter;
        const deleted = await audited('upstream-credentials/delete', { tenant, target, subject: subject ?? null }, () => (deps.revoke ?? ((f) => vault.deleteWhere(f)))({ tenant, target, subject }), (n) => ({ deleted: n }));
        sendJson(res, 200, { deleted }, NO_STORE);
      },
    },
    {
      // A user-oauth target lists nothing until some user authorized it (discovery needs a
      // token): an operator hands that first user this link. The connect page still proves the
      // browser is that user, so the link is no credential.
      method: 'POST',
      path: '/upstream-credentials/connect',
      async handle(_req, res, url) {
        const connect = deps.connect;
        if (connect === undefined) throw new GatehouseError('NOT_FOUND', 'no connect page runs here');
        const param = (name: string): string => {
          const value = url.searchParams.get(name);
          if (value === null || value === '') throw new GatehouseError('INVALID_PARAMS', `${name} is required`);
          return value;
        };
        const request = { tenant: param('tenant'), target: param('target'), user: param('user'), agent: url.searchParams.get('agent') || 'operator' };
        const flow = await audited('upstream-credentials/connect', request, async () => connect(request), () => ({}));
        sendJson(res, 200, { elicitationId: flow.elicitationId, url: flow.url, expiresAt: flow.expiresAt }, NO_STORE);
      },
    },
    {
      method: 'POST',
      path: '/vault/rotate',
      async handle(_req, res) {
        const vault = vaultOrThrow();
        const result = await audited('vault/rotate', { activeKey: vault.activeKeyId }, () => vault.rotate(), (r) => ({ rewritten: r.rewritten }));
        sendJson(res, 200, { rewritten: result.rewritten, activeKey: result.activeKey }, NO_STORE);
      },
    },
  ];
}
