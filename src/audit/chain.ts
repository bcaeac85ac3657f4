/**
 * The audit hash chain: each row's hash covers the previous row's hash and the row's own
 * canonical content, so editing, deleting or reordering a row breaks every hash after it.
 * `verifyChain` walks the rows in order and names the first one that does not fit.
 */
import { GENESIS_HASH, type AuditRow, type AuditRowInput } from '../storage/store.ts';
import { canonicalJson, sha256Hex } from './canonical-json.ts';

/** The hash of `row` chained to `prevHash`; this is the store's sealer. */
export function sealRow(prevHash: string, row: AuditRowInput): string {
  return sha256Hex(`${prevHash}\n${canonicalJson(contentOf(row))}`);
}

/** The fields a hash covers: everything but the chain fields and the store-assigned seq. */
function contentOf(row: AuditRowInput | AuditRow): AuditRowInput {
  const { seq: _seq, prevHash: _prev, hash: _hash, ...content } = row as AuditRow;
  return content;
}

export interface ChainVerdict {
  ok: boolean;
  checked: number;
  /** The first row that breaks the chain, and how. */
  broken?: { seq: number; reason: string };
}

/**
 * Verify rows in seq order. The first row present may follow pruned ones (retention), so its
 * prevHash is taken as given unless it is the chain's first row.
 */
export async function verifyChain(rows: AsyncIterable<AuditRow>): Promise<ChainVerdict> {
  let checked = 0;
  let expectedPrev: string | undefined;
  let lastSeq: number | undefined;
  for await (const row of rows) {
    if (row.seq === 1 && row.prevHash !== GENESIS_HASH) return { ok: false, checked, broken: { seq: row.seq, reason: 'the first row does not start from the genesis hash' } };
    if (lastSeq !== undefined && row.seq !== lastSeq + 1) return { ok: false, checked, broken: { seq: row.seq, reason: `row ${lastSeq + 1} is missing` } };
    if (expectedPrev !== undefined && row.prevHash !== expectedPrev) return { ok: false, checked, broken: { seq: row.seq, reason: 'prevHash does not match the previous row' } };
    if (sealRow(row.prevHash, contentOf(row)) !== row.hash) return { ok: false, checked, broken: { seq: row.seq, reason: 'the row content does not match its hash' } };
    expectedPrev = row.hash;
    lastSeq = row.seq;
    checked++;
  }
  return { ok: true, checked };
}
