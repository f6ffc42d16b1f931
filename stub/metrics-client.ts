/**
 * The stub's side of custom metrics (the model API's MetricFamily): families and metrics live
 * here, changes apply at once (so `value()` and the checks are synchronous, with Triton's
 * messages: core src/metric_family.cc), and what changed is sent to the host in batches — when
 * the stub is about to send a response (StubLoop calls flush()), else after `flushDelayMs`.
 */
import { METRIC_KINDS, type MetricChange, type MetricKind, type MetricsBatch, type MetricsBatchResult, type NewMetric, type NewMetricFamily } from '../src/core/metric-updates.js';
import { ModelError } from './api/errors.js';
import type { MetricHandle } from './api/runtime.js';

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

interface FamilyState {
  id: number;
  name: string;
  help: string;
  kind: MetricKind;
  metrics: Map<string, MetricState>;
  /** The host refused it: why (every later operation on its metrics throws this). */
  failed?: string;
}

interface MetricState {
  id: number;
  family: FamilyState;
  buckets?: number[];
  /** Counters and gauges: the value as this stub knows it. */
  value: number;
  /** Changes since the last flush: `set` (gauges), then `inc`. */
  inc: number;
  set?: number;
  /** Histograms: observations since the last flush, per bucket (the last is +Inf). */
  counts?: number[];
  sum: number;
  count: number;
  failed?: string;
}

export class MetricsClient {
  private readonly byName = new Map<string, FamilyState>();
  private readonly families = new Map<number, FamilyState>();
  private readonly metrics = new Map<number, MetricState>();
  private nextId = 1;
  private newFamilies: NewMetricFamily[] = [];
  private newMetrics: NewMetric[] = [];
  private readonly dirty = new Set<MetricState>();
  private seq = 0;
  private timer?: NodeJS.Timeout;

  constructor(private readonly send: (batch: MetricsBatch) => void, private readonly flushDelayMs = 500) {}

  family(name: string, description: string, kind: MetricKind): number {
    if (typeof name !== 'string' || !NAME.test(name)) {
      throw new ModelError(`MetricFamily: name ${JSON.stringify(name)} is not a Prometheus metric name (letters, digits, '_' and ':', not starting with a digit)`, 'INVALID_ARG');
    }
    if (typeof description !== 'string') throw new ModelError(`MetricFamily '${name}': description must be a string (the metric's HELP text)`, 'INVALID_ARG');
    if (!METRIC_KINDS.includes(kind)) {
      throw new ModelError(`MetricFamily '${name}': kind must be MetricFamily.COUNTER, MetricFamily.GAUGE or MetricFamily.HISTOGRAM, got ${JSON.stringify(kind)}`, 'INVALID_ARG');
    }
    const existing = this.byName.get(name);
    if (existing) {
      // As prometheus-cpp under Triton: the same name, kind and help is the same family.
      if (existing.kind !== kind || existing.help !== description) {
        throw new ModelError(`MetricFamily '${name}' already exists as a ${existing.kind} with description '${existing.help}': a name has one kind and one description`, 'INVALID_ARG');
      }
      if (existing.failed) throw new ModelError(existing.failed, 'INVALID_ARG');
      return existing.id;
    }
    const family: FamilyState = { id: this.nextId++, name, help: description, kind, metrics: new Map() };
    this.byName.set(name, family);
    this.families.set(family.id, family);
    this.newFamilies.push({ id: family.id, name, help: description, kind });
    this.schedule();
    return family.id;
  }

  metric(familyId: number, labels: Record<string, string>, buckets: number[] | undefined): MetricHandle {
    const family = this.families.get(familyId);
    if (!family) throw new ModelError('Failed to create metric. Its MetricFamily is unknown to this stub.', 'INTERNAL');
    if (family.failed) throw new ModelError(family.failed, 'INVALID_ARG');
    // Triton's messages (python_backend src/metric_family.cc, CreateMetric).
    if (labels === null || typeof labels !== 'object' || Array.isArray(labels)) throw new ModelError('Failed to create metric. Labels must be a dictionary.', 'INVALID_ARG');
    for (const [k, v] of Object.entries(labels)) {
      if (!LABEL.test(k) || k.startsWith('__')) throw new ModelError(`Failed to create metric. Label name ${JSON.stringify(k)} is not a Prometheus label name (letters, digits and '_', not starting with a digit or '__').`, 'INVALID_ARG');
      if (typeof v !== 'string') throw new ModelError(`Failed to create metric. Label '${k}' must have a string value, got ${typeof v}.`, 'INVALID_ARG');
    }
    if (buckets !== undefined && buckets !== null) {
      if (!Array.isArray(buckets)) throw new ModelError('Failed to create metric. Buckets must be a list.', 'INVALID_ARG');
      if (family.kind !== 'HISTOGRAM') throw new ModelError('Failed to create metric. Unexpected buckets found.', 'INVALID_ARG');
      if (!buckets.every((b, i) => typeof b === 'number' && Number.isFinite(b) && (i === 0 || b > buckets[i - 1]!))) {
        throw new ModelError(`Failed to create metric. Buckets must be finite numbers in increasing order, got ${JSON.stringify(buckets)}.`, 'INVALID_ARG');
      }
    } else if (family.kind === 'HISTOGRAM') {
      throw new ModelError('Failed to create metric. Missing required buckets.', 'INVALID_ARG');
    }
    const plain: Record<string, string> = { ...labels };
    const key = JSON.stringify(Object.entries(plain).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    let m = family.metrics.get(key);
    if (m) {
      if (family.kind === 'HISTOGRAM' && JSON.stringify(m.buckets) !== JSON.stringify(buckets)) {
        throw new ModelError(`Failed to create metric. The metric of '${family.name}' with labels ${JSON.stringify(plain)} already has buckets ${JSON.stringify(m.buckets)}.`, 'INVALID_ARG');
      }
    } else {
      m = { id: this.nextId++, family, value: 0, inc: 0, sum: 0, count: 0 };
      if (family.kind === 'HISTOGRAM') {
        m.buckets = [...buckets!];
        m.counts = new Array<number>(m.buckets.length + 1).fill(0);
      }
      family.metrics.set(key, m);
      this.metrics.set(m.id, m);
      this.newMetrics.push({ id: m.id, family: family.id, labels: plain, ...(m.buckets ? { buckets: m.buckets } : {}) });
      this.schedule();
    }
    return this.handle(m);
  }

  /** Sends what changed since the last flush, if anything did. */
  flush(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.newFamilies.length === 0 && this.newMetrics.length === 0 && this.dirty.size === 0) return;
    const changes: MetricChange[] = [];
    for (const m of this.dirty) {
      if (m.counts) {
        changes.push({ id: m.id, counts: m.counts, sum: m.sum, count: m.count });
        m.counts = new Array<number>(m.counts.length).fill(0);
        m.sum = 0;
        m.count = 0;
      } else {
        changes.push(m.set === undefined ? { id: m.id, inc: m.inc } : { id: m.id, set: m.set, inc: m.inc });
        m.inc = 0;
        m.set = undefined;
      }
    }
    this.dirty.clear();
    const batch: MetricsBatch = { n: ++this.seq };
    if (this.newFamilies.length > 0) batch.families = this.newFamilies;
    if (this.newMetrics.length > 0) batch.metrics = this.newMetrics;
    if (changes.length > 0) batch.changes = changes;
    this.newFamilies = [];
    this.newMetrics = [];
    this.send(batch);
  }

  /** The host's answer to a flush: refusals, and the server's values (taken from the answer to the latest flush only). */
  onResult(result: MetricsBatchResult): void {
    for (const e of result.errors ?? []) {
      if (e.family !== undefined) {
        const f = this.families.get(e.family);
        if (f) {
          f.failed = e.message;
          for (const m of f.metrics.values()) m.failed = e.message;
        }
      }
      if (e.metric !== undefined) {
        const m = this.metrics.get(e.metric);
        if (m) m.failed = e.message;
      }
    }
    // An older answer would undo changes flushed after it.
    if (result.n !== this.seq) return;
    for (const [id, value] of result.values ?? []) {
      const m = this.metrics.get(id);
      if (m && !m.counts && m.set === undefined) m.value = value + m.inc;
    }
  }

  private handle(m: MetricState): MetricHandle {
    const kind = m.family.kind;
    const check = (what: string, value: unknown): number => {
      if (m.failed) throw new ModelError(m.failed, 'INVALID_ARG');
      if (typeof value !== 'number' || !Number.isFinite(value)) throw new ModelError(`Failed to ${what} metric value: the value must be a finite number, got ${String(value)}`, 'INVALID_ARG');
      return value;
    };
    const unsupported = (what: string, op: string): ModelError =>
      new ModelError(`Failed to ${what} metric value: TRITONSERVER_METRIC_KIND_${kind} does not support ${op}`, 'UNSUPPORTED');
    return {
      increment: (value: number) => {
        const v = check('increment', value);
        if (kind === 'HISTOGRAM') throw unsupported('increment', 'Increment');
        if (kind === 'COUNTER' && v < 0) {
          throw new ModelError('Failed to increment metric value: TRITONSERVER_METRIC_KIND_COUNTER can only be incremented monotonically by non-negative values.', 'INVALID_ARG');
        }
        m.value += v;
        m.inc += v;
        this.touch(m);
      },
      set: (value: number) => {
        const v = check('set', value);
        if (kind !== 'GAUGE') throw unsupported('set', 'Set');
        m.value = v;
        m.set = v;
        m.inc = 0;
        this.touch(m);
      },
      observe: (value: number) => {
        const v = check('observe', value);
        if (kind !== 'HISTOGRAM') throw unsupported('observe', 'Observe');
        const buckets = m.buckets!;
        let i = 0;
        while (i < buckets.length && v > buckets[i]!) i++;
        m.counts![i]!++;
        m.sum += v;
        m.count++;
        this.touch(m);
      },
      value: () => {
        if (m.failed) throw new ModelError(m.failed, 'INVALID_ARG');
        if (kind === 'HISTOGRAM') throw unsupported('get', 'Value');
        return m.value;
      },
    };
  }

  private touch(m: MetricState): void {
    this.dirty.add(m);
    this.schedule();
  }

  private schedule(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flush();
    }, this.flushDelayMs);
    this.timer.unref();
  }
}
