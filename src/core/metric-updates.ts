/**
 * Custom metrics (the model API's `MetricFamily`, as Triton's python backend `pb_utils.MetricFamily`)
 * travel from a stub to the host in batches: what changed since the last flush, not one message
 * per increment. These are the shapes of a batch and of the host's answer; the stub side is
 * stub/metrics-client.ts, the host side src/metrics/custom-metrics.ts, the messages src/ipc/protocol.ts.
 */

export type MetricKind = 'COUNTER' | 'GAUGE' | 'HISTOGRAM';

export const METRIC_KINDS: readonly MetricKind[] = ['COUNTER', 'GAUGE', 'HISTOGRAM'];

/** A family the stub created since the last flush; `id` is the stub's own number for it. */
export interface NewMetricFamily {
  id: number;
  name: string;
  help: string;
  kind: MetricKind;
}

/** A metric (one label set of a family) the stub created since the last flush. */
export interface NewMetric {
  id: number;
  family: number;
  labels: Record<string, string>;
  /** Histograms: the upper bounds of the buckets, increasing (+Inf is implied). */
  buckets?: number[];
}

/**
 * The change of one metric since the last flush. Counters and gauges: `set` (gauges: the last
 * value set), then `inc` added. Histograms: the observations, as a count per bucket (`counts[i]`
 * observations fell in bucket i, the last one being +Inf), their sum and their number.
 */
export interface MetricChange {
  id: number;
  inc?: number;
  set?: number;
  counts?: number[];
  sum?: number;
  count?: number;
}

export interface MetricsBatch {
  /** Sequence number of the flush, echoed by the answer. */
  n: number;
  families?: NewMetricFamily[];
  metrics?: NewMetric[];
  changes?: MetricChange[];
}

export interface MetricsBatchResult {
  n: number;
  /** The server's value of every counter and gauge the batch touched or created, after it: [id, value]. */
  values?: [number, number][];
  /** Families (`family`) or metrics (`metric`) the server refused, with why; their later changes are ignored. */
  errors?: { family?: number; metric?: number; message: string }[];
}

/** The host's side of one stub's batches (the stub's ids are its own: one session per stub process). */
export interface MetricsSession {
  apply(batch: MetricsBatch): MetricsBatchResult;
}
