/**
 * The MCP handshake with a target: decide its era, then learn its identity and capabilities.
 * 2026-07-28 versioning: a dual-era client probes with `server/discover`; a result naming the
 * modern version means modern. An `UnsupportedProtocolVersionError` is a modern answer too
 * (versioning "Backward Compatibility": retry with a supported version, do not fall back):
 * the probe is sent again once when the server lists the modern version, and a server that
 * lists only legacy versions is initialized at the newest of them. Anything else (another
 * error, silence, a legacy refusal) means legacy, served through `initialize` +
 * `notifications/initialized`.
 */
import type { Clock } from '../clock.ts';
import { ERROR_TABLE, GatehouseError } from '../protocol/errors.ts';
import {
  LATEST_LEGACY_VERSION,
  LEGACY_VERSIONS,
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
  if (era === 'legacy') return initialize(io, connectTimeoutMs, LATEST_LEGACY_VERSION);
  const timeoutMs = era === 'modern' ? connectTimeoutMs : ERA_PROBE_TIMEOUT_MS;
  let probe = await probeModern(io, timeoutMs);
  // Bounded: one corrective retry. A server that refuses the version it lists again is broken.
  if (probe.kind === 'unsupported' && probe.supported.includes(MODERN_VERSION)) probe = await probeModern(io, timeoutMs);
  switch (probe.kind) {
    case 'modern':
      return probe.facts;
    case 'unsupported': {
      const legacy = LEGACY_VERSIONS.find((v) => probe.supported.includes(v));
      if (era === 'auto' && legacy !== undefined && !probe.supported.includes(MODERN_VERSION)) return initialize(io, connectTimeoutMs, legacy);
      throw new GatehouseError('UPSTREAM_PROTOCOL_ERROR', `upstream ${io.target} refused ${MODERN_VERSION}; it supports ${JSON.stringify(probe.supported)}`);
    }
    case 'legacy':
      if (era === 'modern') throw new GatehouseError('UPSTREAM_PROTOCOL_ERROR', `upstream ${io.target} does not speak ${MODERN_VERSION}`);
      return initialize(io, connectTimeoutMs, LATEST_LEGACY_VERSION);
  }
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

/** What the era probe learned: a modern server, a modern refusal listing the versions it speaks, or legacy. */
type Probe = { kind: 'modern'; facts: ServerFacts } | { kind: 'unsupported'; supported: readonly string[] } | { kind: 'legacy' };

/** The `supported` list of an UnsupportedProtocolVersionError, or undefined for any other error. */
function supportedVersionsOf(error: { code: number; data?: unknown }): readonly string[] | undefined {
  if (error.code !== ERROR_TABLE.UNSUPPORTED_PROTOCOL_VERSION.rpc || !isPlainObject(error.data)) return undefined;
  const supported = error.data['supported'];
  return Array.isArray(supported) && supported.every((v): v is string => typeof v === 'string') ? supported : undefined;
}

async function probeModern(io: HandshakeIo, timeoutMs: number): Promise<Probe> {
  try {
    const response = await withDeadline(io.clock, timeoutMs, 'era probe', (signal) => io.request('server/discover', { _meta: modernMeta() }, signal));
    if (!('result' in response)) {
      // Only a well-formed -32022 is recognized as modern; a legacy server may use the code for anything.
      const supported = supportedVersionsOf(response.error);
      return supported === undefined ? { kind: 'legacy' } : { kind: 'unsupported', supported };
    }
    const versions = response.result['supportedVersions'];
    if (!Array.isArray(versions) || !versions.includes(MODERN_VERSION)) return { kind: 'legacy' };
    return { kind: 'modern', facts: factsFrom('modern', MODERN_VERSION, response.result, metaOf(response.result)?.[META_SERVER_INFO]) };
  } catch (err) {
    // The third auth tier refusing is not an answer from the server: whatever era it speaks,
    // the user (or an operator) must act first, and the call must say so.
    if (err instanceof GatehouseError && (err.code === 'UPSTREAM_AUTHORIZATION_REQUIRED' || err.code === 'UPSTREAM_CREDENTIAL_UNAVAILABLE')) throw err;
    // Any other failure that is not a modern answer identifies a legacy server (versioning §compat).
    return { kind: 'legacy' };
  }
}

async function initialize(io: HandshakeIo, timeoutMs: number, protocolVersion: string): Promise<ServerFacts> {
  const params = { protocolVersion, capabilities: GATEWAY_CLIENT_CAPABILITIES, clientInfo: GATEWAY_INFO };
  const response = await withDeadline(io.clock, timeoutMs, `initialize of ${io.target}`, (signal) => io.request('initialize', params, signal));
  if (!('result' in response)) {
    throw new GatehouseError('UPSTREAM_PROTOCOL_ERROR', `initialize of ${io.target} failed: ${response.error.message}`);
  }
  const result = response.result;
  const version = typeof result['protocolVersion'] === 'string' ? result['protocolVersion'] : protocolVersion;
  io.transport.setProtocolVersion?.(version);
  await io.transport.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
  return factsFrom('legacy', version, result, result['serverInfo']);
}
