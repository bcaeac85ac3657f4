import { describe, expect, it } from 'vitest';
import { createMemoryPendingLogins } from './pending-logins.ts';

const login = (uid: string) => ({ uid, clientId: 'c', codeVerifier: 'v', nonce: 'n' });

describe('memory pending logins', () => {
  it('peeks without consuming and takes once', async () => {
    const store = createMemoryPendingLogins();
    await store.put('s1', login('u1'));
    expect(await store.peek('s1')).toEqual(login('u1'));
    expect(await store.take('s1')).toEqual(login('u1'));
    expect(await store.take('s1')).toBeUndefined();
    expect(await store.peek('s1')).toBeUndefined();
  });

  it('forgets entries after their TTL', async () => {
    let now = 0;
    const store = createMemoryPendingLogins({ ttlMs: 1000, now: () => now });
    await store.put('s1', login('u1'));
    now = 999;
    expect(await store.peek('s1')).toBeDefined();
    now = 1000;
    expect(await store.take('s1')).toBeUndefined();
  });

  it('stays bounded, dropping the oldest', async () => {
    const store = createMemoryPendingLogins({ maxEntries: 3 });
    for (const s of ['a', 'b', 'c', 'd']) await store.put(s, login(s));
    expect(await store.peek('a')).toBeUndefined();
    for (const s of ['b', 'c', 'd']) expect(await store.peek(s)).toBeDefined();
  });
});
