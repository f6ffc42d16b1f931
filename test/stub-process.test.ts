/**
 * StubProcess and ModelInstance on their own (no server): close() while requests are in flight,
 * close() twice, execute after exit, the 'exit' event, the per-stub health timeout, and
 * ModelInstance restart/close rules.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { StubProcess, type StubProcessOptions } from '../src/instance/stub-process.js';
import { ModelInstance } from '../src/instance/model-instance.js';
import { createLogger, logSettings } from '../src/log/logger.js';
import type { InferRequest } from '../src/core/types.js';
import { parseModelSettings } from '../src/core/model-parameters.js';
import { childPids, shmLeftovers, waitFor } from './helpers/server.js';

const BASIC = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'models', 'stub', 'basic');
const logs: string[] = [];
logSettings.format = 'json';
logSettings.sink = (line) => {
  logs.push(line);
};

const live: { close(): Promise<void> }[] = [];

const FAULTS = path.join(BASIC, '..', 'faults');

function options(model: string, instanceName = `${model}_0_0`, extra: Partial<StubProcessOptions> = {}): StubProcessOptions {
  const modelDir = path.join(model === 'crashy' ? FAULTS : BASIC, model);
  return {
    modelName: model, modelVersion: 1, instanceName, logger: createLogger(),
    init: {
      modelName: model, modelVersion: 1, modelRepository: BASIC, modelDir, modelFile: path.join(modelDir, '1', 'model.ts'), backend: 'typescript',
      modelConfig: { name: model, max_batch_size: 0, input: [], output: [] }, settings: parseModelSettings(undefined), instanceName, instanceKind: 'KIND_CPU', instanceDeviceId: 0,
    },
    ...extra,
  };
}

async function startStub(model: string, extra: Partial<StubProcessOptions> = {}): Promise<StubProcess> {
  const stub = new StubProcess(options(model, undefined, extra));
  live.push(stub);
  await stub.start();
  return stub;
}

const delay = (ms: number): InferRequest => ({
  id: '', modelName: 'four', parameters: {}, priority: 0, timeoutUs: 0,
  inputs: [{ name: 'DELAY_MS', datatype: 'INT32', shape: [1], data: Int32Array.of(ms) }],
});

afterEach(async () => {
  await Promise.all(live.splice(0).map((s) => s.close()));
  expect(await waitFor(() => childPids().length === 0, 3000)).toBe(true);
  expect(shmLeftovers()).toEqual([]);
});

describe('StubProcess', () => {
  it('close() with requests in flight fails them with a named error; twice at once is safe', async () => {
    const stub = await startStub('four');
    const pid = stub.pid;
    const inflight = stub.execute([delay(2000)]);
    const exits: unknown[] = [];
    stub.on('exit', (e) => exits.push(e));
    await new Promise((r) => setTimeout(r, 50));
    const started = performance.now();
    await Promise.all([stub.close(), stub.close()]);
    expect(performance.now() - started).toBeLessThan(1500);
    const [outcome] = await inflight;
    expect(outcome!.error?.code).toBe('STUBHOST_STUB_DIED');
    expect(outcome!.error?.message).toMatch(new RegExp(`^model 'four' version 1 instance 'four_0_0' \\(pid ${pid}\\): unloaded`));
    expect(exits).toHaveLength(1);
    expect(exits[0]).toMatchObject({ expected: true });
    await stub.close();
    // After exit: refused at once, with the reason.
    const [late] = await stub.execute([delay(0)]);
    expect(late!.error?.message).toMatch(/stub is not running \(unloaded\)/);
    expect(stub.isHealthy()).toBe(false);
  }, 20_000);

  it('a per-stub health timeout (stub_timeout_seconds) of 400 ms catches a SIGSTOP faster than the default', async () => {
    const stub = await startStub('four', { healthTimeoutMs: 400 });
    const pid = stub.pid;
    try {
      const exited = new Promise<{ cause: string; expected: boolean }>((resolve) => stub.once('exit', resolve));
      process.kill(pid, 'SIGSTOP');
      const stoppedAt = performance.now();
      const info = await exited;
      const took = performance.now() - stoppedAt;
      expect(info.expected).toBe(false);
      expect(info.cause).toMatch(/^stub is unhealthy: no health signal for \d+ ms \(stub timeout 400 ms\) \(killed by SIGKILL\)$/);
      // The cause names the 400 ms timeout it was caught by; the bound only catches a hang (a
      // loaded machine delays the check, and the stop can land just before a due check).
      expect(took).toBeLessThan(10_000);
    } finally {
      try {
        process.kill(pid, 'SIGCONT');
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }, 20_000);
});

describe('StubProcess: health during initialize', () => {
  it('a 2.5 s synchronous initialize loads (the health thread beats meanwhile)', async () => {
    const opts = options('slow_init', undefined, { healthTimeoutMs: 1000 });
    opts.init.modelConfig.parameters = { init_ms: { string_value: '2500' } };
    const stub = new StubProcess(opts);
    live.push(stub);
    const started = performance.now();
    await stub.start();
    expect(performance.now() - started).toBeGreaterThan(2500);
    expect(stub.isHealthy()).toBe(true);
  }, 20_000);

  it('a stub frozen (SIGSTOP) during initialize fails the load through the health word, not the start timeout', async () => {
    const startTimeoutMs = 20_000;
    const opts = options('slow_init', undefined, { healthTimeoutMs: 500, startTimeoutMs });
    opts.init.modelConfig.parameters = { init_ms: { string_value: '30000' } };
    const stub = new StubProcess(opts);
    live.push(stub);
    const seen = logs.length;
    const starting = stub.start();
    // Handled here too, so a failed wait below leaves no unhandled rejection behind.
    starting.catch(() => undefined);
    const pid = stub.pid;
    try {
      // Stop it once initialize spins: the model's log line comes over the ring after the
      // stub's hello, so the host has started the health watch by the time it logs the line.
      const spinning = await waitFor(() => logs.slice(seen).some((l) => l.includes('slow_init: initialize spins')), 15_000);
      expect(spinning).toBe(true);
      process.kill(pid, 'SIGSTOP');
      const stoppedAt = performance.now();
      await expect(starting).rejects.toThrow(/the stub died during initialize: stub is unhealthy: no health signal for \d+ ms \(stub timeout 500 ms\)/);
      // The message proves the path; the bound only catches a hang, well short of the start timeout.
      expect(performance.now() - stoppedAt).toBeLessThan(startTimeoutMs / 2);
    } finally {
      try {
        process.kill(pid, 'SIGCONT');
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }, 40_000);
});

describe('StubProcess: out of memory', () => {
  it('a stub that runs out of heap fails its request with "out of memory", not just SIGABRT', async () => {
    // A 48 MB heap (the stub inherits NODE_OPTIONS from this process at spawn) so it dies fast.
    const saved = process.env.NODE_OPTIONS;
    process.env.NODE_OPTIONS = `${saved ?? ''} --max-old-space-size=48`.trim();
    let stub: StubProcess;
    try {
      stub = new StubProcess(options('crashy'));
      live.push(stub);
      await stub.start();
    } finally {
      if (saved === undefined) delete process.env.NODE_OPTIONS;
      else process.env.NODE_OPTIONS = saved;
    }
    const pid = stub.pid;
    const [outcome] = await stub.execute([{
      id: '', modelName: 'crashy', parameters: {}, priority: 0, timeoutUs: 0,
      inputs: [{ name: 'MODE', datatype: 'INT32', shape: [1], data: Int32Array.of(4) }],
    }]);
    expect(outcome!.error?.code).toBe('STUBHOST_STUB_DIED');
    // V8 names one of two reasons, by how its last collections near the limit went, which the
    // stub's own heap at the start sways (the exec schema decoder made it the second one in
    // about a third of runs): the host must pass on either.
    expect(outcome!.error?.message).toMatch(new RegExp(
      `^model 'crashy' version 1 instance 'crashy_0_0' \\(pid ${pid}\\): out of memory \\((Reached heap limit|Ineffective mark-compacts near heap limit) ` +
        'Allocation failed - JavaScript heap out of memory\\) \\(killed by SIGABRT\\)$',
    ));
  }, 20_000);
});

describe('ModelInstance', () => {
  it('restarts after a crash, and never after close(); close() twice is safe', async () => {
    const inst = new ModelInstance({ ...options('four'), decoupled: false });
    live.push(inst);
    await inst.start();
    const first = inst.pid;
    inst.kill('SIGKILL');
    expect(await waitFor(() => inst.state === 'ready' && inst.pid !== first, 5000)).toBe(true);
    expect(inst.restarts).toBe(1);
    const second = inst.pid;
    await Promise.all([inst.close(), inst.close()]);
    expect(inst.state).toBe('stopped');
    await new Promise((r) => setTimeout(r, 300));
    expect([inst.pid, inst.state, inst.isHealthy()]).toEqual([second, 'stopped', false]);
    expect(childPids()).toEqual([]);
  }, 20_000);
});
