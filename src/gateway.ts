/**
 * The gateway: start, reload(config), drain and stop. It owns the current snapshot and
 * catalog, wires the registry's discovery to the downstream change bus, and composes the
 * downstream endpoints. Nothing here runs per call.
 */
import type { Clock } from './clock.ts';
import { systemClock } from './clock.ts';
import type { GatehouseConfig } from './config/schema.ts';
import { createSnapshot, type Snapshot } from './config/snapshot.ts';
import { buildCatalog, type Catalog } from './catalog/catalog.ts';
import { buildCallPipeline } from './pipeline/call-pipeline.ts';
import { UpstreamRegistry, type TargetHealth } from './upstream/registry.ts';
import { SubscriptionIndex } from './routing/subscriptions.ts';
import { InputRequiredBroker } from './routing/input-required.ts';
import { CallRunner } from './downstream/call-runner.ts';
import { ChangeBus } from './downstream/change-bus.ts';
import { SessionStore } from './downstream/session-store.ts';
import { StreamableHttpEndpoint } from './downstream/streamable-http.ts';
import { LegacySseEndpoint } from './downstream/legacy-sse.ts';
import { HttpListener } from './downstream/http-listener.ts';
import type { CallRecordListener } from './telemetry/call-record.ts';
import type { GatewayLogger } from './telemetry/log.ts';
import { callLogLine } from './telemetry/log.ts';

export interface GatewayOptions {
  config: GatehouseConfig;
  logger: GatewayLogger;
  clock?: Clock;
  /** Extra call-record subscribers (tests, later audit and metrics). */
  recordListeners?: CallRecordListener[];
}

export class Gateway {
  private snapshotValue: Snapshot;
  private catalogValue: Catalog;
  private readonly clock: Clock;
  private readonly logger: GatewayLogger;
  private readonly registry: UpstreamRegistry;
  private readonly subscriptions = new SubscriptionIndex((target, uri) => this.registry.unsubscribe(target, uri));
  private readonly changes = new ChangeBus();
  private readonly inputs: InputRequiredBroker;
  private readonly sessions: SessionStore;
  private readonly runner: CallRunner;
  private readonly listener: HttpListener;
  private readonly recordListeners: CallRecordListener[];
  private portValue = 0;
  private stopping: Promise<void> | undefined;

  constructor(options: GatewayOptions) {
    this.clock = options.clock ?? systemClock;
    this.logger = options.logger;
    const log = callLogLine(this.logger);
    this.recordListeners = [log, ...(options.recordListeners ?? [])];
    this.registry = new UpstreamRegistry(this.clock, {
      onListingsChanged: (kinds) => this.rebuildCatalog(kinds),
      onResourceUpdated: (target, params) => {
        const uri = params['uri'];
        if (typeof uri === 'string') this.changes.publish({ kind: 'resource_updated', target, uri, params });
      },
      onTargetLog: (target, level, message, fields) => this.logger[level]({ kind: 'target', target, ...fields }, message),
    });
    this.inputs = new InputRequiredBroker(this.clock, options.config.sessions.inputRequiredTtlMs);
    this.catalogValue = buildCatalog([], options.config);
    this.snapshotValue = this.compile(options.config, 1);
    const s = options.config.sessions;
    this.sessions = new SessionStore({ clock: this.clock, idleTimeoutMs: s.idleTimeoutMs, maxSessions: s.maxSessions, replayBufferEvents: s.replayBufferEvents });
    this.runner = new CallRunner({
      snapshot: () => this.snapshotValue,
      clock: this.clock,
      emit: (record) => {
        for (const listener of this.recordListeners) listener(record);
      },
    });
    const limits = (): { maxBodyBytes: number; maxJsonDepth: number } => this.snapshotValue.config.listener;
    const endpointDeps = { runner: this.runner, sessions: this.sessions, changes: this.changes, clock: this.clock, limits };
    this.listener = new HttpListener({
      streamable: new StreamableHttpEndpoint(endpointDeps),
      legacySse: new LegacySseEndpoint(endpointDeps),
      settings: () => this.snapshotValue.config.listener,
      hasToolset: (name) => Object.hasOwn(this.snapshotValue.config.toolsets, name),
      health: () => this.readiness(),
      onInternalError: (error) => this.logger.error({ kind: 'internal', correlation_id: error.correlationId, err: error.cause ?? error }, error.message),
    });
  }

  get snapshot(): Snapshot {
    return this.snapshotValue;
  }

  get catalog(): Catalog {
    return this.catalogValue;
  }

  get port(): number {
    return this.portValue;
  }

  /** The agent-facing URL of the main MCP endpoint. */
  get url(): string {
    const { host, path } = this.snapshotValue.config.listener;
    return `http://${host.includes(':') ? `[${host}]` : host}:${this.portValue}${path}`;
  }

  targets(): TargetHealth[] {
    return this.registry.health();
  }

  /** The call runner, for in-process downstream transports (the stdio bridge's tests). */
  get calls(): CallRunner {
    return this.runner;
  }

  /** Connect to every target and bind the listener. */
  async start(): Promise<void> {
    await this.registry.apply(this.snapshotValue.config);
    const { host, port } = this.snapshotValue.config.listener;
    this.portValue = await this.listener.listen(host, port);
  }

  /**
   * Swap in a new config: compile a new snapshot, then apply target changes. Calls in flight
   * keep the snapshot they started with. Listener address changes need a restart.
   */
  async reload(config: GatehouseConfig): Promise<void> {
    const next = this.compile(config, this.snapshotValue.version + 1);
    this.snapshotValue = next;
    this.listener.refreshPolicy();
    this.rebuildCatalog(new Set(['tools', 'prompts', 'resources']));
    await this.registry.apply(config);
  }

  /** Stop accepting, end every session and stop every upstream. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.sessions.closeAll();
      this.inputs.closeAll();
      await this.listener.close();
      await this.registry.close();
    })();
    return this.stopping;
  }

  private compile(config: GatehouseConfig, version: number): Snapshot {
    const pipeline = buildCallPipeline({
      dispatch: {
        registry: this.registry,
        inputs: this.inputs,
        catalog: () => this.catalogValue,
        subscriptions: this.subscriptions,
        pageSize: config.aggregation.pageSize,
        listTtlMs: config.aggregation.listTtlMs,
        instructions: undefined,
        timeoutMs: (target) => config.targets[target]?.requestTimeoutMs ?? 60_000,
      },
    });
    return createSnapshot(version, this.clock.now(), config, pipeline);
  }

  private rebuildCatalog(kinds: ReadonlySet<'tools' | 'prompts' | 'resources'>): void {
    const before = this.catalogValue;
    this.catalogValue = buildCatalog(this.registry.listings(), this.snapshotValue.config);
    for (const r of this.catalogValue.rejected) {
      this.logger.warn({ kind: 'catalog', target: r.target, tool: r.name, reason: r.reason }, `tool ${r.name} of ${r.target} left out of the catalog: ${r.reason}`);
    }
    const changed = (pick: (c: Catalog) => unknown[]): boolean => JSON.stringify(pick(before)) !== JSON.stringify(pick(this.catalogValue));
    if (kinds.has('tools') && changed((c) => [...c.all.toolDefinitions])) this.changes.publish({ kind: 'list_changed', list: 'tools' });
    if (kinds.has('prompts') && changed((c) => [...c.all.promptDefinitions])) this.changes.publish({ kind: 'list_changed', list: 'prompts' });
    if (kinds.has('resources') && changed((c) => [...c.all.resources, ...c.all.templateDefinitions])) {
      this.changes.publish({ kind: 'list_changed', list: 'resources' });
    }
  }

  private readiness(): { ready: boolean; body: unknown } {
    const targets = this.registry.health();
    const enabled = targets.filter((t) => t.state !== 'disabled');
    // Ready once config is loaded and some enabled target serves: one broken target must not
    // pull the whole gateway out of a load balancer. Per-target states are in the body.
    const ready = enabled.length === 0 || enabled.some((t) => t.state === 'ready');
    return {
      ready,
      body: {
        status: ready ? 'ready' : 'not_ready',
        configVersion: this.snapshotValue.version,
        sessions: this.sessions.size,
        targets: targets.map((t) => ({ name: t.name, state: t.state, transport: t.transport, era: t.era, protocolVersion: t.protocolVersion, serverInfo: t.serverInfo, tools: t.tools, restarts: t.restarts, lastError: t.lastError })),
      },
    };
  }
}
