/**
 * The MCP handshake with a target: decide its era, then learn its identity and capabilities.
 * 2026-07-28 versioning: a dual-era client probes with `server/discover`; a result naming the
 * modern version means modern, and anything else (an error, silence, a legacy refusal) means
 * legacy, which is served through `initialize` + `notifications/initialized`.
 */
import type { Clock } from '../clock.ts';
import { GatehouseError } from '../protocol/errors.ts';
import {
  LATEST_LEGACY_VERSION,
  META_CLIENT_CAPABILITIES,
  META_CLIENT_INFO,
  META_PROTOCOL_VERSION,
  META_SERVER_INFO,
  MODERN_VERSION,
  type Era,
} from '../protocol/eras.ts';
import { isPlainObject, metaOf, type JsonObject, type JsonRpcResponse } from '../protocol/jsonrpc.ts';
import { GATEWAY_INFO } from '../version.ts';
import type { UpstreamTransport } from './transport.ts';

/** What the handshake learned about the server. */
export interface ServerFacts {
  era: Era;
  protocolVersion: string;
  serverInfo: JsonObject | undefined;
  capabilities: JsonObject;
  instructions: string | undefined;
}

/** What the handshake needs from the connection running it. */
export interface HandshakeIo {
  target: string;
  clock: Clock;
  transport: UpstreamTransport;
  request(method: string, params: JsonObject, signal: AbortSignal): Promise<JsonRpcResponse>;
}

/** The capabilities the gateway declares upstream: it relays these to its agents. */
export const GATEWAY_CLIENT_CAPABILITIES: JsonObject = {
  sampling: {},
  elicitation: { form: {}, url: {} },
  roots: { listChanged: true },
};

/** A silent legacy server must not hold up every connect for long. */
const ERA_PROBE_TIMEOUT_MS = 3_000;

/**
 * The per-request `_meta` a modern request from the gateway carries: the gateway's own
 * identity for its discovery and list calls, or a 2025-era agent's when it calls through.
 */
export function modernMeta(capabilities: JsonObject = GATEWAY_CLIENT_CAPABILITIES, clientInfo: JsonObject = GATEWAY_INFO): JsonObject {
  return {
    [META_PROTOCOL_VERSION]: MODERN_VERSION,
    [META_CLIENT_CAPABILITIES]: capabilities,
    [META_CLIENT_INFO]: clientInfo,
  };
}

export async function performHandshake(io: HandshakeIo, era: 'auto' | 'modern' | 'legacy', connectTimeoutMs: number): Promise<ServerFacts> {
  if (era !== 'legacy') {
    const modern = await probeModern(io, era === 'modern' ? connectTimeoutMs : ERA_PROBE_TIMEOUT_MS);
    if (modern) return modern;
    if (era === 'modern') throw new GatehouseError('UPSTREAM_PROTOCOL_ERROR', `upstream ${io.target} does not speak ${MODERN_VERSION}`);
  }
  return initialize(io, connectTimeoutMs);
}

/** Run `fn` with a signal that aborts after `ms` with a timeout error. */
async function withDeadline<T>(clock: Clock, ms: number, what: string, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const timer = clock.setTimeout(() => controller.abort(new GatehouseError('UPSTREAM_TIMEOUT', `${what} timed out`)), ms);
  try {
    return await fn(controller.signal);
  } finally {
    clock.clearTimeout(timer);
  }
}

function factsFrom(era: Era, version: string, result: JsonObject, serverInfo: unknown): ServerFacts {
  return {
    era,
    protocolVersion: version,
    serverInfo: isPlainObject(serverInfo) ? serverInfo : undefined,
    capabilities: isPlainObject(result['capabilities']) ? result['capabilities'] : {},
    instructions: typeof result['instructions'] === 'string' ? result['instructions'] : undefined,
  };
}

async function probeModern(io: HandshakeIo, timeoutMs: number): Promise<ServerFacts | undefined> {
  try {
    const response = await withDeadline(io.clock, timeoutMs, 'era probe', (signal) => io.request('server/discover', { _meta: modernMeta() }, signal));
    if (!('result' in response)) return undefined;
    const versions = response.result['supportedVersions'];
    if (!Array.isArray(versions) || !versions.includes(MODERN_VERSION)) return undefined;
    return factsFrom('modern', MODERN_VERSION, response.result, metaOf(response.result)?.[META_SERVER_INFO]);
  } catch {
    // Any failure that is not a modern answer identifies a legacy server (versioning §compat).
    return undefined;
  }
}

async function initialize(io: HandshakeIo, timeoutMs: number): Promise<ServerFacts> {
  const params = { protocolVersion: LATEST_LEGACY_VERSION, capabilities: GATEWAY_CLIENT_CAPABILITIES, clientInfo: GATEWAY_INFO };
  const response = await withDeadline(io.clock, timeoutMs, `initialize of ${io.target}`, (signal) => io.request('initialize', params, signal));
  if (!('result' in response)) {
    throw new GatehouseError('UPSTREAM_PROTOCOL_ERROR', `initialize of ${io.target} failed: ${response.error.message}`);
  }
  const result = response.result;
  const version = typeof result['protocolVersion'] === 'string' ? result['protocolVersion'] : LATEST_LEGACY_VERSION;
  io.transport.setProtocolVersion?.(version);
  await io.transport.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
  return factsFrom('legacy', version, result, result['serverInfo']);
}
