// Builds an in-process gateway on 127.0.0.1 with a free port, for integration tests.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { Gateway, type GatewayOptions } from '../../src/gateway.ts';
import { parseConfig } from '../../src/config/load.ts';
import type { ConfigInput } from '../../src/config/schema.ts';
import type { CallRecord } from '../../src/telemetry/call-record.ts';
import { createLogger } from '../../src/telemetry/log.ts';
import { REPO_ROOT } from '../fixtures/fixture-process.ts';

export interface TestGateway {
  gateway: Gateway;
  url: string;
  base: string;
  /** Base URL of the admin listener (`/metrics`, `/slos`). */
  adminBase: string;
  records: CallRecord[];
  /** Every JSON log line the gateway wrote. */
  logLines: Array<Record<string, unknown>>;
  stop(): Promise<void>;
}

/** Gateway options beside the config: an injected clock, a token issuer (auth tests). */
export type TestGatewayOptions = Pick<GatewayOptions, 'clock' | 'tokenIssuer' | 'authorizationServer' | 'store'>;

export async function startGateway(input: Omit<ConfigInput, 'listener'> & { listener?: ConfigInput['listener'] }, options: TestGatewayOptions = {}): Promise<TestGateway> {
  // The admin listener gets a free port too, so parallel test files never collide on 9090.
  // Each gateway gets its own SQLite file unless the test names a store: audit is on, as in production.
  const ownDir = input.storage === undefined ? mkdtempSync(path.join(os.tmpdir(), 'gh-gw-')) : undefined;
  const storage = input.storage ?? { driver: 'sqlite' as const, path: path.join(ownDir!, 'gatehouse.db') };
  const config = parseConfig(
    { ...input, storage, listener: { host: '127.0.0.1', port: 0, ...input.listener }, admin: { port: 0, ...input.admin } },
    'test-config',
    { configDir: REPO_ROOT },
  );
  const records: CallRecord[] = [];
  const logLines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) logLines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const gateway = new Gateway({ ...options, config, logger: createLogger('debug', sink), recordListeners: [(r) => records.push({ ...r })] });
  await gateway.start();
  const url = gateway.url;
  const adminBase = `http://127.0.0.1:${gateway.adminPort}`;
  const stop = async (): Promise<void> => {
    await gateway.stop();
    // The harness's own database goes with its gateway; a store the test named is the test's.
    if (ownDir !== undefined) rmSync(ownDir, { recursive: true, force: true });
  };
  return { gateway, url, base: url.replace(/\/mcp$/, ''), adminBase, records, logLines, stop };
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
