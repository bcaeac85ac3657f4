import { describe, expect, it } from 'vitest';
import { anonymousPrincipal, type Principal } from '../auth/principal.ts';
import { exposeTaskIds, gatewayTaskId, openTaskId, parseTaskId } from './tasks.ts';

const alice: Principal = { tenant: 'acme', user: 'alice', agent: 'cli', roles: [], scopes: [], method: 'oauth' };
const bob: Principal = { ...alice, user: 'bob' };

describe('gateway task ids', () => {
  it('carry the owning target and the upstream id unchanged', () => {
    const id = gatewayTaskId('billing', 'task-7.x:y', alice);
    expect(id.startsWith('gt1.')).toBe(true);
    expect(parseTaskId(id)).toMatchObject({ target: 'billing', upstreamId: 'task-7.x:y' });
    expect(openTaskId(id, alice)).toEqual({ target: 'billing', upstreamId: 'task-7.x:y' });
  });

  it('open only for the principal they were given to', () => {
    const id = gatewayTaskId('billing', 't1', alice);
    expect(openTaskId(id, bob)).toBeUndefined();
    expect(openTaskId(id, { ...alice, tenant: 'other' })).toBeUndefined();
    expect(openTaskId(id, anonymousPrincipal(undefined))).toBeUndefined();
    // Roles and scopes may change between tokens of the same principal (refresh, step-up).
    expect(openTaskId(id, { ...alice, roles: ['admin'], scopes: ['mcp'] })).toBeDefined();
  });

  it('cannot be rebound: another binding, target or upstream id does not open', () => {
    const id = gatewayTaskId('billing', 't1', alice);
    const parts = parseTaskId(id)!;
    const forged = gatewayTaskId('billing', 't1', bob);
    const swapped = `gt1.${Buffer.from('billing').toString('base64url')}.${parts.binding}.t2`;
    expect(openTaskId(swapped, alice)).toBeUndefined();
    expect(openTaskId(forged, alice)).toBeUndefined();
    const retarget = `gt1.${Buffer.from('other').toString('base64url')}.${parts.binding}.t1`;
    expect(openTaskId(retarget, alice)).toBeUndefined();
  });

  it.each(['', 'task-1', 'gt1.', 'gt1.YQ', 'gt1.YQ.', 'gt1.YQ.x', 'gt1.YQ.b.', 'gt1.!!.b.x', 'gt2.YQ.b.x'])('refuses %j as not issued by the gateway', (id) => {
    expect(openTaskId(id, alice)).toBeUndefined();
  });

  it('rewrites the taskId of a task result and leaves other results alone', () => {
    const created = exposeTaskIds({ jsonrpc: '2.0', id: 1, result: { resultType: 'task', taskId: 'u1', status: 'working' } }, 'c', alice);
    expect(created).toMatchObject({ result: { taskId: gatewayTaskId('c', 'u1', alice), status: 'working' } });
    const plain = { jsonrpc: '2.0' as const, id: 2, result: { content: [] } };
    expect(exposeTaskIds(plain, 'c', alice)).toBe(plain);
  });
});
