/**
 * Prometheus metrics with Triton's names, help texts and labels, so dashboards and alerts written
 * for Triton read a stubhost server unchanged. One `Metrics` per server, on its own prom-client
 * Registry: the global registry would mix two servers in one process (tests do that) and would
 * keep series alive after a server closes.
 */
import { Counter, Gauge, Registry, Summary } from 'prom-client';
import { CacheMetrics } from './cache-metrics.js';
import type { ResponseCache } from '../cache/response-cache.js';
import { CustomMetrics } from './custom-metrics.js';

/** Triton's values of the `reason` label on nv_inference_request_failure. */
export const FAILURE_REASONS = ['REJECTED', 'CANCELED', 'BACKEND', 'OTHER'] as const;
export type FailureReason = (typeof FAILURE_REASONS)[number];

export interface MetricsOptions {
  /**
   * Adds nv_inference_request_summary_us (quantiles over a sliding window), as Triton does with
   * `--metrics-config summary_latencies=true`. Off by default, like Triton: a summary costs a
   * quantile-sketch insert per request.
   */
  latencySummary?: boolean;
  /** Quantiles the summary reports; default 0.5, 0.9, 0.95, 0.99 (Triton's default set). */
  summaryQuantiles?: number[];
  /** Sliding window of the summary, in seconds. */
  summaryMaxAgeSeconds?: number;
}

/**
 * The running totals of one (model, version). The recorder adds to these plain numbers on every
 * request; prom-client reads them only when scraped (see `collect` below). Calling
 * `counter.inc(labels, v)` per request instead hashes the label set every time: about 1.4 µs per
 * request for the nine series; with plain adds a success plus an execution measured about 95 ns.
 */
export interface ModelSeries {
  readonly labels: Readonly<{ model: string; version: string }>;
  success: number;
  readonly failure: Record<FailureReason, number>;
  inferenceCount: number;
  execCount: number;
  requestUs: number;
  queueUs: number;
  computeInputUs: number;
  computeInferUs: number;
  computeOutputUs: number;
  pending: number;
  /** Feeds the latency summary; a no-op unless the server was built with `latencySummary`. */
  observeRequestUs(us: number): void;
}

type CounterField = 'success' | 'inferenceCount' | 'execCount' | 'requestUs' | 'queueUs' | 'computeInputUs' | 'computeInferUs' | 'computeOutputUs';

const MODEL_LABELS = ['model', 'version'] as const;
const STUB_LABELS = ['model', 'instance'] as const;

export class Metrics {
  readonly registry: Registry;
  /** The families models create (MetricFamily), on the same registry. */
  readonly custom: CustomMetrics;

  private readonly requestSummary?: Summary<'model' | 'version'>;
  private readonly stubHealthy: Gauge<'model' | 'instance'>;
  private readonly stubRestarts: Counter<'model' | 'instance'>;
  private readonly stalledExecutes: Gauge<'model' | 'instance'>;

  /** Series by "model\0version", so two recorders of one version share them. */
  private readonly models = new Map<string, ModelSeries>();
  /** Instances seen per model: prom-client removes only exact label sets, so we keep the list. */
  private readonly stubs = new Map<string, Set<string>>();
  /** The response cache's metrics, once the server has a cache (enableCache). */
  cache?: CacheMetrics;

  constructor(opts: MetricsOptions = {}) {
    this.registry = new Registry();
    const registers = [this.registry];
    const models = this.models;
    // Rebuilt from the totals on each scrape, so a removed model simply stops appearing.
    const counter = (name: string, help: string, field: CounterField) =>
      new Counter({
        name,
        help,
        labelNames: MODEL_LABELS,
        registers,
        collect() {
          this.reset();
          for (const s of models.values()) this.inc(s.labels, s[field]);
        },
      });

    // Help texts are Triton's, word for word.
    counter('nv_inference_request_success', 'Number of successful inference requests, all batch sizes', 'success');
    new Counter({
      name: 'nv_inference_request_failure',
      help: 'Number of failed inference requests, all batch sizes',
      labelNames: [...MODEL_LABELS, 'reason'],
      registers,
      collect() {
        this.reset();
        for (const s of models.values()) {
          for (const reason of FAILURE_REASONS) this.inc({ ...s.labels, reason }, s.failure[reason]);
        }
      },
    });
    counter('nv_inference_count', 'Number of inferences performed (does not include cached requests)', 'inferenceCount');
    counter('nv_inference_exec_count', 'Number of model executions performed (does not include cached requests)', 'execCount');
    counter(
      'nv_inference_request_duration_us',
      'Cumulative inference request duration in microseconds (includes cached requests)',
      'requestUs',
    );
    counter(
      'nv_inference_queue_duration_us',
      'Cumulative inference queuing duration in microseconds (includes cached requests)',
      'queueUs',
    );
    counter(
      'nv_inference_compute_input_duration_us',
      'Cumulative compute input duration in microseconds (does not include cached requests)',
      'computeInputUs',
    );
    counter(
      'nv_inference_compute_infer_duration_us',
      'Cumulative compute inference duration in microseconds (does not include cached requests)',
      'computeInferUs',
    );
    counter(
      'nv_inference_compute_output_duration_us',
      'Cumulative inference compute output duration in microseconds (does not include cached requests)',
      'computeOutputUs',
    );
    new Gauge({
      name: 'nv_inference_pending_request_count',
      help: 'Instantaneous number of pending requests awaiting execution per-model.',
      labelNames: MODEL_LABELS,
      registers,
      collect() {
        this.reset();
        for (const s of models.values()) this.set(s.labels, s.pending);
      },
    });
    if (opts.latencySummary) {
      this.requestSummary = new Summary({
        name: 'nv_inference_request_summary_us',
        help: 'Summary of inference request duration in microseconds (includes cached requests)',
        labelNames: MODEL_LABELS,
        percentiles: opts.summaryQuantiles ?? [0.5, 0.9, 0.95, 0.99],
        maxAgeSeconds: opts.summaryMaxAgeSeconds ?? 60,
        ageBuckets: 5,
        registers,
      });
    }
    this.stubHealthy = new Gauge({
      name: 'stubhost_stub_healthy',
      help: 'Whether the stub process of a model instance answers its health checks (1) or not (0)',
      labelNames: STUB_LABELS,
      registers,
    });
    this.stubRestarts = new Counter({
      name: 'stubhost_stub_restarts_total',
      help: 'Number of times the stub process of a model instance was restarted after it died or hung',
      labelNames: STUB_LABELS,
      registers,
    });
    this.stalledExecutes = new Gauge({
      name: 'stubhost_stalled_executes',
      help: 'Number of executes of a model instance running longer than --execute-warn-secs',
      labelNames: STUB_LABELS,
      registers,
    });
    this.custom = new CustomMetrics(this.registry);
  }

  /**
   * The series of one model version, created at 0 as Triton does when a model loads, so a scrape
   * shows a loaded model before its first request and rate() has a starting point.
   */
  model(name: string, version: string): ModelSeries {
    const key = `${name}\0${version}`;
    let series = this.models.get(key);
    if (series) return series;
    const labels = Object.freeze({ model: name, version });
    const summary = this.requestSummary;
    series = {
      labels,
      success: 0,
      failure: { REJECTED: 0, CANCELED: 0, BACKEND: 0, OTHER: 0 },
      inferenceCount: 0,
      execCount: 0,
      requestUs: 0,
      queueUs: 0,
      computeInputUs: 0,
      computeInferUs: 0,
      computeOutputUs: 0,
      pending: 0,
      observeRequestUs: summary ? (us) => summary.observe(labels, us) : () => {},
    };
    this.models.set(key, series);
    return series;
  }

  /** Adds the nv_cache_* families (the server was started with --cache-config). */
  enableCache(cache: ResponseCache): void {
    this.cache ??= new CacheMetrics(this.registry, cache);
  }

  /**
   * Drops every series of a model version (on unload), so a scrape does not report a model that
   * is gone. A recorder holding the old series keeps adding to a detached object: harmless, and
   * `ModelStatsRecorder.close()` detaches it anyway.
   */
  removeModel(name: string, version: string): void {
    const series = this.models.get(`${name}\0${version}`);
    if (!series) return;
    this.models.delete(`${name}\0${version}`);
    this.requestSummary?.remove(series.labels);
    this.cache?.remove(name, version);
  }

  setStubHealthy(model: string, instance: string, healthy: boolean): void {
    this.trackStub(model, instance);
    this.stubHealthy.set({ model, instance }, healthy ? 1 : 0);
  }

  incStubRestarts(model: string, instance: string): void {
    this.trackStub(model, instance);
    this.stubRestarts.inc({ model, instance });
  }

  setStalledExecutes(model: string, instance: string, count: number): void {
    this.trackStub(model, instance);
    this.stalledExecutes.set({ model, instance }, count);
  }

  /** Drops the stub series of one instance, or of every instance of the model. */
  removeStubs(model: string, instance?: string): void {
    const instances = this.stubs.get(model);
    if (!instances) return;
    for (const i of instance === undefined ? [...instances] : [instance]) {
      this.stubHealthy.remove({ model, instance: i });
      this.stubRestarts.remove({ model, instance: i });
      this.stalledExecutes.remove({ model, instance: i });
      instances.delete(i);
    }
    if (instances.size === 0) this.stubs.delete(model);
  }

  /** The exposition text for a scrape. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  private trackStub(model: string, instance: string): void {
    let set = this.stubs.get(model);
    if (!set) this.stubs.set(model, (set = new Set()));
    set.add(instance);
  }
}
