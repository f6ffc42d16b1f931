/**
 * Custom metrics from model code (`MetricFamily`, as Triton's python backend pb_utils.MetricFamily)
 * through real stubs to the server's /metrics:
 * - counters, gauges and histograms with labels; a response leaves after the changes its execute
 *   made reached the server (a scrape after the answer sees them); changes outside execute are
 *   flushed within a bound;
 * - Triton's semantics and messages (negative counter increments, set on a counter, observe on a
 *   gauge, value of a histogram, missing or unexpected buckets);
 * - the same family from two instances and two models adds up; another kind under the same name,
 *   or a server metric's name, is refused;
 * - families go when the model unloads (a family shared with a model still loaded stays).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { childPids, http, startRepositoryServer, waitFor, type RepositoryServer } from './helpers/server.js';

/** Counts requests and their values; OUT = [counter value, gauge value] as this instance sees them. */
const COUNTING_TS = `
import { InferenceRequest, InferenceResponse, Tensor, MetricFamily } from 'stubhost';
import type { Metric } from 'stubhost';

export default class Counting {
  private requests!: Metric;
  private total!: Metric;
  private last!: Metric;
  private sizes!: Metric;
  initialize(args: { modelName: string; instanceName: string }) {
    const requests = new MetricFamily({ name: 'app_requests_total', description: 'Requests the model saw', kind: MetricFamily.COUNTER });
    this.requests = requests.Metric({ model: args.modelName });
    this.total = new MetricFamily({ name: 'app_value_sum', description: 'Sum of the inputs', kind: MetricFamily.COUNTER }).Metric({ model: args.modelName });
    this.last = new MetricFamily({ name: 'app_last_value', description: 'The last input', kind: MetricFamily.GAUGE }).Metric({ model: args.modelName });
    this.sizes = new MetricFamily({ name: 'app_value_hist', description: 'Inputs', kind: MetricFamily.HISTOGRAM }).Metric({ model: args.modelName }, [1, 10, 100]);
    // Made in initialize: on /metrics as soon as the model is ready.
    new MetricFamily({ name: 'app_loaded', description: 'Loaded instances', kind: MetricFamily.GAUGE }).Metric({ instance: args.instanceName }).set(1);
  }
  execute(requests: InferenceRequest[]) {
    return requests.map((r) => {
      const v = (r.input('IN')!.data as Float32Array)[0]!;
      this.requests.increment(1);
      this.total.increment(v);
      this.last.set(v);
      this.last.increment(0.5);
      this.sizes.observe(v);
      return new InferenceResponse({ outputs: [new Tensor('OUT', Float32Array.of(this.requests.value(), this.last.value()))] });
    });
  }
}`;

/** Runs the operation its input names and answers with the error message, or "ok". */
const MISUSE_TS = `
import { InferenceRequest, InferenceResponse, Tensor, MetricFamily } from 'stubhost';

const ops: Record<string, () => unknown> = {
  negative: () => new MetricFamily({ name: 'misuse_counter', description: 'c', kind: MetricFamily.COUNTER }).Metric().increment(-1),
  set_counter: () => new MetricFamily({ name: 'misuse_counter', description: 'c', kind: MetricFamily.COUNTER }).Metric().set(3),
  observe_gauge: () => new MetricFamily({ name: 'misuse_gauge', description: 'g', kind: MetricFamily.GAUGE }).Metric().observe(3),
  value_hist: () => new MetricFamily({ name: 'misuse_hist', description: 'h', kind: MetricFamily.HISTOGRAM }).Metric({}, [1]).value(),
  increment_hist: () => new MetricFamily({ name: 'misuse_hist', description: 'h', kind: MetricFamily.HISTOGRAM }).Metric({}, [1]).increment(1),
  no_buckets: () => new MetricFamily({ name: 'misuse_hist', description: 'h', kind: MetricFamily.HISTOGRAM }).Metric({}),
  gauge_buckets: () => new MetricFamily({ name: 'misuse_gauge', description: 'g', kind: MetricFamily.GAUGE }).Metric({}, [1, 2]),
  bad_name: () => new MetricFamily({ name: '1abc', description: 'x', kind: MetricFamily.GAUGE }),
  bad_kind: () => new MetricFamily({ name: 'misuse_kind', description: 'x', kind: 'SUMMARY' as never }),
  label_number: () => new MetricFamily({ name: 'misuse_gauge', description: 'g', kind: MetricFamily.GAUGE }).Metric({ n: 1 as never }),
  same_name_other_kind: () => new MetricFamily({ name: 'misuse_counter', description: 'c', kind: MetricFamily.GAUGE }),
  // Another model made app_requests_total as a COUNTER: the server refuses this one, and says so at the next use.
  clash_model: () => {
    const m = new MetricFamily({ name: 'app_requests_total', description: 'Requests the model saw', kind: MetricFamily.GAUGE }).Metric({ model: 'misuse' });
    m.set(1);
    return m;
  },
  clash_use: () => new MetricFamily({ name: 'app_requests_total', description: 'Requests the model saw', kind: MetricFamily.GAUGE }).Metric({ model: 'misuse' }).set(2),
  server_name: () => new MetricFamily({ name: 'nv_inference_count', description: 'x', kind: MetricFamily.COUNTER }).Metric().increment(1),
  server_name_use: () => new MetricFamily({ name: 'nv_inference_count', description: 'x', kind: MetricFamily.COUNTER }).Metric().increment(1),
  // Changed outside execute: flushed by the timer.
  later: () => {
    const g = new MetricFamily({ name: 'misuse_later', description: 'set from a timer', kind: MetricFamily.GAUGE }).Metric();
    setTimeout(() => g.set(42), 10);
  },
};

export default class Misuse {
  execute(requests: InferenceRequest[]) {
    return requests.map((r) => {
      const op = r.input('OP')!.strings()[0]!;
      let text = 'ok';
      try {
        ops[op]!();
      } catch (err) {
        text = (err as Error).message;
      }
      return new InferenceResponse({ outputs: [new Tensor('TEXT', [text])] });
    });
  }
}`;

const COUNTING_CONFIG = (name: string, count: number): string => `name: "${name}"
backend: "typescript"
max_batch_size: 0
input [ { name: "IN" data_type: TYPE_FP32 dims: [ 1 ] } ]
output [ { name: "OUT" data_type: TYPE_FP32 dims: [ 2 ] } ]
instance_group [ { count: ${count} kind: KIND_CPU } ]
`;
const MISUSE_CONFIG = `name: "misuse"
backend: "typescript"
max_batch_size: 0
input [ { name: "OP" data_type: TYPE_STRING dims: [ 1 ] } ]
output [ { name: "TEXT" data_type: TYPE_STRING dims: [ 1 ] } ]
`;

let server: RepositoryServer;

beforeAll(async () => {
  server = await startRepositoryServer({
    counting: { 'config.pbtxt': COUNTING_CONFIG('counting', 1), '1/model.ts': COUNTING_TS },
    pair: { 'config.pbtxt': COUNTING_CONFIG('pair', 2), '1/model.ts': COUNTING_TS },
    // The same code under a second name: the families are shared, the labels differ.
    other: { 'config.pbtxt': COUNTING_CONFIG('other', 1), '1/model.ts': COUNTING_TS },
    misuse: { 'config.pbtxt': MISUSE_CONFIG, '1/model.ts': MISUSE_TS },
  }, { modelControlMode: 'explicit', loadModels: ['*'] });
}, 120_000);

afterAll(async () => {
  const left = await server?.stop(3000);
  expect(left).toEqual([]);
  expect(childPids()).toEqual([]);
});

const scrape = async (): Promise<string> => (await fetch(`http://127.0.0.1:${server.ports.metrics}/metrics`)).text();
/** The value of one series line `name{labels}`, or undefined. */
const series = (text: string, line: string): number | undefined => {
  const found = text.split('\n').find((l) => l.startsWith(`${line} `));
  return found === undefined ? undefined : Number(found.slice(line.length + 1));
};
const count = (model: string, v: number) => http(`${server.url}/v2/models/${model}/infer`, 'POST', { inputs: [{ name: 'IN', datatype: 'FP32', shape: [1], data: [v] }] });
const misuse = async (op: string): Promise<string> => {
  const r = await http(`${server.url}/v2/models/misuse/infer`, 'POST', { inputs: [{ name: 'OP', datatype: 'BYTES', shape: [1], data: [op] }] });
  expect(r.status, r.text).toBe(200);
  return r.json.outputs[0].data[0];
};

describe('MetricFamily', () => {
  it('families made in initialize are on /metrics once the model is ready, with HELP and TYPE', async () => {
    const text = await scrape();
    expect(text).toContain('# HELP app_requests_total Requests the model saw');
    expect(text).toContain('# TYPE app_requests_total counter');
    expect(text).toContain('# TYPE app_last_value gauge');
    expect(text).toContain('# TYPE app_value_hist histogram');
    expect(series(text, 'app_loaded{instance="counting_0_0"}')).toBe(1);
    expect(series(text, 'app_requests_total{model="counting"}')).toBe(0);
  });

  it('counter, gauge and histogram changes made by an execute are on /metrics when its response arrives', async () => {
    const r1 = await count('counting', 5);
    expect(r1.json.outputs[0].data).toEqual([1, 5.5]);
    const r2 = await count('counting', 50);
    expect(r2.json.outputs[0].data).toEqual([2, 50.5]);
    const text = await scrape();
    expect(series(text, 'app_requests_total{model="counting"}')).toBe(2);
    expect(series(text, 'app_value_sum{model="counting"}')).toBe(55);
    expect(series(text, 'app_last_value{model="counting"}')).toBe(50.5);
    expect(series(text, 'app_value_hist_bucket{model="counting",le="1"}')).toBe(0);
    expect(series(text, 'app_value_hist_bucket{model="counting",le="10"}')).toBe(1);
    expect(series(text, 'app_value_hist_bucket{model="counting",le="100"}')).toBe(2);
    expect(series(text, 'app_value_hist_bucket{model="counting",le="+Inf"}')).toBe(2);
    expect(series(text, 'app_value_hist_sum{model="counting"}')).toBe(55);
    expect(series(text, 'app_value_hist_count{model="counting"}')).toBe(2);
  });

  it('two instances, and two models, count into the same family; the same labels add up', async () => {
    const rs = await Promise.all(Array.from({ length: 8 }, (_, i) => count('pair', i)));
    expect(rs.every((r) => r.status === 200)).toBe(true);
    await count('other', 1);
    const text = await scrape();
    expect(series(text, 'app_requests_total{model="pair"}')).toBe(8);
    expect(series(text, 'app_value_sum{model="pair"}')).toBe(28);
    expect(series(text, 'app_requests_total{model="other"}')).toBe(1);
    expect(series(text, 'app_loaded{instance="pair_0_0"}')).toBe(1);
    expect(series(text, 'app_loaded{instance="pair_0_1"}')).toBe(1);
    // One HELP line per family, however many models made it.
    expect(text.split('\n').filter((l) => l === '# HELP app_requests_total Requests the model saw')).toHaveLength(1);
  });

  it.each([
    ['negative', 'Failed to increment metric value: TRITONSERVER_METRIC_KIND_COUNTER can only be incremented monotonically by non-negative values.'],
    ['set_counter', 'Failed to set metric value: TRITONSERVER_METRIC_KIND_COUNTER does not support Set'],
    ['observe_gauge', 'Failed to observe metric value: TRITONSERVER_METRIC_KIND_GAUGE does not support Observe'],
    ['value_hist', 'Failed to get metric value: TRITONSERVER_METRIC_KIND_HISTOGRAM does not support Value'],
    ['increment_hist', 'Failed to increment metric value: TRITONSERVER_METRIC_KIND_HISTOGRAM does not support Increment'],
    ['no_buckets', 'Failed to create metric. Missing required buckets.'],
    ['gauge_buckets', 'Failed to create metric. Unexpected buckets found.'],
    ['bad_name', 'MetricFamily: name "1abc" is not a Prometheus metric name'],
    ['bad_kind', 'MetricFamily \'misuse_kind\': kind must be MetricFamily.COUNTER, MetricFamily.GAUGE or MetricFamily.HISTOGRAM, got "SUMMARY"'],
    ['label_number', "Failed to create metric. Label 'n' must have a string value, got number."],
  ])('%s: refused in model code with Triton\'s message', async (op, message) => {
    expect(await misuse(op)).toContain(message);
  });

  it('a name this stub made with another kind is refused at once', async () => {
    await misuse('negative'); // makes misuse_counter a COUNTER
    expect(await misuse('same_name_other_kind')).toBe("MetricFamily 'misuse_counter' already exists as a COUNTER with description 'c': a name has one kind and one description");
  });

  it('a name another model made with another kind, or a server metric\'s name, is refused by the server: the next use says why', async () => {
    expect(await misuse('clash_model')).toBe('ok'); // sent with the response; the answer comes after
    expect(await waitFor(async () => (await misuse('clash_use')) !== 'ok', 5000)).toBe(true);
    // Whichever of counting, pair and other loaded first made it.
    expect(await misuse('clash_use')).toMatch(/^MetricFamily 'app_requests_total' already exists as a COUNTER with description 'Requests the model saw' \(made by model '(counting|pair|other)' version 1\): a name has one kind and one description$/);
    expect(await misuse('server_name')).toBe('ok');
    expect(await waitFor(async () => (await misuse('server_name_use')) !== 'ok', 5000)).toBe(true);
    expect(await misuse('server_name_use')).toBe("MetricFamily 'nv_inference_count' is a metric of the server: choose another name");
    const text = await scrape();
    expect(text).not.toContain('app_requests_total{model="misuse"}');
    expect(text).toContain('# TYPE nv_inference_count counter');
  });

  it('changes made outside execute (a timer) reach /metrics within the flush interval', async () => {
    expect(await misuse('later')).toBe('ok');
    expect(await waitFor(async () => series(await scrape(), 'misuse_later') === 42, 5000)).toBe(true);
  });

  it('families go when the model that made them unloads; a family another loaded model uses stays', async () => {
    expect(series(await scrape(), 'misuse_later')).toBe(42);
    expect((await http(`${server.url}/v2/repository/models/misuse/unload`, 'POST', {})).status).toBe(200);
    let text = await scrape();
    expect(text).not.toContain('misuse_later');
    expect(text).not.toContain('misuse_counter');
    expect((await http(`${server.url}/v2/repository/models/counting/unload`, 'POST', {})).status).toBe(200);
    text = await scrape();
    expect(text).not.toContain('app_requests_total{model="counting"}');
    expect(text).not.toContain('app_loaded{instance="counting_0_0"}');
    expect(series(text, 'app_requests_total{model="pair"}')).toBe(8);
    // Loaded again: the family starts from zero for it.
    expect((await http(`${server.url}/v2/repository/models/counting/load`, 'POST', {})).status).toBe(200);
    expect(series(await scrape(), 'app_requests_total{model="counting"}')).toBe(0);
    expect((await count('counting', 2)).json.outputs[0].data).toEqual([1, 2.5]);
    for (const m of ['pair', 'other', 'counting']) expect((await http(`${server.url}/v2/repository/models/${m}/unload`, 'POST', {})).status).toBe(200);
    expect(server.metrics.custom.familyNames()).toEqual([]);
    expect(await scrape()).not.toContain('app_');
  });
});
