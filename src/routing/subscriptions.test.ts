import { describe, expect, it } from 'vitest';
import { DownstreamSession } from '../downstream/session.ts';
import { SubscriptionIndex } from './subscriptions.ts';

const session = (id: string) => new DownstreamSession({ id, era: 'legacy', protocolVersion: '2025-11-25', transport: 'streamable-http', toolset: undefined, now: 0 });

describe('resource subscriptions across sessions', () => {
  it('subscribes upstream once and unsubscribes when the last subscriber leaves', () => {
    const index = new SubscriptionIndex();
    const a = session('a');
    const b = session('b');
    expect(index.add('t', 'x://1', a)).toBe(true);
    expect(index.add('t', 'x://1', b)).toBe(false);
    expect(index.remove('t', 'x://1', a)).toBe(false);
    expect(index.remove('t', 'x://1', b)).toBe(true);
    expect(index.subscribers('t', 'x://1')).toEqual([]);
  });

  it('drops the upstream subscription when the last subscribing session ends without unsubscribing', () => {
    const abandoned: string[] = [];
    const index = new SubscriptionIndex((target, uri) => abandoned.push(`${target} ${uri}`));
    const a = session('a');
    const b = session('b');
    index.add('t', 'x://1', a);
    index.add('t', 'x://1', b);
    index.add('u', 'x://2', a);
    a.close();
    expect(abandoned).toEqual(['u x://2']);
    b.close();
    expect(abandoned).toEqual(['u x://2', 't x://1']);
  });

  it('does not report a subscription the session already removed itself', () => {
    const abandoned: string[] = [];
    const index = new SubscriptionIndex((target, uri) => abandoned.push(`${target} ${uri}`));
    const a = session('a');
    index.add('t', 'x://1', a);
    index.remove('t', 'x://1', a);
    a.close();
    expect(abandoned).toEqual([]);
  });
});
