/** Statistics (Triton's stats extension) and Prometheus metrics: the folder's public entry. */
export { Metrics, FAILURE_REASONS, type FailureReason, type MetricsOptions, type ModelSeries } from './registry.js';
export {
  ModelStatsRecorder,
  failureReasonOf,
  type SuccessDurations,
  type FailureDurations,
  type ExecutionDurations,
} from './model-stats.js';
export { MetricsServer, type MetricsServerOptions } from './server.js';
export { CustomMetrics, MAX_METRICS_PER_OWNER } from './custom-metrics.js';
