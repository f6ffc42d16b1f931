import { afterEach, describe, expect, it } from 'vitest';
import { StubhostError } from '../src/errors.js';
import { Metrics, MetricsServer, ModelStatsRecorder, failureReasonOf } from '../src/metrics/index.js';

const ok = (ms: number) => ({
  queueNs: 1_000 * ms,
  computeInputNs: 2_000 * ms,
  computeInferNs: 3_000 * ms,
  computeOutputNs: 4_000 * ms,
  requestNs: 10_000 * ms,
});
const exec = { computeInputNs: 2_000, computeInferNs: 3_000, computeOutputNs: 4_000 };

/** The value of one sample line, e.g. `nv_inference_count{model="m",version="1"} 3`. */
function sample(text: string, name: string, labels: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('ModelStatsRecorder', () => {
  it('snapshot has Triton statistics-extension field names, zeroed before any request', () => {
    const s = new ModelStatsRecorder('m', '1').snapshot();
    expect(Object.keys(s).sort()).toEqual(
      ['batch_stats', 'execution_count', 'inference_count', 'inference_stats', 'last_inference', 'memory_usage', 'name', 'response_stats', 'version'].sort(),
    );
    // Triton's key order (core src/tritonserver.cc TRITONSERVER_ServerModelStatistics).
    expect(Object.keys(s)).toEqual(['name', 'version', 'last_inference', 'inference_count', 'execution_count', 'inference_stats', 'response_stats', 'batch_stats', 'memory_usage']);
    expect(s.response_stats).toEqual({});
    expect(Object.keys(s.inference_stats).sort()).toEqual(
      ['cache_hit', 'cache_miss', 'compute_infer', 'compute_input', 'compute_output', 'fail', 'queue', 'success'].sort(),
    );
    expect(s).toMatchObject({ name: 'm', version: '1', last_inference: 0, inference_count: 0, execution_count: 0, batch_stats: [] });
    expect(s.inference_stats.success).toEqual({ count: 0, ns: 0 });
  });

  it('response_stats: per response index, counted as Triton\'s core counts success, fail, empty and cancel', () => {
    const r = new ModelStatsRecorder('m', '1');
    r.recordResponse({ index: 0, kind: 'success', inferNs: 100, outputNs: 10 });
    r.recordResponse({ index: 1, kind: 'success', inferNs: 200, outputNs: 20 });
    r.recordResponse({ index: 0, kind: 'fail', inferNs: 50, outputNs: 0 });
    r.recordResponse({ index: 2, kind: 'empty', inferNs: 7, outputNs: 0 });
    r.recordResponse({ index: 1, kind: 'cancel', inferNs: 3, outputNs: 0 });
    const z = { count: 0, ns: 0 };
    expect(r.snapshot().response_stats).toEqual({
      0: { compute_infer: { count: 2, ns: 150 }, compute_output: { count: 1, ns: 10 }, success: { count: 1, ns: 110 }, fail: { count: 1, ns: 50 }, empty_response: z, cancel: z },
      1: { compute_infer: { count: 1, ns: 200 }, compute_output: { count: 1, ns: 20 }, success: { count: 1, ns: 220 }, fail: z, empty_response: z, cancel: { count: 1, ns: 3 } },
      2: { compute_infer: { count: 1, ns: 7 }, compute_output: z, success: z, fail: z, empty_response: { count: 1, ns: 7 }, cancel: z },
    });
  });

  it('counts requests in inference_stats and executions in batch_stats', () => {
    const r = new ModelStatsRecorder('m', '1');
    const before = Date.now();
    r.recordExecution(2, exec);
    r.recordSuccess(ok(1));
    r.recordSuccess(ok(2));
    r.recordExecution(1, exec);
    r.recordExecution(2, { computeInputNs: 20, computeInferNs: 30, computeOutputNs: 40 });
    r.recordSuccess(ok(1));
    r.recordFailure({ requestNs: 500, reason: 'BACKEND' });
    const s = r.snapshot();

    expect(s.inference_count).toBe(5);
    expect(s.execution_count).toBe(3);
    expect(s.last_inference).toBeGreaterThanOrEqual(before);
    expect(s.inference_stats.success).toEqual({ count: 3, ns: 40_000 });
    expect(s.inference_stats.queue).toEqual({ count: 3, ns: 4_000 });
    expect(s.inference_stats.compute_input).toEqual({ count: 3, ns: 8_000 });
    expect(s.inference_stats.compute_infer).toEqual({ count: 3, ns: 12_000 });
    expect(s.inference_stats.compute_output).toEqual({ count: 3, ns: 16_000 });
    expect(s.inference_stats.fail).toEqual({ count: 1, ns: 500 });
    expect(s.batch_stats).toEqual([
      { batch_size: 1, compute_input: { count: 1, ns: 2_000 }, compute_infer: { count: 1, ns: 3_000 }, compute_output: { count: 1, ns: 4_000 } },
      { batch_size: 2, compute_input: { count: 2, ns: 2_020 }, compute_infer: { count: 2, ns: 3_030 }, compute_output: { count: 2, ns: 4_040 } },
    ]);
  });

  it('treats negative and NaN durations as 0 instead of throwing', () => {
    const metrics = new Metrics();
    const r = new ModelStatsRecorder('m', '1', metrics);
    expect(() => r.recordSuccess({ ...ok(1), queueNs: -5, computeInferNs: NaN })).not.toThrow();
    expect(r.snapshot().inference_stats.queue.ns).toBe(0);
    expect(r.snapshot().inference_stats.compute_infer.ns).toBe(0);
  });

  it('maps errors to Triton failure reasons', () => {
    expect(failureReasonOf(new StubhostError('STUBHOST_QUEUE_FULL', 'x'))).toBe('REJECTED');
    expect(failureReasonOf(new StubhostError('STUBHOST_CANCELLED', 'x'))).toBe('CANCELED');
    expect(failureReasonOf(new StubhostError('STUBHOST_STUB_DIED', 'x'))).toBe('BACKEND');
    expect(failureReasonOf(new StubhostError('STUBHOST_INVALID_INPUT', 'x'))).toBe('OTHER');
    expect(failureReasonOf(new Error('x'))).toBe('OTHER');
  });
});

describe('Metrics', () => {
  it('creates a loaded model series at 0 and moves them with the recorder', async () => {
    const metrics = new Metrics();
    const r = new ModelStatsRecorder('add', '1', metrics);
    const L = 'model="add",version="1"';
    let t = await metrics.text();
    expect(sample(t, 'nv_inference_request_success', L)).toBe(0);
    expect(sample(t, 'nv_inference_request_failure', `${L},reason="REJECTED"`)).toBe(0);

    r.recordExecution(3, exec);
    r.recordSuccess(ok(1));
    r.recordSuccess(ok(1));
    r.recordSuccess(ok(1));
    r.recordFailure({ requestNs: 100, reason: 'CANCELED' });
    r.recordFailure({ requestNs: 100 });
    r.setPending(7);
    t = await metrics.text();
    expect(sample(t, 'nv_inference_request_success', L)).toBe(3);
    expect(sample(t, 'nv_inference_request_failure', `${L},reason="CANCELED"`)).toBe(1);
    expect(sample(t, 'nv_inference_request_failure', `${L},reason="OTHER"`)).toBe(1);
    expect(sample(t, 'nv_inference_request_failure', `${L},reason="BACKEND"`)).toBe(0);
    expect(sample(t, 'nv_inference_count', L)).toBe(3);
    expect(sample(t, 'nv_inference_exec_count', L)).toBe(1);
    expect(sample(t, 'nv_inference_request_duration_us', L)).toBe(30);
    expect(sample(t, 'nv_inference_queue_duration_us', L)).toBe(3);
    expect(sample(t, 'nv_inference_compute_input_duration_us', L)).toBe(6);
    expect(sample(t, 'nv_inference_compute_infer_duration_us', L)).toBe(9);
    expect(sample(t, 'nv_inference_compute_output_duration_us', L)).toBe(12);
    expect(sample(t, 'nv_inference_pending_request_count', L)).toBe(7);
    expect(t).toContain('# TYPE nv_inference_request_duration_us counter');
    expect(t).toContain('# HELP nv_inference_request_success Number of successful inference requests, all batch sizes');
    expect(t).not.toContain('nv_inference_request_summary_us');
  });

  it('keeps servers apart: each Metrics has its own registry', async () => {
    const a = new Metrics();
    const b = new Metrics();
    new ModelStatsRecorder('only-a', '1', a).recordExecution(1, exec);
    expect(await a.text()).toContain('model="only-a"');
    expect(await b.text()).not.toContain('only-a');
  });

  it('removeModel drops every series of that version only', async () => {
    const metrics = new Metrics({ latencySummary: true });
    const v1 = new ModelStatsRecorder('m', '1', metrics);
    const v2 = new ModelStatsRecorder('m', '2', metrics);
    v1.recordSuccess(ok(1));
    v2.recordSuccess(ok(1));
    v1.recordFailure({ requestNs: 1, reason: 'REJECTED' });
    expect(await metrics.text()).toContain('nv_inference_request_summary_us{quantile="0.5",model="m",version="1"}');

    metrics.removeModel('m', '1');
    const t = await metrics.text();
    expect(t).not.toContain('version="1"');
    expect(sample(t, 'nv_inference_request_success', 'model="m",version="2"')).toBe(1);
  });

  it('recorder.close() removes its series and is safe twice', async () => {
    const metrics = new Metrics();
    const r = new ModelStatsRecorder('m', '1', metrics);
    r.recordSuccess(ok(1));
    r.close();
    r.close();
    r.recordSuccess(ok(1)); // after unload: in-memory only, no series resurrected
    expect(await metrics.text()).not.toContain('model="m"');
    expect(r.snapshot().inference_stats.success.count).toBe(2);
  });

  it('stub health and restarts, removable per instance or per model', async () => {
    const metrics = new Metrics();
    metrics.setStubHealthy('m', 'm_0', true);
    metrics.setStubHealthy('m', 'm_1', false);
    metrics.incStubRestarts('m', 'm_1');
    let t = await metrics.text();
    expect(sample(t, 'stubhost_stub_healthy', 'model="m",instance="m_0"')).toBe(1);
    expect(sample(t, 'stubhost_stub_healthy', 'model="m",instance="m_1"')).toBe(0);
    expect(sample(t, 'stubhost_stub_restarts_total', 'model="m",instance="m_1"')).toBe(1);
    metrics.removeStubs('m', 'm_1');
    t = await metrics.text();
    expect(t).not.toContain('instance="m_1"');
    expect(t).toContain('instance="m_0"');
    metrics.removeStubs('m');
    expect(await metrics.text()).not.toContain('instance=');
  });
});

describe('MetricsServer', () => {
  let server: MetricsServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('serves GET /metrics with the nv_ names and labels, 404 elsewhere', async () => {
    const metrics = new Metrics();
    const r = new ModelStatsRecorder('simple', '3', metrics);
    r.recordExecution(4, exec);
    r.recordSuccess(ok(1));
    server = new MetricsServer(metrics, { port: 0, host: '127.0.0.1' });
    const port = await server.start();
    expect(port).toBeGreaterThan(0);

    const res = await fetch(`http://127.0.0.1:${port}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe(metrics.registry.contentType);
    const body = await res.text();
    expect(sample(body, 'nv_inference_count', 'model="simple",version="3"')).toBe(4);
    expect(sample(body, 'nv_inference_exec_count', 'model="simple",version="3"')).toBe(1);
    expect(sample(body, 'nv_inference_request_success', 'model="simple",version="3"')).toBe(1);

    expect((await fetch(`http://127.0.0.1:${port}/metrics?x=1`)).status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${port}/`)).status).toBe(404);
    expect((await fetch(`http://127.0.0.1:${port}/v2/metrics`)).status).toBe(404);
    expect((await fetch(`http://127.0.0.1:${port}/metrics`, { method: 'POST' })).status).toBe(405);
  });

  it('start rejects on a taken port; close is safe twice and before start', async () => {
    const metrics = new Metrics();
    await new MetricsServer(metrics, { port: 0 }).close();
    server = new MetricsServer(metrics, { port: 0, host: '127.0.0.1' });
    const port = await server.start();
    const clash = new MetricsServer(metrics, { port, host: '127.0.0.1' });
    await expect(clash.start()).rejects.toThrow(/EADDRINUSE/);
    await clash.close();
    await server.close();
    await server.close();
  });
});
