/**
 * Per-(model, version) statistics, kept the way Triton's InferenceStatsAggregator keeps them, so
 * `/v2/models/{m}/stats` and the nv_inference_* metrics mean what they mean in Triton:
 *
 * - recordSuccess / recordFailure: once per *request*, when its final response is sent;
 *   `inference_stats.*.count` counts requests, and compute_* are the durations of the execution
 *   the request was part of (so a batch of 4 adds its compute time 4 times, as in Triton).
 * - recordExecution: once per *execution* of a batch; `inference_count` grows by the batch size,
 *   `execution_count` by 1, and `batch_stats` keeps one entry per batch size seen.
 *
 * Owned by the scheduler of the model version, called on the host's event loop only (no locks).
 * Durations are in nanoseconds as numbers: a float64 holds 104 days of cumulative ns exactly,
 * and after that loses sub-µs precision rather than overflowing, which statistics can afford;
 * bigint would cost an allocation per add.
 */
import type { ModelStatistics } from '../core/service.js';
import { StubhostError } from '../errors.js';
import type { FailureReason, Metrics, ModelSeries } from './registry.js';
import type { CacheSeries } from './cache-metrics.js';

export interface SuccessDurations {
  queueNs: number;
  computeInputNs: number;
  computeInferNs: number;
  computeOutputNs: number;
  /** From the request's arrival to its final response. */
  requestNs: number;
}

export interface FailureDurations {
  requestNs: number;
  /** Triton's failure reason label; OTHER when omitted. See `failureReasonOf`. */
  reason?: FailureReason;
}

export interface ExecutionDurations {
  computeInputNs: number;
  computeInferNs: number;
  computeOutputNs: number;
}

/** One response index's counters, as Triton's InferResponseStats (core src/infer_stats.h). */
interface ResponseCounters {
  computeInferCount: number;
  computeInferNs: number;
  computeOutputCount: number;
  computeOutputNs: number;
  successCount: number;
  successNs: number;
  failCount: number;
  failNs: number;
  emptyCount: number;
  emptyNs: number;
  cancelCount: number;
  cancelNs: number;
}

/** One response of a decoupled request (see ResponseStat in src/instance/stub-process.ts). */
export interface ResponseDurations {
  index: number;
  kind: 'success' | 'fail' | 'empty' | 'cancel';
  inferNs: number;
  outputNs: number;
}

interface BatchCounters {
  count: number;
  inputNs: number;
  inferNs: number;
  outputNs: number;
}

/**
 * Negative or NaN durations (a caller's clock bug) become 0: prom-client throws on a negative
 * counter increment and a NaN would poison the sum for the life of the process, and neither
 * should fail a request that already succeeded.
 */
function ns(x: number): number {
  return x > 0 ? x : 0;
}

export class ModelStatsRecorder {
  readonly model: string;
  readonly version: string;

  private readonly metrics: Metrics | undefined;
  private series: ModelSeries | undefined;
  private lastInferenceMs = 0;
  private inferenceCount = 0;
  private executionCount = 0;
  private pendingCount = 0;
  private successCount = 0;
  private successNs = 0;
  private failCount = 0;
  private failNs = 0;
  private queueNs = 0;
  private computeInputNs = 0;
  private computeInferNs = 0;
  private computeOutputNs = 0;
  private cacheHitCount = 0;
  private cacheHitNs = 0;
  private cacheMissCount = 0;
  private cacheMissNs = 0;
  private cacheSeries: CacheSeries | undefined;
  /** Allocates once per distinct batch size, never per call. */
  private readonly batches = new Map<number, BatchCounters>();
  /** Response index → counters (decoupled models); allocates once per index seen. */
  private readonly responses = new Map<number, ResponseCounters>();

  /** With `metrics`, every record call also updates the model's Prometheus series. */
  constructor(model: string, version: string, metrics?: Metrics) {
    this.model = model;
    this.version = version;
    this.series = metrics?.model(model, version);
    this.metrics = metrics;
  }

  recordSuccess(d: SuccessDurations): void {
    const requestNs = ns(d.requestNs);
    const queueNs = ns(d.queueNs);
    const inputNs = ns(d.computeInputNs);
    const inferNs = ns(d.computeInferNs);
    const outputNs = ns(d.computeOutputNs);
    this.successCount++;
    this.successNs += requestNs;
    this.queueNs += queueNs;
    this.computeInputNs += inputNs;
    this.computeInferNs += inferNs;
    this.computeOutputNs += outputNs;
    this.lastInferenceMs = Date.now();
    const s = this.series;
    if (s) {
      s.success++;
      // Fractional µs kept: adding whole µs per request (as Triton does) undercounts fast models.
      s.requestUs += requestNs / 1e3;
      s.queueUs += queueNs / 1e3;
      s.computeInputUs += inputNs / 1e3;
      s.computeInferUs += inferNs / 1e3;
      s.computeOutputUs += outputNs / 1e3;
      s.observeRequestUs(requestNs / 1e3);
    }
  }

  /** This version uses the response cache: its nv_cache_*_per_model series start at 0 (Triton registers them at load). */
  enableCache(): void {
    if (this.series) this.cacheSeries ??= this.metrics?.cache?.model(this.model, this.version);
  }

  /**
   * A request answered from the response cache, as Triton's InferenceStatsAggregator::
   * UpdateSuccessCacheHit (core src/infer_stats.cc): a success with its duration, and a cache hit;
   * no execution and no compute time.
   */
  recordCacheHit(d: { requestNs: number; hitNs: number }): void {
    const requestNs = ns(d.requestNs);
    const hitNs = ns(d.hitNs);
    this.successCount++;
    this.successNs += requestNs;
    this.cacheHitCount++;
    this.cacheHitNs += hitNs;
    this.lastInferenceMs = Date.now();
    const s = this.series;
    if (s) {
      s.success++;
      s.requestUs += requestNs / 1e3;
      s.observeRequestUs(requestNs / 1e3);
    }
    if (this.cacheSeries) {
      this.cacheSeries.hits++;
      this.cacheSeries.hitUs += hitNs / 1e3;
    }
  }

  /**
   * A request that missed the cache, ran, and had its result stored (UpdateSuccessCacheMiss): the
   * lookup and insertion time is added to the request's duration and to cache_miss.
   */
  recordCacheMiss(missNs: number): void {
    const n = ns(missNs);
    this.successNs += n;
    this.cacheMissCount++;
    this.cacheMissNs += n;
    if (this.series) this.series.requestUs += n / 1e3;
    if (this.cacheSeries) {
      this.cacheSeries.misses++;
      this.cacheSeries.missUs += n / 1e3;
    }
  }

  /** As in Triton, a failure adds to `fail` only: not to the duration counters nor last_inference. */
  recordFailure(d: FailureDurations): void {
    this.failCount++;
    this.failNs += ns(d.requestNs);
    if (this.series) this.series.failure[d.reason ?? 'OTHER']++;
  }

  /** One execution of `batchSize` requests (or batch items) by a model instance. */
  recordExecution(batchSize: number, d: ExecutionDurations): void {
    const inputNs = ns(d.computeInputNs);
    const inferNs = ns(d.computeInferNs);
    const outputNs = ns(d.computeOutputNs);
    this.inferenceCount += batchSize;
    this.executionCount++;
    this.lastInferenceMs = Date.now();
    let b = this.batches.get(batchSize);
    if (!b) this.batches.set(batchSize, (b = { count: 0, inputNs: 0, inferNs: 0, outputNs: 0 }));
    b.count++;
    b.inputNs += inputNs;
    b.inferNs += inferNs;
    b.outputNs += outputNs;
    const s = this.series;
    if (s) {
      s.inferenceCount += batchSize;
      s.execCount++;
    }
  }

  /**
   * One response of a decoupled request, counted under its index as Triton's core does
   * (src/infer_stats.cc UpdateResponseSuccess / Fail / Empty / Cancel): success and fail add
   * compute_infer, compute_output (when outputs were copied) and their sum; an empty response
   * (the final flag alone) adds compute_infer; a cancelled one only its own duration.
   */
  recordResponse(d: ResponseDurations): void {
    let r = this.responses.get(d.index);
    if (!r) {
      r = { computeInferCount: 0, computeInferNs: 0, computeOutputCount: 0, computeOutputNs: 0, successCount: 0, successNs: 0, failCount: 0, failNs: 0, emptyCount: 0, emptyNs: 0, cancelCount: 0, cancelNs: 0 };
      this.responses.set(d.index, r);
    }
    const inferNs = ns(d.inferNs);
    const outputNs = ns(d.outputNs);
    switch (d.kind) {
      case 'cancel':
        r.cancelCount++;
        r.cancelNs += inferNs + outputNs;
        return;
      case 'empty':
        r.computeInferCount++;
        r.computeInferNs += inferNs;
        r.emptyCount++;
        r.emptyNs += inferNs;
        return;
      case 'success':
      case 'fail':
        r.computeInferCount++;
        r.computeInferNs += inferNs;
        if (d.kind === 'success' || outputNs > 0) {
          r.computeOutputCount++;
          r.computeOutputNs += outputNs;
        }
        if (d.kind === 'success') {
          r.successCount++;
          r.successNs += inferNs + outputNs;
        } else {
          r.failCount++;
          r.failNs += inferNs + outputNs;
        }
    }
  }

  /** Requests queued and not yet handed to an instance. */
  setPending(n: number): void {
    this.pendingCount = n;
    if (this.series) this.series.pending = n;
  }

  get pending(): number {
    return this.pendingCount;
  }

  /** Triton's statistics-extension entry for this version; a fresh object each call. */
  snapshot(): ModelStatistics {
    const successCount = this.successCount;
    const batchSizes = [...this.batches.keys()].sort((a, b) => a - b);
    return {
      name: this.model,
      version: this.version,
      last_inference: this.lastInferenceMs,
      inference_count: this.inferenceCount,
      execution_count: this.executionCount,
      inference_stats: {
        success: { count: successCount, ns: this.successNs },
        fail: { count: this.failCount, ns: this.failNs },
        queue: { count: successCount, ns: this.queueNs },
        // Cache hits are successes without compute (Triton's compute_* counts leave them out).
        compute_input: { count: successCount - this.cacheHitCount, ns: this.computeInputNs },
        compute_infer: { count: successCount - this.cacheHitCount, ns: this.computeInferNs },
        compute_output: { count: successCount - this.cacheHitCount, ns: this.computeOutputNs },
        cache_hit: { count: this.cacheHitCount, ns: this.cacheHitNs },
        cache_miss: { count: this.cacheMissCount, ns: this.cacheMissNs },
      },
      response_stats: this.responseStats(),
      batch_stats: batchSizes.map((size) => {
        const b = this.batches.get(size)!;
        return {
          batch_size: size,
          compute_input: { count: b.count, ns: b.inputNs },
          compute_infer: { count: b.count, ns: b.inferNs },
          compute_output: { count: b.count, ns: b.outputNs },
        };
      }),
      memory_usage: [],
    };
  }

  private responseStats(): ModelStatistics['response_stats'] {
    const out: ModelStatistics['response_stats'] = {};
    for (const index of [...this.responses.keys()].sort((a, b) => a - b)) {
      const r = this.responses.get(index)!;
      out[String(index)] = {
        compute_infer: { count: r.computeInferCount, ns: r.computeInferNs },
        compute_output: { count: r.computeOutputCount, ns: r.computeOutputNs },
        success: { count: r.successCount, ns: r.successNs },
        fail: { count: r.failCount, ns: r.failNs },
        empty_response: { count: r.emptyCount, ns: r.emptyNs },
        cancel: { count: r.cancelCount, ns: r.cancelNs },
      };
    }
    return out;
  }

  /**
   * Drops this version's Prometheus series (on unload). Safe to call twice; later record calls
   * still update the in-memory statistics but no longer recreate the series.
   */
  close(): void {
    if (!this.series) return;
    this.series = undefined;
    this.cacheSeries = undefined;
    this.metrics?.removeModel(this.model, this.version);
  }
}

/**
 * Triton's failure reason for an error that ended a request: REJECTED when the scheduler refused
 * it (queue full, timed out waiting), CANCELED when the client cancelled, BACKEND when the model or
 * its stub failed, OTHER for everything else (validation, internal).
 */
export function failureReasonOf(err: unknown): FailureReason {
  if (!(err instanceof StubhostError)) return 'OTHER';
  switch (err.code) {
    case 'STUBHOST_QUEUE_FULL':
    case 'STUBHOST_TIMEOUT':
      return 'REJECTED';
    case 'STUBHOST_CANCELLED':
      return 'CANCELED';
    case 'STUBHOST_MODEL_ERROR':
    case 'STUBHOST_STUB_DIED':
    case 'STUBHOST_STUB_UNHEALTHY':
      return 'BACKEND';
    default:
      return 'OTHER';
  }
}
