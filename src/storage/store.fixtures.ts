/**
 * Rows and a sealer for store tests, without test-runner imports, so a child process (the
 * kill -9 test's writer) can use them too.
 */
import { createHash } from 'node:crypto';
import type { AuditRow, AuditRowInput } from './store.ts';

/** A deterministic sealer for tests: the fields sorted, hashed with the previous hash. */
export function testSeal(prevHash: string, row: AuditRowInput | AuditRow): string {
  const keys = Object.keys(row)
    .filter((key) => key !== 'seq' && key !== 'prevHash' && key !== 'hash')
    .sort();
  return createHash('sha256').update(`${prevHash}\n${JSON.stringify(row, keys)}`).digest('hex');
}

let nextRequest = 0;
export function auditInput(overrides: Partial<AuditRowInput> = {}): AuditRowInput {
  nextRequest += 1;
  return {
    time: 1_700_000_000_000 + nextRequest,
    kind: 'call',
    requestId: `req-${nextRequest}`,
    sessionId: 'session-1',
    traceId: null,
    user: 'alice',
    agent: 'agent-a',
    tenant: 'acme',
    target: 'everything',
    tool: 'echo',
    toolVersion: null,
    method: 'tools/call',
    argsHash: 'a'.repeat(64),
    args: '{"message":"hi"}',
    outcome: 'ok',
    errorType: null,
    latencyMs: 1.25,
    bytesIn: 120,
    bytesOut: 340,
    targetVersion: '1.0.0',
    ...overrides,
  };
}
