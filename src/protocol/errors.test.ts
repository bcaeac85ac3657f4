import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_TABLE, GatehouseError, toGatehouseError } from './errors.ts';

describe('error table', () => {
  it('documents every code in docs/errors.md', () => {
    const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
    const missing = Object.keys(ERROR_TABLE).filter((code) => !doc.includes(`| \`${code}\` |`));
    expect(missing).toEqual([]);
  });

  it('maps an unknown failure to INTERNAL with a correlation id and no leaked text', () => {
    const error = toGatehouseError(new Error('db password=hunter2 refused'));
    const rpc = error.toRpcError();
    expect(error.code).toBe('INTERNAL');
    expect(rpc.message).toBe('Internal gateway error');
    expect(JSON.stringify(rpc)).not.toContain('hunter2');
    expect(rpc.data['correlationId']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('never maps a broad catch to a client-fault code', () => {
    expect(toGatehouseError('boom').spec.http).toBe(500);
  });

  it('keeps typed errors and carries their public data', () => {
    const error = new GatehouseError('UNSUPPORTED_PROTOCOL_VERSION', 'nope', { data: { supported: ['2026-07-28'] } });
    expect(toGatehouseError(error)).toBe(error);
    expect(error.toRpcError()).toEqual({ code: -32022, message: 'nope', data: { type: 'unsupported_protocol_version', supported: ['2026-07-28'] } });
  });

  it('answers a missing resource with the code of the agent\'s era (SEP-2164 moved it)', () => {
    const error = new GatehouseError('RESOURCE_NOT_FOUND', 'Resource not found: x://y');
    expect(error.toRpcError('legacy').code).toBe(-32002);
    expect(error.toRpcError('modern').code).toBe(-32602);
    expect(new GatehouseError('TOOL_NOT_FOUND', 't').toRpcError('modern').code).toBe(-32602);
  });
});
