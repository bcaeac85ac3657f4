import { describe, expect, it } from 'vitest';
import { ManualClock } from '../clock.ts';
import { GatehouseError } from '../protocol/errors.ts';
import type { JsonObject, JsonRpcErrorObject, JsonRpcMessage } from '../protocol/jsonrpc.ts';
import { performHandshake, type HandshakeIo } from './handshake.ts';
import type { UpstreamTransport } from './transport.ts';

const MODERN = '2026-07-28';

type Answer = (params: JsonObject) => { error: JsonRpcErrorObject } | { result: JsonObject };

/** An upstream scripted per request: each answer is used once, in order. */
function scriptedIo(answers: Answer[]) {
  const sent: Array<{ method: string; params: JsonObject }> = [];
  const notified: JsonRpcMessage[] = [];
  let version: string | undefined;
  const transport: UpstreamTransport = {
    kind: 'streamable-http',
    stats: { skippedLines: 0, restarts: 0, bytesIn: 0, bytesOut: 0 },
    start: async () => undefined,
    send: async (message) => {
      notified.push(message);
    },
    setProtocolVersion: (v) => {
      version = v;
    },
    close: async () => undefined,
  };
  const io: HandshakeIo = {
    target: 't',
    clock: new ManualClock(),
    transport,
    request: async (method, params) => {
      sent.push({ method, params });
      const answer = answers.shift();
      if (answer === undefined) throw new Error(`unexpected ${method}`);
      return { jsonrpc: '2.0', id: sent.length, ...answer(params) };
    },
  };
  return { io, sent, notified, version: () => version };
}

const unsupported = (supported: unknown): Answer => () => ({ error: { code: -32022, message: 'Unsupported protocol version', data: { supported, requested: MODERN } } });
const discovered: Answer = () => ({
  result: { resultType: 'complete', supportedVersions: [MODERN], capabilities: { tools: {} }, _meta: { 'io.modelcontextprotocol/serverInfo': { name: 'up', version: '1' } } },
});
const initialized: Answer = (params) => ({ result: { protocolVersion: params['protocolVersion'], capabilities: {}, serverInfo: { name: 'legacy', version: '1' } } });

describe('performHandshake: UnsupportedProtocolVersionError on the era probe', () => {
  it('retries server/discover once when the refusal lists the modern version, and stays modern', async () => {
    const { io, sent } = scriptedIo([unsupported([MODERN]), discovered]);
    const facts = await performHandshake(io, 'auto', 5_000);
    expect(facts).toMatchObject({ era: 'modern', protocolVersion: MODERN, serverInfo: { name: 'up' } });
    expect(sent.map((r) => r.method)).toEqual(['server/discover', 'server/discover']);
    expect(sent[1]?.params['_meta']).toMatchObject({ 'io.modelcontextprotocol/protocolVersion': MODERN });
  });

  it('fails, rather than falling back to initialize, when the modern server refuses again', async () => {
    const { io, sent } = scriptedIo([unsupported([MODERN]), unsupported([MODERN])]);
    await expect(performHandshake(io, 'auto', 5_000)).rejects.toMatchObject({ code: 'UPSTREAM_PROTOCOL_ERROR' });
    expect(sent.map((r) => r.method)).toEqual(['server/discover', 'server/discover']);
  });

  it('initializes at the newest legacy version the refusal lists when it lists no modern one', async () => {
    const { io, sent, notified, version } = scriptedIo([unsupported(['2025-03-26', '2025-06-18']), initialized]);
    const facts = await performHandshake(io, 'auto', 5_000);
    expect(facts).toMatchObject({ era: 'legacy', protocolVersion: '2025-06-18' });
    expect(sent[1]).toMatchObject({ method: 'initialize', params: { protocolVersion: '2025-06-18' } });
    expect(version()).toBe('2025-06-18');
    expect(notified).toEqual([{ jsonrpc: '2.0', method: 'notifications/initialized' }]);
  });

  it('refuses a target configured as modern whose refusal lists only legacy versions', async () => {
    const { io, sent } = scriptedIo([unsupported(['2025-11-25'])]);
    const failure = await performHandshake(io, 'modern', 5_000).catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(GatehouseError);
    expect((failure as GatehouseError).code).toBe('UPSTREAM_PROTOCOL_ERROR');
    expect(sent).toHaveLength(1);
  });

  it('treats -32022 without a supported list, and other errors, as a legacy answer', async () => {
    const refusals: Answer[] = [() => ({ error: { code: -32022, message: 'no' } }), () => ({ error: { code: -32601, message: 'Method not found' } })];
    for (const refusal of refusals) {
      const { io, sent } = scriptedIo([refusal, initialized]);
      const facts = await performHandshake(io, 'auto', 5_000);
      expect(facts).toMatchObject({ era: 'legacy', protocolVersion: '2025-11-25' });
      expect(sent.map((r) => r.method)).toEqual(['server/discover', 'initialize']);
    }
  });
});
