// Builds an in-process gateway on 127.0.0.1 with a free port, for integration tests.
import { Writable } from 'node:stream';
import { Gateway } from '../../src/gateway.ts';
import { parseConfig } from '../../src/config/load.ts';
import type { ConfigInput } from '../../src/config/schema.ts';
import type { CallRecord } from '../../src/telemetry/call-record.ts';
import { createLogger } from '../../src/telemetry/log.ts';
import { REPO_ROOT } from '../fixtures/fixture-process.ts';

export interface TestGateway {
  gateway: Gateway;
  url: string;
  base: string;
  records: CallRecord[];
  /** Every JSON log line the gateway wrote. */
  logLines: Array<Record<string, unknown>>;
  stop(): Promise<void>;
}

export async function startGateway(input: Omit<ConfigInput, 'listener'> & { listener?: ConfigInput['listener'] }): Promise<TestGateway> {
  const config = parseConfig({ ...input, listener: { host: '127.0.0.1', port: 0, ...input.listener } }, 'test-config', { configDir: REPO_ROOT });
  const records: CallRecord[] = [];
  const logLines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) logLines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const gateway = new Gateway({ config, logger: createLogger('debug', sink), recordListeners: [(r) => records.push({ ...r })] });
  await gateway.start();
  const url = gateway.url;
  return { gateway, url, base: url.replace(/\/mcp$/, ''), records, logLines, stop: () => gateway.stop() };
}

/** Raw POST helper for protocol-level tests. */
export async function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

export const INIT = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw-test', version: '1.0.0' } },
} as const;
