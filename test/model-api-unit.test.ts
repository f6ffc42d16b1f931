/**
 * The parts of the new model API that work without a stub: the stub's metrics batching (one
 * batch per flush however many changes, values kept in step with the server's answers), the
 * host's merging of batches from several stubs, and the errors the API gives outside a stub.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import * as api from '../stub/api/index.js';
import { MetricsClient } from '../stub/metrics-client.js';
import { CustomMetrics } from '../src/metrics/custom-metrics.js';
import { setRuntime } from '../stub/api/runtime.js';
import type { MetricsBatch } from '../src/core/metric-updates.js';

afterEach(() => setRuntime(undefined));

describe('exports', () => {
  it('MetricFamily (with its kinds), Metric, loadModel, unloadModel, isModelReady', () => {
    for (const name of ['MetricFamily', 'Metric', 'loadModel', 'unloadModel', 'isModelReady']) expect(api, name).toHaveProperty(name);
    expect([api.MetricFamily.COUNTER, api.MetricFamily.GAUGE, api.MetricFamily.HISTOGRAM]).toEqual(['COUNTER', 'GAUGE', 'HISTOGRAM']);
  });

  it('outside a stub they say so', async () => {
    expect(() => new api.MetricFamily({ name: 'x', description: 'x', kind: 'COUNTER' })).toThrow('custom metrics need a stubhost stub');
    await expect(api.loadModel('m')).rejects.toThrow('loadModel needs a stubhost stub');
    await expect(api.isModelReady('m')).rejects.toMatchObject({ code: 'UNAVAILABLE' });
  });
});

describe('MetricsClient (the stub side)', () => {
  const client = (): { c: MetricsClient; sent: MetricsBatch[] } => {
    const sent: MetricsBatch[] = [];
    return { c: new MetricsClient((b) => sent.push(structuredClone(b)), 60_000), sent };
  };

  it('10 000 changes are one batch: counters and gauges as one change each, a histogram as bucket counts', () => {
    const { c, sent } = client();
    const counter = c.metric(c.family('c_total', 'c', 'COUNTER'), { a: '1' }, undefined);
    const gauge = c.metric(c.family('g', 'g', 'GAUGE'), {}, undefined);
    const hist = c.metric(c.family('h', 'h', 'HISTOGRAM'), {}, [1, 10]);
    for (let i = 0; i < 10_000; i++) {
      counter.increment(1);
      gauge.set(i);
      gauge.increment(1);
      hist.observe(i % 20);
    }
    expect(sent).toHaveLength(0);
    c.flush();
    expect(sent).toHaveLength(1);
    const b = sent[0]!;
    expect(b.families?.map((f) => f.name)).toEqual(['c_total', 'g', 'h']);
    expect(b.metrics?.map((m) => m.labels)).toEqual([{ a: '1' }, {}, {}]);
    const [ci, gi, hi] = b.metrics!.map((m) => m.id);
    expect(b.changes).toEqual([
      { id: ci, inc: 10_000 },
      { id: gi, set: 9999, inc: 1 },
      { id: hi, counts: [1000, 4500, 4500], sum: 10_000 * 9.5, count: 10_000 },
    ]);
    expect([counter.value(), gauge.value()]).toEqual([10_000, 10_000]);
    c.flush();
    expect(sent).toHaveLength(1); // nothing changed: nothing sent
  });

  it('value() takes the server\'s value from the answer to the latest flush, plus the changes since', () => {
    const { c, sent } = client();
    const m = c.metric(c.family('shared_total', 's', 'COUNTER'), {}, undefined);
    m.increment(2);
    c.flush();
    m.increment(1);
    c.flush();
    m.increment(5);
    // The answer to flush 1 is older than flush 2: ignored.
    c.onResult({ n: sent[0]!.n, values: [[2, 100]] });
    expect(m.value()).toBe(8);
    // Flush 2's answer: another instance counted too (server 103); 5 are not flushed yet.
    c.onResult({ n: sent[1]!.n, values: [[2, 103]] });
    expect(m.value()).toBe(108);
  });

  it('a family the server refused fails every later use with its reason', () => {
    const { c, sent } = client();
    const fam = c.family('taken', 't', 'GAUGE');
    const m = c.metric(fam, {}, undefined);
    c.flush();
    c.onResult({ n: sent[0]!.n, errors: [{ family: fam, message: 'taken by another model' }] });
    expect(() => m.set(1)).toThrow('taken by another model');
    expect(() => c.metric(fam, { x: 'y' }, undefined)).toThrow('taken by another model');
  });
});

describe('CustomMetrics (the host side)', () => {
  it('batches of two stubs of one model and of another model add up; owners go one by one', async () => {
    const registry = new Registry();
    const custom = new CustomMetrics(registry);
    const a = custom.owner("model 'a' version 1");
    const b = custom.owner("model 'b' version 1");
    const a0 = custom.session(a);
    const a1 = custom.session(a);
    const b0 = custom.session(b);
    const make = (n: number, inc: number): MetricsBatch => ({
      n, families: [{ id: 1, name: 'reqs_total', help: 'r', kind: 'COUNTER' }], metrics: [{ id: 2, family: 1, labels: { k: 'v' } }], changes: [{ id: 2, inc }],
    });
    expect(a0.apply(make(1, 2)).values).toEqual([[2, 0], [2, 2]]);
    expect(a1.apply(make(1, 3)).values).toEqual([[2, 2], [2, 5]]);
    expect(b0.apply(make(1, 4)).values).toEqual([[2, 5], [2, 9]]);
    expect(await registry.metrics()).toContain('reqs_total{k="v"} 9');
    custom.removeOwner(a);
    expect(await registry.metrics()).toContain('reqs_total{k="v"} 9'); // b still uses it
    custom.removeOwner(b);
    expect(await registry.metrics()).not.toContain('reqs_total');
    expect(custom.familyNames()).toEqual([]);
  });
});
