/** A model's settings parsed from its config's parameters, once (src/core/model-parameters.ts, src/model/scheduler-assembly.ts). */
import { describe, expect, it } from 'vitest';
import { parseModelSettings } from '../src/core/model-parameters.js';
import { instanceDepth, settingsOf } from '../src/model/scheduler-assembly.js';
import { validateModelConfig } from '../src/config/load.js';
import { sessionPlan } from '../stub/backends/onnx/session-options.js';
import { StubhostError } from '../src/errors.js';

const params = (p: Record<string, string>) => Object.fromEntries(Object.entries(p).map(([k, v]) => [k, { string_value: v }]));

describe('parseModelSettings', () => {
  it('gives the defaults for a config without parameters', () => {
    expect(parseModelSettings(undefined)).toEqual({ isolation: 'process', maxInflightPerInstance: 1, priorityAgingUs: 0 });
  });

  it('reads every parameter stubhost uses into one typed object', () => {
    expect(parseModelSettings(params({
      isolation: 'process', debug_inspect_port: '9229', memory_limit_bytes: '1048576', unload_grace_seconds: '2.5',
      max_inflight_per_instance: '3', instance_prefetch: '2', priority_aging_microseconds: '500',
      stub_timeout_seconds: '4', execute_timeout_seconds: '6', shm_max_bytes: '4096', unrelated: 'x',
    }))).toEqual({
      isolation: 'process', debugInspectPort: 9229, memoryLimitBytes: 1048576, unloadGraceMs: 2500,
      maxInflightPerInstance: 3, instancePrefetch: 2, priorityAgingUs: 500,
      stubTimeoutMs: 4000, executeTimeoutMs: 6000, shmMaxBytes: 4096,
    });
  });

  it('reads the ONNX session parameters only for the onnxruntime backend (for others they are the model\'s own)', () => {
    const p = params({ intra_op_thread_count: '2', inter_op_thread_count: '1', execution_mode: '1', enable_mem_arena: 'off', enable_mem_pattern: '1', graph_optimization_level: 'basic', execution_providers: 'CUDA, cpu' });
    expect(parseModelSettings(p, 'onnxruntime').onnx).toEqual({
      intraOpThreadCount: 2, interOpThreadCount: 1, executionMode: 'parallel', enableMemArena: false, enableMemPattern: true, graphOptimizationLevel: 'basic', executionProviders: ['cuda', 'cpu'],
    });
    expect(parseModelSettings(params({ execution_mode: 'whatever' }), 'typescript').onnx).toBeUndefined();
  });

  it('refuses a bad value naming the parameter', () => {
    expect(() => parseModelSettings(params({ memory_limit_bytes: 'lots' }))).toThrow(`parameter 'memory_limit_bytes' is "lots"; expected a whole number of bytes`);
    expect(() => parseModelSettings(params({ unload_grace_seconds: '-1' }))).toThrow(`parameter 'unload_grace_seconds' is "-1"`);
    expect(() => parseModelSettings(params({ debug_inspect_port: 'http' }))).toThrow(`parameters["debug_inspect_port"]: "http" is not a port; give 0..65535`);
    expect(() => parseModelSettings(params({ isolation: 'vm' }))).toThrow('"vm" is not an isolation');
    expect(() => parseModelSettings(params({ execution_mode: '2' }), 'onnxruntime')).toThrow("config parameter execution_mode: '2' is not 0 (sequential) or 1 (parallel)");
    expect(() => parseModelSettings(params({ intra_op_thread_count: 'x' }), 'onnxruntime')).toThrow("config parameter intra_op_thread_count: 'x' is not an integer >= 0");
  });
});

describe('settingsOf (a model version at load)', () => {
  const config = (p: Record<string, string>, extra: Record<string, unknown> = {}) => validateModelConfig({
    name: 'm', backend: 'onnxruntime', max_batch_size: 4, input: [{ name: 'X', data_type: 'TYPE_FP32', dims: [1] }], parameters: params(p), ...extra,
  }, 'config.json');

  it('a bad parameter is a config error naming the model, its folder and the parameter', () => {
    let error: unknown;
    try {
      settingsOf(config({ enable_mem_arena: 'maybe' }), "model 'm' version 1 (/models/m)");
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(StubhostError);
    expect((error as StubhostError).code).toBe('STUBHOST_CONFIG');
    expect((error as StubhostError).message).toBe(`model 'm' version 1 (/models/m): config parameter enable_mem_arena: 'maybe' is not a boolean; use "1" or "0"`);
  });

  it('instance depth: max_inflight_per_instance plus the prefetch (adaptive unless told; 0 with dynamic batching unless instance_prefetch says)', () => {
    const plain = config({ max_inflight_per_instance: '2' });
    expect(instanceDepth(plain, settingsOf(plain, 'm')).depth).toBe(3); // adaptive starts at 1 ahead
    const batched = config({ max_inflight_per_instance: '2' }, { dynamic_batching: {} });
    expect(instanceDepth(batched, settingsOf(batched, 'm')).depth).toBe(2);
    const told = config({ instance_prefetch: '3' }, { dynamic_batching: {} });
    expect(instanceDepth(told, settingsOf(told, 'm')).depth).toBe(4);
    // A fixed prefetch does not adapt to a fast model.
    const fixed = instanceDepth(told, settingsOf(told, 'm'));
    for (let t = 0; t < 100; t++) fixed.finished(t, t + 0.001);
    expect(fixed.depth).toBe(4);
  });

  it('the onnxruntime session plan takes the parsed settings', () => {
    const c = config({ intra_op_thread_count: '2' });
    const plan = sessionPlan(settingsOf(c, 'm').onnx!, { optimization: { graph: { level: 1 } } }, 'KIND_CPU', 0);
    expect(plan.options.intraOpNumThreads).toBe(2);
    expect(plan.options.graphOptimizationLevel).toBe('extended');
    expect(plan.providers).toEqual(['cpu']);
  });
});
