/**
 * What a model version builds from its (completed) config before it serves: its settings (the
 * config's parameters, parsed once), the instances its instance groups ask for and how many
 * batches each may hold, and its scheduler: the sequence batcher for sequence_batching, else the
 * default / dynamic batcher. ModelVersion (model-version.ts) runs the lifecycle around them.
 */
import type { ModelConfig } from '../config/load.js';
import { isDecoupled } from '../config/load.js';
import { parseModelSettings, type ModelSettings } from '../core/model-parameters.js';
import type { ModelScheduler } from '../execution/contract.js';
import { StubhostError } from '../errors.js';
import type { QueuePolicy } from '../scheduler/priority-queue.js';
import type { InstanceRateSpec, RateLimiter } from '../scheduler/rate-limiter.js';
import { Scheduler } from '../scheduler/scheduler.js';
import { SequenceBatcher } from '../scheduler/sequence-batcher.js';
import { readInitialStates } from '../scheduler/initial-state.js';
import { InstanceDepth } from '../instance/instance-depth.js';

/** One instance the instance groups ask for. */
export interface InstanceSpec {
  name: string;
  kind: string;
  device: number;
  rate: InstanceRateSpec;
}

/**
 * The config's parameters as one typed object; a bad value is a config error naming the model,
 * its folder and the parameter.
 */
export function settingsOf(config: ModelConfig, where: string): ModelSettings {
  try {
    return parseModelSettings(config.parameters, config.backend);
  } catch (err) {
    throw new StubhostError('STUBHOST_CONFIG', `${where}: ${(err as Error).message}`);
  }
}

/** Every instance of every instance group: `<group>_<i>`, or `<group>_<gpu>_<i>` for KIND_GPU. */
export function instanceSpecs(config: ModelConfig, label: string): InstanceSpec[] {
  const specs: InstanceSpec[] = [];
  for (const g of config.instance_group) {
    const devices = g.kind === 'KIND_GPU' ? (g.gpus.length > 0 ? g.gpus : [0]) : [0];
    const rate = { resources: g.rate_limiter?.resources ?? [], priority: g.rate_limiter?.priority ?? 0 };
    for (const device of devices) {
      for (let i = 0; i < g.count; i++) {
        const name = g.kind === 'KIND_GPU' ? `${g.name}_${device}_${i}` : `${g.name}_${i}`;
        specs.push({ name, kind: g.kind, device, rate: { ...rate, device } });
      }
    }
  }
  if (specs.length === 0) throw new StubhostError('STUBHOST_CONFIG', `${label}: instance_group gives no instances`);
  return specs;
}

/**
 * Batches sent ahead to a busy instance, queued in its stub until it is free (parameter
 * instance_prefetch). It hides the host⇄stub round trip between executions. Unset: adaptive
 * (see instance/instance-depth.ts: from 1 for a slow model to many for a fast one) for models
 * that execute one request at a time; 0 with dynamic or sequence batching (waiting in the host
 * queue builds bigger batches and keeps priorities exact), a rate limiter (resources are held
 * only while executing) and decoupled models.
 */
export function instancePrefetch(config: ModelConfig, settings: ModelSettings): number | 'adaptive' {
  if (settings.instancePrefetch !== undefined) return settings.instancePrefetch;
  const limited = config.instance_group.some((g) => (g.rate_limiter?.resources.length ?? 0) > 0);
  return config.dynamic_batching || config.sequence_batching || limited || isDecoupled(config) ? 0 : 'adaptive';
}

/** The depth of each instance: max_inflight_per_instance running plus those sent ahead. */
export function instanceDepth(config: ModelConfig, settings: ModelSettings): InstanceDepth {
  return new InstanceDepth(settings.maxInflightPerInstance, instancePrefetch(config, settings));
}

export interface SchedulerSetup {
  name: string;
  label: string;
  modelDir: string;
  config: ModelConfig;
  settings: ModelSettings;
  onPending: (pending: number) => void;
  rateLimiter?: RateLimiter;
}

/** The version's scheduler; both kinds execute through the rate limiter when it is on. */
export function makeScheduler(s: SchedulerSetup): ModelScheduler {
  const { config, rateLimiter } = s;
  const acquire = rateLimiter?.enabled ? (target: { name: string }) => rateLimiter.acquire(s.name, target.name) : undefined;
  const sb = config.sequence_batching;
  if (sb) {
    return new SequenceBatcher({
      modelLabel: s.label, modelName: s.name, maxBatchSize: config.max_batch_size, config: sb, onPending: s.onPending, acquire,
      initialStates: readInitialStates(s.modelDir, config, `${s.label} (${s.modelDir})`),
    });
  }
  const db = config.dynamic_batching;
  const levels = db && db.priority_levels > 0 ? db.priority_levels : 1;
  const defaultLevel = db && db.default_priority_level > 0 ? db.default_priority_level : Math.ceil(levels / 2) || 1;
  const toPolicy = (p: { timeout_action: 'REJECT' | 'DELAY'; default_timeout_microseconds: number; allow_timeout_override: boolean; max_queue_size: number } | undefined): QueuePolicy => ({
    timeoutAction: p?.timeout_action ?? 'REJECT',
    defaultTimeoutUs: p?.default_timeout_microseconds ?? 0,
    allowTimeoutOverride: p?.allow_timeout_override ?? false,
    maxQueueSize: p?.max_queue_size ?? 0,
  });
  return new Scheduler({
    modelLabel: s.label,
    maxBatchSize: config.max_batch_size,
    dynamicBatching: db
      ? { preferredBatchSizes: db.preferred_batch_size, maxQueueDelayUs: db.max_queue_delay_microseconds, preserveOrdering: db.preserve_ordering }
      : undefined,
    priorityLevels: levels,
    defaultPriorityLevel: defaultLevel,
    policyOf: (level) => toPolicy(db?.priority_queue_policy[String(level)] ?? db?.default_queue_policy),
    onPending: s.onPending,
    priorityAgingUs: s.settings.priorityAgingUs,
    acquire,
  });
}
