/**
 * The image, built from the project's Dockerfile on a locally made Node 20 base (BASE_IMAGE), run
 * with the example repository mounted read-only:
 * - with its own CMD: ready, answers (an ONNX model too), node is PID 1 under a non-root user,
 *   its HEALTHCHECK passes, on a read-only root with every capability dropped;
 * - with the Helm chart's container arguments and security context: SIGTERM under load drains
 *   (streams in flight finish, new requests get 503) and node exits 0 within the chart's grace
 *   period, with no --init;
 * - stopped while its models still load: PID 1 acts on the SIGTERM rather than being SIGKILLed;
 * - with the KServe runtime's arguments on the storage initializer's layout (/mnt/models).
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openEventStream, postJson, removeContainers, runContainer, waitReady, type Container } from './helpers/container.js';
import { ensureHelm, helmTemplate } from './helpers/helm.js';
import { APP_IMAGE, buildAppImage, ensurePodman, podmanRun } from './helpers/podman.js';
import { REPO_ROOT } from './helpers/run.js';
import { loadYaml, parseAllDocuments } from './helpers/validators.js';

const podmanState = await ensurePodman();
if (!podmanState.ok) console.warn(`deploy image tests skipped: ${podmanState.why}`);

const ADD_SUB = { inputs: [
  { name: 'INPUT0', shape: [4], datatype: 'FP32', data: [1, 2, 3, 4] },
  { name: 'INPUT1', shape: [4], datatype: 'FP32', data: [1, 1, 1, 1] },
] };
const ADD_SUB_OUT = [{ name: 'OUTPUT0', datatype: 'FP32', shape: [4], data: [2, 3, 4, 5] }, { name: 'OUTPUT1', datatype: 'FP32', shape: [4], data: [0, 1, 2, 3] }];
/** What the chart's restrictive securityContext means for podman. */
const RESTRICTED = ['--read-only', '--tmpfs', '/tmp', '--cap-drop=ALL', '--security-opt=no-new-privileges'];
const READY_MS = 180_000;

describe.skipIf(!podmanState.ok)('container image', () => {
  beforeAll(async () => {
    const t = performance.now();
    await buildAppImage();
    console.info(`image ${APP_IMAGE} built in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  }, 1_200_000);
  afterAll(removeContainers, 60_000);

  describe("the image's own CMD", () => {
    let c: Container;
    beforeAll(async () => {
      c = await runContainer({ ports: [8000, 8001, 8002], podmanArgs: RESTRICTED });
      await waitReady(c, `${c.url(8000)}/v2/health/ready`, READY_MS);
    }, READY_MS + 30_000);

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
      const uids = /^Uid:\s+(.*)$/m.exec(status)![1]!.trim().split(/\s+/).map(Number);
      expect(uids, 'real, effective, saved and filesystem uid of PID 1').toEqual([10001, 10001, 10001, 10001]);
      const cmdline = (await c.exec(['cat', '/proc/1/cmdline'])).split('\0').filter(Boolean);
      expect(cmdline).toEqual(['node', '/app/bin/stubhost.js', 'serve', '--model-repository', '/models']);
      const health = await podmanRun(['healthcheck', 'run', c.name]);
      expect(health.code, health.stdout + health.stderr).toBe(0);
    });
  });

  describe("the Helm chart's arguments: SIGTERM under load", () => {
    let c: Container;
    let drainSecs: number;
    beforeAll(async () => {
      const [helm] = await Promise.all([ensureHelm(), loadYaml()]);
      const docs = parseAllDocuments(await helmTemplate(helm, { set: ['server.modelControlMode=explicit', 'server.loadModels={add_sub,repeat}'] })) as any[];
      const pod = docs.find((d) => d.kind === 'Deployment').spec.template.spec;
      const container = pod.containers[0];
      // The kubelet sends SIGTERM once preStop is over; the drain has the rest of the grace period.
      drainSecs = pod.terminationGracePeriodSeconds - Number(container.lifecycle.preStop.exec.command[1]);
      const user = `${pod.securityContext.runAsUser}:${pod.securityContext.runAsGroup}`;
      const shm = pod.volumes.find((v: any) => v.name === 'dshm').emptyDir.sizeLimit.replace(/i$/, '').toLowerCase();
      c = await runContainer({ args: container.args, ports: [8000], shmSize: shm, podmanArgs: [...RESTRICTED, '--user', user] });
      await waitReady(c, `${c.url(8000)}/v2/health/ready`, READY_MS);
    }, READY_MS + 60_000);

    it('streams in flight finish, new requests get 503, node as PID 1 exits 0 within the grace period', async () => {
      const base = c.url(8000);
      // Six decoupled requests answering once now and once 4 s later: in flight across the SIGTERM.
      const streams = Array.from({ length: 6 }, (_, i) => openEventStream(`${base}/v2/models/repeat/generate_stream`, { IN: [100 + i, 200 + i], DELAY: [0, 4000] }));
      await Promise.all(streams.map((s) => s.first));
      // Steady load on another model until the drain is seen.
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

      const stopped = c.stop(drainSecs);
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
      // Every load request got an answer: its result, or a clean 503 once the drain began.
      const ok = (r: { status: number; json: any }): boolean => r.status === 200 && JSON.stringify(r.json.outputs) === JSON.stringify(ADD_SUB_OUT);
      expect(load.filter((r) => !ok(r) && !(r.status === 503 && /shutting down/.test(r.json.error)))).toEqual([]);
      expect(load.filter(ok).length).toBeGreaterThanOrEqual(40);

      const { seconds, exitCode } = await stopped;
      expect(exitCode, 'exit code (137 would mean SIGKILL after the grace period)').toBe(0);
      expect(seconds).toBeLessThan(drainSecs);
      const logs = await c.logs();
      expect(logs).toMatch(/SIGTERM: shutting down/);
      expect(logs).toMatch(/"msg":"stopped"/);
      console.info(`SIGTERM to exit 0: ${seconds.toFixed(1)} s (the streams held the drain about 4 s; grace ${drainSecs} s)`);
    }, 120_000);
  });

  it('SIGTERM while the models still load: node as PID 1 acts on it (exit 0) instead of waiting out the grace period', async () => {
    const c = await runContainer({ ports: [8000], podmanArgs: RESTRICTED });
    // Live comes up before the models load; ready only once all are loaded.
    await waitReady(c, `${c.url(8000)}/v2/health/live`, READY_MS);
    const ready = await fetch(`${c.url(8000)}/v2/health/ready`).then((r) => r.status);
    expect(ready, 'still loading when the SIGTERM is sent').not.toBe(200);
    const { seconds, exitCode } = await c.stop(60);
    expect(exitCode, 'exit code (137 would mean the SIGTERM was ignored and podman SIGKILLed after 60 s)').toBe(0);
    expect(seconds).toBeLessThan(60);
    expect(await c.logs()).toMatch(/SIGTERM: shutting down/);
    console.info(`SIGTERM during model load to exit 0: ${seconds.toFixed(1)} s`);
  }, READY_MS + 90_000);

  it('the KServe ClusterServingRuntime arguments serve the storage initializer layout (/mnt/models)', async () => {
    await loadYaml();
    const runtime = parseAllDocuments(fs.readFileSync(path.join(REPO_ROOT, 'deploy/kserve/cluster-serving-runtime.yaml'), 'utf8'))[0] as any;
    const container = runtime.spec.containers[0];
    const httpPort = Number((container.args as string[]).find((a) => a.startsWith('--http-port='))!.split('=')[1]);
    const uid = container.securityContext.runAsUser;
    const k = await runContainer({ args: container.args, ports: [httpPort], mountAt: '/mnt/models', podmanArgs: [...RESTRICTED, '--user', `${uid}:${uid}`] });
    await waitReady(k, `${k.url(httpPort)}/v2/health/ready`, READY_MS);
    const r = await postJson(`${k.url(httpPort)}/v2/models/add_sub/infer`, ADD_SUB);
    expect(r.json.outputs).toEqual(ADD_SUB_OUT);
    expect((await k.stop(30)).exitCode).toBe(0);
  }, READY_MS + 60_000);
});
