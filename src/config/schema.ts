/**
 * The configuration file's schema (zod). `npm run schema` emits it as JSON Schema for editors.
 * Defaults live here, so a normalized config is fully explicit.
 */
import { z } from 'zod';
import { telemetrySchema } from './telemetry-schema.ts';
import { storageSchema } from './storage-schema.ts';
import { authSchema, policySchema, TENANT_NAME } from './auth-schema.ts';
import { targetCredentialsSchema, vaultSchema } from './credentials-schema.ts';

const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_-]{0,62}$/;

const restartSchema = z.strictObject({
  initialDelayMs: z.number().int().min(10).default(250),
  maxDelayMs: z.number().int().min(10).default(30_000),
  multiplier: z.number().min(1).default(2),
  jitter: z.number().min(0).max(1).default(0.2),
  maxRestarts: z.number().int().min(0).optional(),
});

const stdioTarget = z.strictObject({
  transport: z.literal('stdio'),
  command: z.string().min(1).describe('Executable to spawn; resolved on PATH, never through a shell'),
  args: z.array(z.string()).default([]),
  cwd: z.string().optional(),
  /** Environment variables passed to the child by name from the gateway's own environment. */
  envAllow: z.array(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/)).default(['PATH', 'HOME', 'LANG', 'TMPDIR']),
  /** Literal non-secret values set in the child's environment. */
  env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/), z.string()).default({}),
  maxLineBytes: z.number().int().min(1024).default(16 * 1024 * 1024),
  stopGraceMs: z.number().int().min(0).default(2_000),
  restart: restartSchema.prefault({}),
});

const httpTarget = z.strictObject({
  transport: z.literal('streamable-http'),
  url: z.url(),
  headers: z.record(z.string(), z.string()).default({}),
  connections: z.number().int().min(1).max(1024).default(32),
});

const sseTarget = z.strictObject({
  transport: z.literal('sse'),
  url: z.url(),
  headers: z.record(z.string(), z.string()).default({}),
});

const commonTarget = z.strictObject({
  /** `auto` probes for the 2026-07-28 era and falls back to initialize-based sessions. */
  era: z.enum(['auto', 'modern', 'legacy']).default('auto'),
  enabled: z.boolean().default(true),
  requestTimeoutMs: z.number().int().min(1).default(60_000),
  /** How long the handshake (and era probe) may take. */
  connectTimeoutMs: z.number().int().min(1).default(15_000),
  /**
   * `shared`: one upstream connection multiplexes every downstream session. `per-session`:
   * each downstream session gets its own (needed when server→client requests must be
   * attributed on a transport that cannot tell which call caused them, such as stdio).
   */
  sessionMode: z.enum(['shared', 'per-session']).default('shared'),
  /** The tenant owning this target: principals of other tenants neither see nor reach it. */
  tenant: z.string().regex(TENANT_NAME).default('default'),
  /** How the gateway authenticates to this upstream (the third auth tier); agents never see it. */
  credentials: targetCredentialsSchema.prefault({ mode: 'none' }),
});

export const targetSchema = z.discriminatedUnion('transport', [
  stdioTarget.extend(commonTarget.shape),
  httpTarget.extend(commonTarget.shape),
  sseTarget.extend(commonTarget.shape),
]);

const toolsetSchema = z.strictObject({
  description: z.string().optional(),
  /** Selectors: `target/tool`, `target/*`, or an exposed tool name. */
  tools: z.array(z.string().min(1)).min(1),
  /** The tenant owning this toolset endpoint; another tenant's principals get 404 there. */
  tenant: z.string().regex(TENANT_NAME).default('default'),
});

const listenerSchema = z.strictObject({
  host: z.string().default('127.0.0.1'),
  port: z.number().int().min(0).max(65535).default(8080),
  path: z.string().regex(/^\/[A-Za-z0-9/_-]*$/).default('/mcp'),
  /** Extra Host header values accepted (DNS-rebinding protection). */
  allowedHosts: z.array(z.string()).default([]),
  /** Extra Origin values accepted; loopback origins on the listener port always are. */
  allowedOrigins: z.array(z.string()).default([]),
  maxBodyBytes: z.number().int().min(1024).default(4 * 1024 * 1024),
  maxJsonDepth: z.number().int().min(4).max(1000).default(64),
  /** Legacy 2024-11-05 HTTP+SSE endpoints (`/sse` and `/messages`). */
  legacySse: z.boolean().default(true),
  /** TLS on the listener (PEM files, relative to the config file); `clientCa` turns on client certificates (mTLS). */
  tls: z
    .strictObject({
      certFile: z.string().min(1),
      keyFile: z.string().min(1),
      clientCaFile: z.string().min(1).optional(),
      /** With a client CA: refuse the TLS handshake without a valid certificate, rather than fall back to bearer credentials. */
      requireClientCert: z.boolean().default(false),
    })
    .optional(),
});

const sessionsSchema = z.strictObject({
  idleTimeoutMs: z.number().int().min(1000).default(30 * 60_000),
  maxSessions: z.number().int().min(1).default(10_000),
  /** Events kept per session for `Last-Event-ID` resumption. */
  replayBufferEvents: z.number().int().min(0).default(256),
  /** How long an upstream call waits for a 2026-07-28 agent to retry with the input it asked for. */
  inputRequiredTtlMs: z.number().int().min(1000).default(10 * 60_000),
});

const aggregationSchema = z.strictObject({
  /** Joins target and tool name when two targets expose the same name. */
  separator: z.string().min(1).max(4).default('__'),
  /** `on-collision`: unprefixed when unique. `always`: every name is prefixed. */
  prefix: z.enum(['on-collision', 'always', 'never']).default('on-collision'),
  pageSize: z.number().int().min(1).max(10_000).default(500),
  /** `ttlMs` advertised on 2026-07-28 list results. */
  listTtlMs: z.number().int().min(0).default(30_000),
});

const loggingSchema = z.strictObject({
  level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'silent']).default('info'),
});

const auditSchema = z.strictObject({
  /** Write an audit row per call, rejection and admin action. Off only for throwaway setups. */
  enabled: z.boolean().default(true),
  /** `redacted`: keep the arguments with secret-looking values masked; `hash-only`: keep their SHA-256 only. */
  arguments: z.enum(['redacted', 'hash-only']).default('redacted'),
  /** Extra argument keys to mask (case-insensitive), beyond the built-in secret-looking ones. */
  redactKeys: z.array(z.string().min(1)).default([]),
  /**
   * While the store is down, rows go to this bounded local journal (relative to the config
   * file) and are replayed on recovery. Without it the gateway fails closed: calls are refused
   * with `audit_unavailable`.
   */
  spool: z.strictObject({ path: z.string().min(1), maxBytes: z.number().int().min(1024).default(64 * 1024 * 1024) }).optional(),
  /** How often an unavailable store is probed. */
  probeIntervalMs: z.number().int().min(50).default(1_000),
  /** Retention: rows older than this many days, and beyond the newest `maxRows`, are pruned hourly. */
  retention: z.strictObject({ maxAgeDays: z.number().min(0).optional(), maxRows: z.number().int().min(1).optional() }).prefault({}),
});

/** The admin listener (`/metrics`, `/slos`, later the audit API): its own address, loopback by default. */
const adminSchema = z.strictObject({
  enabled: z.boolean().default(true),
  host: z.string().default('127.0.0.1'),
  /** `0` picks a free port. */
  port: z.number().int().min(0).max(65535).default(9090),
  /** Extra Host / Origin values accepted (DNS-rebinding protection, as on the main listener). */
  allowedHosts: z.array(z.string()).default([]),
  allowedOrigins: z.array(z.string()).default([]),
});

export const configSchema = z.strictObject({
  listener: listenerSchema.prefault({}),
  targets: z.record(z.string().regex(NAME, 'target names are letters, digits, _ and -'), targetSchema),
  toolsets: z.record(z.string().regex(NAME, 'toolset names are letters, digits, _ and -'), toolsetSchema).default({}),
  sessions: sessionsSchema.prefault({}),
  aggregation: aggregationSchema.prefault({}),
  logging: loggingSchema.prefault({}),
  auth: authSchema.prefault({}),
  /** Roles, grants and bindings: what each principal may call. */
  policy: policySchema.prefault({}),
  audit: auditSchema.prefault({}),
  admin: adminSchema.prefault({}),
  telemetry: telemetrySchema.prefault({}),
  /** Keys that encrypt upstream credentials at rest, and the refresh job. */
  vault: vaultSchema.prefault({}),
  /** Where audit rows live; SQLite under the config directory unless PostgreSQL is configured. */
  storage: storageSchema.prefault({ driver: 'sqlite' }),
});

/** Config as written in the file, before defaults. */
export type ConfigInput = z.input<typeof configSchema>;
/** Config after validation with every default filled in. */
export type GatehouseConfig = z.output<typeof configSchema>;
export type TargetConfig = z.output<typeof targetSchema>;
export type StdioTargetConfig = Extract<TargetConfig, { transport: 'stdio' }>;
export type ToolsetConfig = z.output<typeof toolsetSchema>;
export type { StorageConfig } from './storage-schema.ts';
