/**
 * The host's side of custom metrics (the model API's MetricFamily, as Triton's python backend
 * `pb_utils.MetricFamily` over core src/metric_family.cc): families models create, exported on
 * /metrics beside the server's own. Stubs send changes in batches (stub/metrics-client.ts);
 * values are plain numbers here, rendered only when scraped.
 *
 * Sharing, as prometheus-cpp merges them under Triton: a family is its name (another model or
 * instance asking for it with the same kind and description gets the same family; another kind
 * or description is refused), and a metric is its label set within the family (two instances
 * counting into the same labels add up). Each model version that uses a family or metric is an
 * owner; when the last owner unloads, the metric goes, and with its last metric the family.
 */
import type { Registry } from 'prom-client';
import { METRIC_KINDS, type MetricKind, type MetricsBatch, type MetricsBatchResult, type MetricsSession } from '../core/metric-updates.js';

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
/**
 * Metrics one model version may hold. The stub checks everything first; the host checks again
 * (a stub is model code) and bounds what a model that makes a metric per request could grow to.
 */
export const MAX_METRICS_PER_OWNER = 100_000;

interface CustomMetric {
  labels: Record<string, string>;
  buckets?: number[];
  value: number;
  /** Histograms: observations per bucket (non-cumulative; the last is +Inf), their sum and count. */
  counts?: number[];
  sum: number;
  count: number;
  owners: Set<string>;
}

interface CustomFamily {
  name: string;
  help: string;
  kind: MetricKind;
  /** Who made it first, for the message refusing a clashing family. */
  madeBy: string;
  metrics: Map<string, CustomMetric>;
  owners: Set<string>;
}

/** The subset of prom-client's metric interface Registry.metrics() reads (a collector of our own). */
interface Collector {
  name: string;
  help: string;
  type: string;
  aggregator: string;
  get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: { metricName?: string; labels: Record<string, string | number>; value: number }[] }>;
  reset(): void;
}

export class CustomMetrics {
  private readonly families = new Map<string, CustomFamily>();
  private readonly collectors = new Map<string, Collector>();
  private readonly labelsOf = new Map<string, string>();
  private readonly metricCount = new Map<string, number>();
  private nextOwner = 1;

  constructor(private readonly registry: Registry) {}

  /** A new owner (one per model version); `label` names it in messages. */
  owner(label: string): string {
    const id = `${this.nextOwner++}`;
    this.labelsOf.set(id, label);
    return id;
  }

  /** The batches of one stub process of `owner`. */
  session(owner: string): MetricsSession {
    const families = new Map<number, CustomFamily>();
    const metrics = new Map<number, { family: CustomFamily; metric: CustomMetric }>();
    return {
      apply: (batch: MetricsBatch): MetricsBatchResult => {
        const result: MetricsBatchResult = { n: batch.n };
        const errors: NonNullable<MetricsBatchResult['errors']> = [];
        const values: [number, number][] = [];
        for (const f of batch.families ?? []) {
          try {
            families.set(f.id, this.family(owner, f.name, f.help, f.kind));
          } catch (err) {
            errors.push({ family: f.id, message: (err as Error).message });
          }
        }
        for (const m of batch.metrics ?? []) {
          const family = families.get(m.family);
          if (!family) continue; // refused above (or never sent): its metrics fail with it
          try {
            const metric = this.metric(owner, family, m.labels, m.buckets);
            metrics.set(m.id, { family, metric });
            if (family.kind !== 'HISTOGRAM') values.push([m.id, metric.value]);
          } catch (err) {
            errors.push({ metric: m.id, message: (err as Error).message });
          }
        }
        for (const c of batch.changes ?? []) {
          const entry = metrics.get(c.id);
          if (!entry) continue;
          const { family, metric } = entry;
          if (family.kind === 'HISTOGRAM') {
            if (!metric.counts || !Array.isArray(c.counts) || c.counts.length !== metric.counts.length) continue;
            for (let i = 0; i < c.counts.length; i++) metric.counts[i]! += Number(c.counts[i]) || 0;
            metric.sum += Number(c.sum) || 0;
            metric.count += Number(c.count) || 0;
            continue;
          }
          if (c.set !== undefined && family.kind === 'GAUGE') metric.value = Number(c.set);
          const inc = Number(c.inc) || 0;
          if (family.kind === 'GAUGE' || inc > 0) metric.value += inc;
          values.push([c.id, metric.value]);
        }
        if (errors.length > 0) result.errors = errors;
        if (values.length > 0) result.values = values;
        return result;
      },
    };
  }

  /** Drops what `owner` used: metrics no other owner uses, and families left without metrics or owners. */
  removeOwner(owner: string): void {
    this.labelsOf.delete(owner);
    this.metricCount.delete(owner);
    for (const [name, family] of this.families) {
      if (!family.owners.delete(owner)) continue;
      for (const [key, metric] of family.metrics) {
        metric.owners.delete(owner);
        if (metric.owners.size === 0) family.metrics.delete(key);
      }
      if (family.owners.size === 0) {
        this.families.delete(name);
        this.collectors.delete(name);
        this.registry.removeSingleMetric(name);
      }
    }
  }

  /** Names of the families exported now (tests, leak checks). */
  familyNames(): string[] {
    return [...this.families.keys()];
  }

  private family(owner: string, name: string, help: string, kind: MetricKind): CustomFamily {
    if (typeof name !== 'string' || !NAME.test(name)) throw new Error(`MetricFamily: name ${JSON.stringify(name)} is not a Prometheus metric name`);
    if (typeof help !== 'string') throw new Error(`MetricFamily '${name}': description must be a string`);
    if (!METRIC_KINDS.includes(kind)) throw new Error(`MetricFamily '${name}': unknown kind ${JSON.stringify(kind)}`);
    const existing = this.families.get(name);
    if (existing) {
      if (existing.kind !== kind || existing.help !== help) {
        throw new Error(`MetricFamily '${name}' already exists as a ${existing.kind} with description '${existing.help}' (made by ${existing.madeBy}): a name has one kind and one description`);
      }
      existing.owners.add(owner);
      return existing;
    }
    if (this.registry.getSingleMetric(name)) {
      throw new Error(`MetricFamily '${name}' is a metric of the server: choose another name`);
    }
    const family: CustomFamily = { name, help, kind, madeBy: this.labelsOf.get(owner) ?? 'a model', metrics: new Map(), owners: new Set([owner]) };
    this.families.set(name, family);
    const collector = collectorOf(family);
    this.collectors.set(name, collector);
    this.registry.registerMetric(collector as unknown as Parameters<Registry['registerMetric']>[0]);
    return family;
  }

  private metric(owner: string, family: CustomFamily, labels: Record<string, string>, buckets: number[] | undefined): CustomMetric {
    if (labels === null || typeof labels !== 'object' || !Object.entries(labels).every(([k, v]) => LABEL.test(k) && !k.startsWith('__') && typeof v === 'string')) {
      throw new Error(`Failed to create metric. Labels must be a dictionary of label names to strings, got ${JSON.stringify(labels)}.`);
    }
    if (buckets !== undefined && (!Array.isArray(buckets) || !buckets.every((b, i) => typeof b === 'number' && Number.isFinite(b) && (i === 0 || b > buckets[i - 1]!)))) {
      throw new Error(`Failed to create metric. Buckets must be finite numbers in increasing order, got ${JSON.stringify(buckets)}.`);
    }
    if (family.kind === 'HISTOGRAM' ? buckets === undefined : buckets !== undefined) {
      throw new Error(family.kind === 'HISTOGRAM' ? 'Failed to create metric. Missing required buckets.' : 'Failed to create metric. Unexpected buckets found.');
    }
    const key = JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    let metric = family.metrics.get(key);
    if (metric) {
      if (family.kind === 'HISTOGRAM' && JSON.stringify(metric.buckets) !== JSON.stringify(buckets)) {
        throw new Error(`Failed to create metric. The metric of '${family.name}' with labels ${JSON.stringify(labels)} already has buckets ${JSON.stringify(metric.buckets)}.`);
      }
    } else {
      metric = { labels: { ...labels }, value: 0, sum: 0, count: 0, owners: new Set() };
      if (family.kind === 'HISTOGRAM') {
        if (!Array.isArray(buckets)) throw new Error('Failed to create metric. Missing required buckets.');
        metric.buckets = [...buckets];
        metric.counts = new Array<number>(buckets.length + 1).fill(0);
      }
      family.metrics.set(key, metric);
    }
    if (!metric.owners.has(owner)) {
      const count = (this.metricCount.get(owner) ?? 0) + 1;
      if (count > MAX_METRICS_PER_OWNER) {
        if (metric.owners.size === 0) family.metrics.delete(key);
        throw new Error(`Failed to create metric. ${this.labelsOf.get(owner) ?? 'the model'} has ${MAX_METRICS_PER_OWNER} metrics, the most one model version may have (a label value per request makes a metric per request)`);
      }
      this.metricCount.set(owner, count);
      metric.owners.add(owner);
    }
    family.owners.add(owner);
    return metric;
  }
}

/** A family as prom-client's registry renders it: counter and gauge values, or a histogram's buckets, sum and count. */
function collectorOf(family: CustomFamily): Collector {
  const type = family.kind.toLowerCase();
  return {
    name: family.name,
    help: family.help,
    type,
    aggregator: 'sum',
    reset: () => {},
    get: async () => {
      const values: { metricName?: string; labels: Record<string, string | number>; value: number }[] = [];
      for (const m of family.metrics.values()) {
        if (!m.counts) {
          values.push({ labels: m.labels, value: m.value });
          continue;
        }
        let cumulative = 0;
        m.counts.forEach((n, i) => {
          cumulative += n;
          const le = i < m.buckets!.length ? m.buckets![i]! : '+Inf';
          values.push({ metricName: `${family.name}_bucket`, labels: { ...m.labels, le }, value: cumulative });
        });
        values.push({ metricName: `${family.name}_sum`, labels: m.labels, value: m.sum });
        values.push({ metricName: `${family.name}_count`, labels: m.labels, value: m.count });
      }
      return { name: family.name, help: family.help, type, aggregator: 'sum', values };
    },
  };
}
