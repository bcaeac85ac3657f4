// An in-memory CredentialVault for unit tests of the upstream OAuth client: the contract of
// src/vault/credential-vault.ts without encryption or a database. Values are deep-copied in and
// out, as a real vault round-trips them through JSON, so a test cannot pass by sharing objects.
import type { Clock } from '../../src/clock.ts';
import type {
  CredentialKey, CredentialKind, CredentialMeta, CredentialSubject, CredentialSummary, CredentialVault, StoredCredential,
} from '../../src/vault/credential-vault.ts';

interface Row {
  key: CredentialKey;
  value: string;
  meta: CredentialMeta;
}

function id(key: CredentialKey): string {
  return [key.tenant, key.target, key.subject, key.kind].join('\u0000');
}

function matches(key: CredentialKey, filter: { tenant?: string; target?: string; subject?: CredentialSubject; kind?: CredentialKind }): boolean {
  return (filter.tenant === undefined || filter.tenant === key.tenant)
    && (filter.target === undefined || filter.target === key.target)
    && (filter.subject === undefined || filter.subject === key.subject)
    && (filter.kind === undefined || filter.kind === key.kind);
}

export class MemoryVault implements CredentialVault {
  readonly activeKeyId = 'memory';
  private readonly rows = new Map<string, Row>();
  /** Every write, for assertions (`put` and `mark`). */
  readonly writes: Array<{ op: 'put' | 'mark' | 'delete'; key: CredentialKey; meta?: Partial<CredentialMeta> }> = [];

  constructor(private readonly clock: Pick<Clock, 'now'> = { now: () => Date.now() }) {}

  async get<T = unknown>(key: CredentialKey): Promise<StoredCredential<T> | undefined> {
    const row = this.rows.get(id(key));
    return row === undefined ? undefined : { key: { ...row.key }, value: JSON.parse(row.value) as T, meta: { ...row.meta } };
  }

  async put(key: CredentialKey, value: unknown, meta: Partial<Pick<CredentialMeta, 'status' | 'expiresAt' | 'refreshAt' | 'failures' | 'lastError'>> = {}): Promise<void> {
    this.writes.push({ op: 'put', key, meta });
    this.rows.set(id(key), {
      key: { ...key },
      value: JSON.stringify(value),
      meta: {
        status: meta.status ?? 'active',
        expiresAt: meta.expiresAt ?? null,
        refreshAt: meta.refreshAt ?? null,
        failures: meta.failures ?? 0,
        lastError: meta.lastError ?? null,
        updatedAt: this.clock.now(),
        keyId: this.activeKeyId,
      },
    });
  }

  async mark(key: CredentialKey, meta: Partial<Pick<CredentialMeta, 'status' | 'refreshAt' | 'failures' | 'lastError'>>): Promise<void> {
    const row = this.rows.get(id(key));
    if (row === undefined) return;
    this.writes.push({ op: 'mark', key, meta });
    row.meta = { ...row.meta, ...meta, updatedAt: this.clock.now() };
  }

  async delete(key: CredentialKey): Promise<boolean> {
    this.writes.push({ op: 'delete', key });
    return this.rows.delete(id(key));
  }

  async deleteWhere(filter: { tenant?: string; target?: string; subject?: CredentialSubject }): Promise<number> {
    let n = 0;
    for (const [k, row] of this.rows) {
      if (matches(row.key, filter)) {
        this.rows.delete(k);
        n++;
      }
    }
    return n;
  }

  async list(filter: { tenant?: string; target?: string; subject?: CredentialSubject; kind?: CredentialKind } = {}): Promise<CredentialSummary[]> {
    return [...this.rows.values()].filter((row) => matches(row.key, filter)).map((row) => ({ key: { ...row.key }, meta: { ...row.meta } }));
  }

  async due(now: number, limit = 100): Promise<CredentialSummary[]> {
    return [...this.rows.values()]
      .filter((row) => row.key.kind === 'oauth-tokens' && row.meta.status === 'active' && row.meta.refreshAt !== null && row.meta.refreshAt <= now)
      .sort((a, b) => (a.meta.refreshAt ?? 0) - (b.meta.refreshAt ?? 0))
      .slice(0, limit)
      .map((row) => ({ key: { ...row.key }, meta: { ...row.meta } }));
  }

  async claim(key: CredentialKey, expected: number, until: number): Promise<boolean> {
    const row = this.rows.get(id(key));
    if (row === undefined || row.meta.status !== 'active' || row.meta.refreshAt !== expected) return false;
    this.writes.push({ op: 'mark', key, meta: { refreshAt: until } });
    row.meta = { ...row.meta, refreshAt: until, updatedAt: this.clock.now() };
    return true;
  }

  async rotate(): Promise<{ rewritten: number; activeKey: string }> {
    return { rewritten: 0, activeKey: this.activeKeyId };
  }

  /** Test helper: the stored JSON text of every row (to look for leaked canaries). */
  dump(): string {
    return [...this.rows.values()].map((row) => `${id(row.key)} ${row.value} ${JSON.stringify(row.meta)}`).join('\n');
  }
}
