/**
 * Custom metrics, as Triton's python backend `pb_utils.MetricFamily` (python_backend
 * src/pb_stub.cc, src/metric_family.cc, src/metric.cc; semantics of core src/metric_family.cc):
 *
 *   const family = new MetricFamily({ name: 'preprocess_latency_ns', description: '...', kind: MetricFamily.COUNTER });
 *   const metric = family.Metric({ model: 'ocr', version: '1' });
 *   metric.increment(ns);
 *
 * Families are exported with the server's metrics on /metrics. A family of the same name, kind
 * and description made by another instance or model is the same family, and the same labels are
 * the same metric (their changes add up), as prometheus-cpp merges them in Triton. Families and
 * their metrics are removed when the model that made them unloads.
 *
 * Unlike Triton's, a change is not a round trip to the server: the stub applies it at once and
 * sends the changes in batches — before each response leaves the stub (so a client that got its
 * response and then scrapes sees what its request counted) and otherwise within half a second.
 */
import { ModelError } from './errors.js';
import { getRuntime, type MetricHandle, type MetricKindName, type StubRuntime } from './runtime.js';

export type MetricKind = MetricKindName;

export interface MetricFamilyOptions {
  /** A Prometheus metric name: [a-zA-Z_:][a-zA-Z0-9_:]*. */
  name: string;
  /** The HELP text. */
  description: string;
  kind: MetricKind;
}

/** One metric (one label set) of a family. */
export class Metric {
  /** @internal made by MetricFamily.Metric */
  constructor(private readonly handle: MetricHandle) {}

  /** Counters: adds `value` (>= 0). Gauges: adds `value` (may be negative). Histograms: refused. */
  increment(value: number): void {
    this.handle.increment(value);
  }

  /** Gauges only: sets the value. */
  set(value: number): void {
    this.handle.set(value);
  }

  /** Histograms only: records one observation. */
  observe(value: number): void {
    this.handle.observe(value);
  }

  /**
   * Counters and gauges: the value — the server's as of the last flush this stub made, plus this
   * stub's changes since (other instances' changes show after the next flush). Histograms: refused.
   */
  value(): number {
    return this.handle.value();
  }
}

export class MetricFamily {
  static readonly COUNTER = 'COUNTER' as const;
  static readonly GAUGE = 'GAUGE' as const;
  static readonly HISTOGRAM = 'HISTOGRAM' as const;

  readonly name: string;
  readonly description: string;
  readonly kind: MetricKind;
  private readonly id: number;

  constructor(options: MetricFamilyOptions) {
    if (!options || typeof options !== 'object') throw new ModelError('MetricFamily: give { name, description, kind }', 'INVALID_ARG');
    const runtime = metricsRuntime();
    this.name = options.name;
    this.description = options.description;
    this.kind = options.kind;
    this.id = runtime.metricFamily!(options.name, options.description, options.kind);
  }

  /**
   * The metric of this family with these labels (string values). Histograms need `buckets`
   * (increasing upper bounds; +Inf is implied), counters and gauges take none.
   */
  Metric(labels?: Record<string, string>, buckets?: number[]): Metric {
    return new Metric(metricsRuntime().metric!(this.id, labels ?? {}, buckets));
  }
}

function metricsRuntime(): StubRuntime {
  const runtime = getRuntime();
  if (!runtime?.metricFamily || !runtime.metric) throw new ModelError('custom metrics need a stubhost stub: this code is not running inside one', 'UNAVAILABLE');
  return runtime;
}
