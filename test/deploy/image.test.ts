/**
 * The image, built from the project's Dockerfile on a locally made Node 20 base and run with the
 * example repository mounted: it becomes ready, answers, runs node as a non-root PID 1, passes its
 * own HEALTHCHECK, and drains on SIGTERM (requests in flight finish, then exit 0 well within the
 * grace period) with no --init. The KServe runtime's container arguments serve the same
 * repository mounted where KServe's storage initializer puts it (/mnt/models).
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from './helpers/validators.js';
import { APP_IMAGE, buildAppImage, ensurePodman, podmanRun } from './helpers/podman.js';
import { openEventStream, postJson, removeContainers, runContainer, waitReady, type Container } from './helpers/container.js';
import { REPO_ROOT } from './helpers/run.js';

const podmanState = await ensurePodman();
if (!podmanState.ok) console.warn(`deploy image tests skipped: ${podmanState.why}`);

/** The image's default --exit-timeout-secs is 30; the chart's grace period adds a margin the same way. */
const GRACE_SECS = 40;
const ADD_SUB = { inputs: [
  { name: 'INPUT0', shape: [4], datatype: 'FP32', data: [1, 2, 3, 4] },
  { name: 'INPUT1', shape: [4], datatype: 'FP32', data: [1, 1, 1, 1] },
] };
const ADD_SUB_OUT = [{ name: 'OUTPUT0', datatype: 'FP32', shape: [4], data: [2, 3, 4, 5] }, { name: 'OUTPUT1', datatype: 'FP32', shape: [4], data: [0, 1, 2, 3] }];

describe.skipIf(!podmanState.ok)('container image', () => {
  let c: Container;
  beforeAll(async () => {
    const t = performance.now();
    await buildAppImage();
    console.info(`image ${APP_IMAGE} built in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    // The image's own CMD: serve /models on 8000/8001/8002.
    c = await runContainer({ ports: [8000, 8001, 8002] });
    await waitReady(c, `${c.url(8000)}/v2/health/ready`, 180_000);
  }, 1_200_000);
  afterAll(removeContainers, 60_000);

  it('answers over HTTP and metrics, an ONNX model too (the same file with and without model code)', async () => {
    const r = await postJson(`${c.url(8000)}/v2/models/add_sub/infer`, ADD_SUB);
    expect(r).toEqual({ status: 200, json: expect.objectContaining({ model_name: 'add_sub', outputs: ADD_SUB_OUT }) });
    const x = { inputs: [{ name: 'INPUT0', shape: [1, 16], datatype: 'FP32', data: Array.from({ length: 16 }, (_, i) => i / 16) }] };
    const onnx = await postJson(`${c.url(8000)}/v2/models/mlp_onnx/infer`, x);
    const ts = await postJson(`${c.url(8000)}/v2/models/mlp_ts/infer`, x);
    expect(onnx.status).toBe(200);
    expect(onnx.json.outputs[0].shape).toEqual([1, 4]);
    expect(ts.json.outputs[0].data).toEqual(onnx.json.outputs[0].data);
    const metrics = await (await fetch(`${c.url(8002)}/metrics`)).text();
    expect(metrics).toMatch(/nv_inference_request_success\{model="add_sub",version="1"\} 1/);
  });

  it('runs node as PID 1 under a non-root user, and its HEALTHCHECK passes', async () => {
    expect(await c.inspect('{{.Config.User}}')).toBe('10001:10001');
    const status = await c.exec(['cat', '/proc/1/status']);
    const uids = /^Uid:\s+(.*)$/m.exec(status)![1]!.split(/\s+/).map(Number);
    expect(uids.every((u) => u === 10001), `PID 1 uids ${uids}`).toBe(true);
    const cmdline = (await c.exec(['cat', '/proc/1/cmdline'])).split('\0').filter(Boolean);
    expect(cmdline).toEqual(['node', '/app/bin/stubhost.js', 'serve', '--model-repository', '/models']);
    // No writes outside /tmp and /dev/shm are needed: the image runs with a read-only root in the chart.
    const health = await podmanRun(['healthcheck', 'run', c.name]);
    expect(health.code, health.stdout + health.stderr).toBe(0);
  });

  it('SIGTERM under load: streams in flight finish, new requests get 503, node as PID 1 exits 0 within the grace period', async () => {
    const base = c.url(8000);
    // Six decoupled requests, each answering once at once and once 4 s later: in flight across the SIGTERM.
    const streams = Array.from({ length: 6 }, (_, i) => openEventStream(`${base}/v2/models/repeat/generate_stream`, { IN: [100 + i, 200 + i], DELAY: [0, 4000] }));
    await Promise.all(streams.map((s) => s.first));
    // And steady load on another model until the drain is seen.
    let answered = 0;
    let draining = false;
    const loops = Array.from({ length: 8 }, async () => {
      const results: { status: number; json: any }[] = [];
      while (!draining) {
        results.push(await postJson(`${base}/v2/models/add_sub/infer`, ADD_SUB).catch((e: Error) => ({ status: -1, json: String((e.cause as { code?: string })?.code ?? e.message) })));
        answered++;
      }
      return results;
    });
    while (answered < 40) await new Promise((r) => setTimeout(r, 20));

    const t0 = Date.now();
    // podman stop: SIGTERM, then SIGKILL once the grace period is over (the kubelet does the same).
    const stopped = podmanRun(['stop', '--time', String(GRACE_SECS), c.name], (GRACE_SECS + 30) * 1000);
    for (;;) {
      const ready = await fetch(`${base}/v2/health/ready`).then((r) => r.status, () => -1);
      if (ready !== 200) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    draining = true;
    const late = await postJson(`${base}/v2/models/add_sub/infer`, ADD_SUB);
    const load = (await Promise.all(loops)).flat();

    for (const [i, s] of streams.entries()) {
      expect(await s.done, `stream ${i}`).toEqual({ status: 200, events: [
        expect.objectContaining({ OUT: 100 + i, IDX: 0 }), expect.objectContaining({ OUT: 200 + i, IDX: 1 })] });
    }
    expect(late.status, JSON.stringify(late.json)).toBe(503);
    expect(late.json.error).toMatch(/shutting down/);
    // Every load request got an answer: the result, or a clean 503 once the drain began.
    const bad = load.filter((r) => !(r.status === 200 && JSON.stringify(r.json.outputs) === JSON.stringify(ADD_SUB_OUT)) && !(r.status === 503 && /shutting down/.test(r.json.error)));
    expect(bad).toEqual([]);
    expect(load.filter((r) => r.status === 200).length).toBeGreaterThanOrEqual(40);

    const stop = await stopped;
    const elapsed = (Date.now() - t0) / 1000;
    expect(stop.code, stop.stderr).toBe(0);
    expect(await c.inspect('{{.State.ExitCode}}')).toBe('0');
    expect(elapsed).toBeLessThan(GRACE_SECS);
    // The streams held the drain open for about 4 s; the server itself said it drained.
    expect(elapsed).toBeGreaterThan(2);
    const logs = await c.logs();
    expect(logs).toMatch(/SIGTERM: shutting down/);
    expect(logs).toMatch(/"msg":"stopped"/);
    console.info(`SIGTERM to exit 0: ${elapsed.toFixed(1)} s (grace ${GRACE_SECS} s)`);
  }, 120_000);

  it('the KServe ClusterServingRuntime arguments serve the storage initializer layout (/mnt/models)', async () => {
    const runtime = parseAllDocuments(fs.readFileSync(path.join(REPO_ROOT, 'deploy/kserve/cluster-serving-runtime.yaml'), 'utf8'))[0] as any;
    const container = runtime.spec.containers[0];
    expect(container.image).toMatch(/stubhost/);
    const ports = (container.ports as { containerPort: number }[]).map((p) => p.containerPort);
    const k = await runContainer({ args: container.args, ports, mountAt: '/mnt/models' });
    await waitReady(k, `${k.url(ports[0]!)}/v2/health/ready`, 180_000);
    const r = await postJson(`${k.url(ports[0]!)}/v2/models/add_sub/infer`, ADD_SUB);
    expect(r.json.outputs).toEqual(ADD_SUB_OUT);
    const stop = await podmanRun(['stop', '--time', String(GRACE_SECS), k.name], (GRACE_SECS + 30) * 1000);
    expect(stop.code).toBe(0);
    expect(await k.inspect('{{.State.ExitCode}}')).toBe('0');
  }, 240_000);
});

