import { describe, expect, it } from 'vitest';
import { exposeTaskIds, gatewayTaskId, parseTaskId } from './tasks.ts';

describe('gateway task ids', () => {
  it('carry the owning target and the upstream id unchanged', () => {
    const id = gatewayTaskId('billing', 'task-7.x:y');
    expect(id.startsWith('gt1.')).toBe(true);
    expect(parseTaskId(id)).toEqual({ target: 'billing', upstreamId: 'task-7.x:y' });
  });

  it.each(['', 'task-1', 'gt1.', 'gt1.YQ', 'gt1.YQ.', 'gt1.!!.x', 'gt2.YQ.x'])('refuses %j as not issued by the gateway', (id) => {
    expect(parseTaskId(id)).toBeUndefined();
  });

  it('rewrites the taskId of a task result and leaves other results alone', () => {
    const created = exposeTaskIds({ jsonrpc: '2.0', id: 1, result: { resultType: 'task', taskId: 'u1', status: 'working' } }, 'c');
    expect(created).toMatchObject({ result: { taskId: gatewayTaskId('c', 'u1'), status: 'working' } });
    const plain = { jsonrpc: '2.0' as const, id: 2, result: { content: [] } };
    expect(exposeTaskIds(plain, 'c')).toBe(plain);
  });
});
