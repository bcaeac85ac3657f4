import { describe, expect, it } from 'vitest';
import { DownstreamSession } from './session.ts';

const make = (era: 'legacy' | 'modern' = 'legacy') =>
  new DownstreamSession({ id: 's1', era, protocolVersion: '2025-11-25', transport: 'streamable-http', toolset: undefined, now: 0 });

describe('downstream session', () => {
  it('filters log messages by the level the agent set', () => {
    const session = make();
    expect(session.wantsLog('debug')).toBe(true);
    session.logLevel = 'warning';
    expect(session.wantsLog('info')).toBe(false);
    expect(session.wantsLog('error')).toBe(true);
  });

  it('sends no log messages to a modern request that did not ask for them', () => {
    expect(make('modern').wantsLog('emergency')).toBe(false);
  });

  it('on close aborts calls, answers waiting upstream requests and runs hooks once', () => {
    const session = make();
    const controller = new AbortController();
    session.inFlight.set(1, controller);
    const answers: unknown[] = [];
    session.awaitingAgent.set('gh-1', (r) => answers.push(r));
    let hooks = 0;
    session.onClose(() => hooks++);
    session.close();
    session.close();
    expect(controller.signal.aborted).toBe(true);
    expect(answers).toEqual([{ jsonrpc: '2.0', id: 'gh-1', error: { code: -32603, message: 'the agent session ended' } }]);
    expect(hooks).toBe(1);
    session.onClose(() => hooks++);
    expect(hooks).toBe(2);
  });
});
