/**
 * Gateway-wide secrets (`gatehouse_gateway_secret`, migration 0004): random material generated
 * once and then shared by every process on the database, such as the task id HMAC key. Queries
 * are written once with kysely for SQLite and PostgreSQL; the material never reaches a log.
 */
import type { ColumnType, Kysely } from 'kysely';
import type { Database } from './audit-table.ts';

type BigIntColumn = ColumnType<number | string, number, number>;

// A type alias, not an interface: kysely's withTables needs an indexable type.
type SecretDatabase = {
  gatehouse_gateway_secret: { name: string; material: string; created_at: BigIntColumn };
};

/**
 * The secret named `name`, generated with `generate` (base64url text) when the database has
 * none yet. Replicas starting together race on the insert: the primary key keeps the first,
 * the others' inserts do nothing, and every one of them reads back the same row.
 */
export async function sharedSecret(handle: Kysely<Database>, name: string, generate: () => string, now: number): Promise<string> {
  const db = handle.withTables<SecretDatabase>();
  await db
    .insertInto('gatehouse_gateway_secret')
    .values({ name, material: generate(), created_at: now })
    .onConflict((oc) => oc.column('name').doNothing())
    .execute();
  const row = await db.selectFrom('gatehouse_gateway_secret').select('material').where('name', '=', name).executeTakeFirstOrThrow();
  return row.material;
}
