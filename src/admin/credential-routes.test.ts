// The vault's admin routes over a real admin listener (127.0.0.1), a real SQLite store and the
// real audit service: listing, revoking and rotating work and are audited, and a canary secret
// stored in the vault appears in no admin response and in no audit row.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../clock.ts';
import { parseConfig } from '../config/load.ts';
import { AuditService } from '../audit/audit-service.ts';
import { createLogger } from '../telemetry/log.ts';
import { SqliteStore } from '../storage/sqlite-store.ts';
import type { AuditRow } from '../storage/store.ts';
import { createCredentialVault, type CredentialVault } from '../vault/credential-vault.ts';
import { VaultCipher, generateVaultKey } from '../vault/vault-cipher.ts';
import { AdminListener } from './admin-listener.ts';
import { credentialRoutes } from './credential-routes.ts';

const CANARY = 'canary-b81d-upstream-access-token-never-shown';
const K1 = generateVaultKey();
const K2 = generateVaultKey();

describe('admin credential routes', () => {
  const clock = new ManualClock();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'gh-credential-routes-'));
  const store = SqliteStore.open({ file: path.join(dir, 'gatehouse.db') });
  const config = parseConfig({ targets: { t: { transport: 'stdio', command: 'x' } } }, 'test', { configDir: dir });
  const audit = new AuditService({ store, config: () => config, clock, logger: createLogger('silent'), targetVersion: () => null });
  let vault: CredentialVault | undefined;
  const admin = new AdminListener({ settings: () => ({ allowedHosts: [], allowedOrigins: [] }), onInternalError: () => undefined });
  const bodies: string[] = [];
  let port = 0;

  const call = async (method: string, pathAndQuery: string): Promise<{ status: number; body: string }> => {
    const res = await fetch(`http://127.0.0.1:${port}${pathAndQuery}`, { method });
    const body = await res.text();
    bodies.push(body);
    return { status: res.status, body };
  };
  const auditRows = async (): Promise<AuditRow[]> => {
    const rows: AuditRow[] = [];
    for await (const row of store.queryAudit({})) rows.push(row);
    return rows;
  };

  beforeAll(async () => {
    await store.migrate();
    await audit.start();
    for (const route of credentialRoutes({ vault: () => vault, audit: () => audit })) admin.addRoute(route);
    port = await admin.listen('127.0.0.1', 0);
  });

  afterAll(async () => {
    try {
      await admin.close();
      await audit.close();
      await store.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('answers 404 while no vault is configured', async () => {
    expect((await call('GET', '/upstream-credentials')).status).toBe(404);
    expect((await call('POST', '/vault/rotate')).status).toBe(404);
  });

  it('lists, revokes and rotates without ever showing a value, and audits the changes', async () => {
    const table = store.credentialTable();
    vault = createCredentialVault(table, new VaultCipher([{ id: 'k1', secret: K1 }]), clock);
    const alice = { tenant: 'default', target: 'github', subject: 'user:alice', kind: 'oauth-tokens' } as const;
    await vault.put(alice, { access_token: CANARY, refresh_token: CANARY }, { expiresAt: clock.now() + 3_600_000, lastError: null });
    await vault.put({ ...alice, subject: 'user:bob' }, { access_token: CANARY });
    await vault.put({ ...alice, subject: 'service', kind: 'oauth-client' }, { client_id: 'gh', client_secret: CANARY });
    await vault.put({ ...alice, target: 'jira' }, { access_token: CANARY });

    const listed = await call('GET', '/upstream-credentials');
    expect(listed.status).toBe(200);
    const parsed = JSON.parse(listed.body) as { activeKey: string; credentials: Array<Record<string, unknown>> };
    expect(parsed.activeKey).toBe('k1');
    expect(parsed.credentials).toHaveLength(4);
    expect(parsed.credentials[0]).toEqual({
      tenant: 'default',
      target: 'github',
      subject: 'service',
      kind: 'oauth-client',
      status: 'active',
      expiresAt: null,
      refreshAt: null,
      failures: 0,
      lastError: null,
      updatedAt: clock.now(),
      keyId: 'k1',
    });
    const filtered = JSON.parse((await call('GET', '/upstream-credentials?target=github&subject=user:alice')).body) as { credentials: unknown[] };
    expect(filtered.credentials).toHaveLength(1);
    expect((await call('GET', '/upstream-credentials?subject=alice')).status).toBe(400);
    expect((await call('GET', '/upstream-credentials?user=alice')).status).toBe(400);

    // Revocation needs a tenant and a target, and refuses parameters it does not know.
    expect((await call('DELETE', '/upstream-credentials?subject=user:alice')).status).toBe(400);
    expect((await call('DELETE', '/upstream-credentials?tenant=default&target=github&subjet=user:alice')).status).toBe(400);
    const revoked = await call('DELETE', '/upstream-credentials?tenant=default&target=github&subject=user:alice');
    expect(revoked).toEqual({ status: 200, body: JSON.stringify({ deleted: 1 }) });
    expect(await vault.get(alice)).toBeUndefined();
    expect(await vault.get({ ...alice, subject: 'user:bob' })).toBeDefined();

    // Rotation under a keyring whose active key is new.
    vault = createCredentialVault(
      table,
      new VaultCipher([
        { id: 'k1', secret: K1 },
        { id: 'k2', secret: K2 },
      ]),
      clock,
    );
    const rotated = await call('POST', '/vault/rotate');
    expect(rotated.status).toBe(200);
    expect(JSON.parse(rotated.body)).toEqual({ rewritten: 3, activeKey: 'k2' });
    expect(await table.countByKey()).toEqual([{ keyId: 'k2', rows: 3 }]);

    // A row that does not decrypt: the rotation fails, is audited as failed, and still names no secret.
    const bob = (await table.find({ ...alice, subject: 'user:bob' }))!;
    await table.upsert({ ...bob, subject: 'user:mallory', keyId: 'k1', ciphertext: bob.ciphertext.replace(/^v1\.k2\./, 'v1.k1.') });
    const failed = await call('POST', '/vault/rotate');
    expect(failed.status).toBe(502);
    expect(JSON.parse(failed.body)).toMatchObject({ error: { data: { type: 'upstream_credential_unavailable', rewritten: 0, unreadable: 1, activeKey: 'k2' } } });

    const rows = await auditRows();
    const actions = rows.filter((r) => r.kind === 'admin').map((r) => `${r.tool}:${r.outcome}`);
    expect(actions).toEqual(['upstream-credentials/delete:ok', 'vault/rotate:ok', 'vault/rotate:error']);
    const deleted = rows.find((r) => r.tool === 'upstream-credentials/delete')!;
    expect(JSON.parse(deleted.args!)).toEqual({ tenant: 'default', target: 'github', subject: 'user:alice', deleted: 1 });

    // The canary is nowhere: not in a response, not in an audit row (any column).
    for (const body of bodies) expect(body).not.toContain(CANARY);
    for (const row of rows) expect(JSON.stringify(row)).not.toContain(CANARY);
    // Nor is any envelope (ciphertext) shown.
    for (const body of bodies) expect(body).not.toMatch(/v1\.k[12]\./);
  });
});
