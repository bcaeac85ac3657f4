import { describe, expect, it } from 'vitest';
import { anonymousPrincipal, type Principal } from '../auth/principal.ts';
import { exposeTaskIds, gatewayTaskId, openTaskId, parseTaskId, TaskIdKey } from './tasks.ts';

const alice: Principal = { tenant: 'acme', user: 'alice', agent: 'cli', roles: [], scopes: [], method: 'oauth' };
const bob: Principal = { ...alice, user: 'bob' };
const key = new TaskIdKey();

describe('gateway task ids', () => {
  it('carry the owning target and the upstream id unchanged', () => {
    const id = gatewayTaskId(key, 'billing', 'task-7.x:y', alice);
    expect(id.startsWith('gt1.')).toBe(true);
    expect(parseTaskId(id)).toMatchObject({ target: 'billing', upstreamId: 'task-7.x:y' });
    expect(openTaskId(key, id, alice)).toEqual({ target: 'billing', upstreamId: 'task-7.x:y' });
  });

  it('open only for the principal they were given to', () => {
    const id = gatewayTaskId(key, 'billing', 't1', alice);
    expect(openTaskId(key, id, bob)).toBeUndefined();
    expect(openTaskId(key, id, { ...alice, tenant: 'other' })).toBeUndefined();
    expect(openTaskId(key, id, anonymousPrincipal(undefined))).toBeUndefined();
    // Roles and scopes may change between tokens of the same principal (refresh, step-up).
    expect(openTaskId(key, id, { ...alice, roles: ['admin'], scopes: ['mcp'] })).toBeDefined();
  });

  it('cannot be rebound: another binding, target or upstream id does not open', () => {
    const id = gatewayTaskId(key, 'billing', 't1', alice);
    const parts = parseTaskId(id)!;
    const forged = gatewayTaskId(key, 'billing', 't1', bob);
    const swapped = `gt1.${Buffer.from('billing').toString('base64url')}.${parts.binding}.t2`;
    expect(openTaskId(key, swapped, alice)).toBeUndefined();
    expect(openTaskId(key, forged, alice)).toBeUndefined();
    const retarget = `gt1.${Buffer.from('other').toString('base64url')}.${parts.binding}.t1`;
    expect(openTaskId(key, retarget, alice)).toBeUndefined();
  });

  it.each(['', 'task-1', 'gt1.', 'gt1.YQ', 'gt1.YQ.', 'gt1.YQ.x', 'gt1.YQ.b.', 'gt1.!!.b.x', 'gt2.YQ.b.x'])('refuses %j as not issued by the gateway', (id) => {
    expect(openTaskId(key, id, alice)).toBeUndefined();
  });

  it('rewrites the taskId of a task result and leaves other results alone', () => {
    const created = exposeTaskIds(key, { jsonrpc: '2.0', id: 1, result: { resultType: 'task', taskId: 'u1', status: 'working' } }, 'c', alice);
    expect(created).toMatchObject({ result: { taskId: gatewayTaskId(key, 'c', 'u1', alice), status: 'working' } });
    const plain = { jsonrpc: '2.0' as const, id: 2, result: { content: [] } };
    expect(exposeTaskIds(key, plain, 'c', alice)).toBe(plain);
  });

  it('open under the key they were issued with only: a shared key survives restarts, another does not', () => {
    const shared = Buffer.alloc(32, 7);
    const id = gatewayTaskId(new TaskIdKey(shared), 'billing', 't1', alice);
    // Another gateway (a replica, or this one after a restart) loaded the same key from the store.
    expect(openTaskId(new TaskIdKey(shared), id, alice)).toEqual({ target: 'billing', upstreamId: 't1' });
    const later = new TaskIdKey();
    expect(openTaskId(later, id, alice)).toBeUndefined();
    later.use(shared);
    expect(openTaskId(later, id, alice)).toBeDefined();
    expect(() => new TaskIdKey(Buffer.alloc(8))).toThrow(/16 bytes/);
  });
});
