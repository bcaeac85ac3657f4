/**
 * Prometheus metrics, served as `/metrics` on the admin listener. Call metrics come from call
 * records (a record subscriber, never a call from a stage); upstream, session and SLO state is
 * read when scraped (collect callbacks), so it costs nothing between scrapes. The registry is
 * the gateway's own, not prom-client's global one: two gateways in a process stay apart.
 *
 * Cardinality is bounded by construction: `target` comes from config, `tool` only from the
 * catalog (an unknown name an agent sent is `other`), `method` from the MCP method list, error
 * types from the error table (plus standard JSON-RPC codes), and `agent` from the configured
 * allow-list (`telemetry.metrics.agentLabels`; any other agent is `other`). An empty value
 * means "not applicable" (a call that reached no target, a method that is not a tool call).
 *
 * Hot path: the call counters are plain numbers in a map keyed by the joined label values
 * (one lookup and one add per record); prom-client sees them only at scrape time. Histogram
 * children are cached per label set so a record skips prom-client's label validation.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { ERROR_TABLE } from '../protocol/errors.ts';
import type { TargetHealth } from '../upstream/registry.ts';
import { GATEWAY_VERSION } from '../version.ts';
import type { CallRecord } from './call-record.ts';

/** Gateway state read at scrape time. */
export interface MetricsSources {
  targets(): readonly TargetHealth[];
  /** Open downstream sessions (legacy eras; 2026-07-28 requests have none). */
  sessions(): number;
  /** Whether an exposed tool name is in the catalog (bounds the `tool` label). */
  isTool(name: string): boolean;
  /** The agent allow-list of the current snapshot. */
  agentLabels(): readonly string[];
}

const OTHER = 'other';
const OVERFLOW_CALL = { method: OTHER, target: OTHER, tool: OTHER, agent: OTHER, outcome: OTHER };
const OVERFLOW_ERROR = { method: OTHER, target: OTHER, error_type: OTHER };
/** Past this many label sets a metric folds new ones into one `other` set (a last-resort guard). */
const MAX_LABEL_SETS = 20_000;

const KNOWN_METHODS = new Set([
  'initialize', 'ping', 'server/discover', 'subscriptions/listen',
  'tools/list', 'tools/call', 'prompts/list', 'prompts/get',
  'resources/list', 'resources/templates/list', 'resources/read', 'resources/subscribe', 'resources/unsubscribe',
  'completion/complete', 'logging/setLevel',
  'tasks/get', 'tasks/update', 'tasks/cancel', 'tasks/list', 'tasks/result',
  'notifications/initialized', 'notifications/cancelled', 'notifications/progress', 'notifications/roots/list_changed',
]);

const KNOWN_ERROR_TYPES = new Set<string>(Object.values(ERROR_TABLE).map((spec) => spec.type));

const UPSTREAM_STATES = ['idle', 'connecting', 'ready', 'reconnecting', 'closed', 'disabled', 'failed'] as const;

/** Latency buckets (seconds): sub-millisecond gateway answers up to a minute-long tool call. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const AUDIT_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/** The `error_type` label: a type of the error table or a standard JSON-RPC code, else `other`. */
export function errorTypeLabel(errorType: string): string {
  if (KNOWN_ERROR_TYPES.has(errorType)) return errorType;
  if (errorType.startsWith('rpc_')) {
    const code = Number(errorType.slice(4));
    // Reserved JSON-RPC range (-32768..-32000): a bounded set. Anything else an upstream invents is not.
    if (Number.isInteger(code) && code >= -32768 && code <= -32000) return errorType;
  }
  return OTHER;
}

interface CounterCell {
  readonly labels: Record<string, string>;
  value: number;
}

/** Counter values kept as plain numbers per label set; copied into prom-client when scraped. */
class CounterCells {
  private readonly cells = new Map<string, CounterCell>();

  add(key: string, labels: () => Record<string, string>, overflow: Record<string, string>): void {
    let cell = this.cells.get(key);
    if (cell === undefined) {
      const full = this.cells.size >= MAX_LABEL_SETS;
      const cellKey = full ? '\u0000overflow' : key;
      cell = this.cells.get(cellKey);
      if (cell === undefined) {
        cell = { labels: full ? overflow : labels(), value: 0 };
        this.cells.set(cellKey, cell);
      }
    }
    cell.value += 1;
  }

  copyInto(counter: Counter<string>): void {
    counter.reset();
    for (const cell of this.cells.values()) counter.inc(cell.labels, cell.value);
  }
}

type Observer = { observe(value: number): void };

export class GatewayMetrics {
  readonly registry = new Registry();
  private readonly sources: MetricsSources;
  private readonly calls = new CounterCells();
  private readonly errors = new CounterCells();
  private readonly durations = new Map<string, Observer>();
  private readonly duration: Histogram<'method' | 'target' | 'tool'>;
  private readonly auditWrite: Histogram<string>;
  private readonly auditQueue: Gauge<string>;
  private agentList: readonly string[] | undefined;
  private agentSet: ReadonlySet<string> = new Set();

  constructor(sources: MetricsSources) {
    this.sources = sources;
    const registers = [this.registry];
    const calls = this.calls;
    const errors = this.errors;
    new Counter({
      name: 'gatehouse_calls_total',
      help: 'Downstream messages handled, by MCP method, target, tool, agent and outcome (ok, error, upstream_error, cancelled, accepted).',
      labelNames: ['method', 'target', 'tool', 'agent', 'outcome'],
      registers,
      collect() {
        calls.copyInto(this);
      },
    });
    new Counter({
      name: 'gatehouse_call_errors_total',
      help: 'Failed calls by MCP method, target and error class (the error table type, or rpc_<code> for an upstream JSON-RPC error).',
      labelNames: ['method', 'target', 'error_type'],
      registers,
      collect() {
        errors.copyInto(this);
      },
    });
    this.duration = new Histogram({
      name: 'gatehouse_call_duration_seconds',
      help: 'Time from receiving a request to having its answer, by MCP method, target and tool (cancelled calls excluded).',
      labelNames: ['method', 'target', 'tool'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.registerStateMetrics(registers);
    this.auditWrite = new Histogram({ name: 'gatehouse_audit_write_seconds', help: 'Latency of one audit commit (a group of rows).', buckets: AUDIT_BUCKETS, registers });
    this.auditQueue = new Gauge({ name: 'gatehouse_audit_queue_depth', help: 'Audit rows waiting for a commit.', registers });
    new Gauge({ name: 'gatehouse_build_info', help: 'Always 1; the gateway version as a label.', labelNames: ['version'], registers }).set({ version: GATEWAY_VERSION }, 1);
  }

  /** Call-record subscriber. Never throws: metrics must not break the emit loop. */
  readonly onRecord = (record: Readonly<CallRecord>): void => {
    try {
      this.observe(record);
    } catch {
      // A metrics defect loses a sample, never a call or another subscriber's record.
    }
  };

  /** Called by the audit writer after each commit. */
  observeAuditWrite(ms: number): void {
    this.auditWrite.observe(ms / 1000);
  }

  /** Called by the audit writer when its queue changes. */
  setAuditQueueDepth(depth: number): void {
    this.auditQueue.set(depth);
  }

  /** The text exposition of every metric. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  private observe(record: Readonly<CallRecord>): void {
    const method = KNOWN_METHODS.has(record.method) ? record.method : OTHER;
    const target = record.target ?? '';
    const tool = record.method === 'tools/call' && record.name !== undefined ? (this.sources.isTool(record.name) ? record.name : OTHER) : '';
    const agent = record.agent === undefined ? '' : this.allowedAgents().has(record.agent) ? record.agent : OTHER;
    const outcome = record.outcome;
    const route = `${method}\u0001${target}\u0001${tool}`;
    this.calls.add(`${route}\u0001${agent}\u0001${outcome}`, () => ({ method, target, tool, agent, outcome }), OVERFLOW_CALL);
    if ((outcome === 'error' || outcome === 'upstream_error') && record.errorType !== undefined) {
      const errorType = errorTypeLabel(record.errorType);
      this.errors.add(`${method}\u0001${target}\u0001${errorType}`, () => ({ method, target, error_type: errorType }), OVERFLOW_ERROR);
    }
    if (record.downstreamId === undefined || outcome === 'cancelled' || outcome === 'accepted') return;
    let observer = this.durations.get(route);
    if (observer === undefined) {
      const full = this.durations.size >= MAX_LABEL_SETS;
      observer = this.duration.labels(full ? { method: OTHER, target: OTHER, tool: OTHER } : { method, target, tool });
      if (!full) this.durations.set(route, observer);
    }
    observer.observe(record.latencyMs / 1000);
  }

  /** The allow-list as a set, rebuilt only when a new snapshot brings a new list. */
  private allowedAgents(): ReadonlySet<string> {
    const list = this.sources.agentLabels();
    if (list !== this.agentList) {
      this.agentList = list;
      this.agentSet = new Set(list);
    }
    return this.agentSet;
  }

  private registerStateMetrics(registers: Registry[]): void {
    const sources = this.sources;
    new Gauge({
      name: 'gatehouse_upstream_up',
      help: '1 when the target\'s shared upstream connection is ready, else 0.',
      labelNames: ['target'],
      registers,
      collect() {
        this.reset();
        for (const t of sources.targets()) this.set({ target: t.name }, t.state === 'ready' ? 1 : 0);
      },
    });
    new Gauge({
      name: 'gatehouse_upstream_state',
      help: 'The state of each target\'s shared upstream connection: 1 for the current state, 0 for the others.',
      labelNames: ['target', 'state'],
      registers,
      collect() {
        this.reset();
        for (const t of sources.targets()) for (const state of UPSTREAM_STATES) this.set({ target: t.name, state }, t.state === state ? 1 : 0);
      },
    });
    new Counter({
      name: 'gatehouse_upstream_restarts_total',
      help: 'Restarts of a target\'s upstream connection (stdio child restarts, HTTP stream reconnects) since it was created.',
      labelNames: ['target'],
      registers,
      collect() {
        this.reset();
        for (const t of sources.targets()) this.inc({ target: t.name }, t.restarts);
      },
    });
    new Gauge({
      name: 'gatehouse_upstream_in_flight',
      help: 'Requests waiting for an answer on a target\'s shared upstream connection.',
      labelNames: ['target'],
      registers,
      collect() {
        this.reset();
        for (const t of sources.targets()) this.set({ target: t.name }, t.inFlight);
      },
    });
    new Gauge({
      name: 'gatehouse_sessions',
      help: 'Open downstream sessions (2025-era and earlier; 2026-07-28 requests are sessionless).',
      registers,
      collect() {
        this.set(sources.sessions());
      },
    });
  }
}
