/**
 * A /dev/shm with no room left (a container's default 64 MB, a small emptyDir) must fail the one
 * request that needs the room, not kill the host: segments are created with ftruncate, and a write
 * to a page the tmpfs cannot back raises SIGBUS. The server runs in a private mount namespace with
 * its own 24 MiB /dev/shm, so the test cannot fill the machine's.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, freePort } from './helpers/blackbox.js';

const REPO = path.resolve(import.meta.dirname, '../models');
// Mounting a tmpfs needs root and a kernel that allows mount namespaces; CI runs as root.
const canUnshare = spawnSync('unshare', ['--mount', '--propagation', 'private', 'true']).status === 0;

function binaryInfer(url: string, floats: number): Promise<Response> {
  const header = Buffer.from(JSON.stringify({
    inputs: [{ name: 'INPUT0', shape: [1, floats], datatype: 'FP32', parameters: { binary_data_size: floats * 4 } }],
    outputs: [{ name: 'OUTPUT0', parameters: { binary_data: true } }],
  }));
  const data = new Float32Array(floats).fill(1.5);
  return fetch(`${url}/v2/models/identity_fp32/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(header.length) },
    body: Buffer.concat([header, Buffer.from(data.buffer)]),
  });
}

describe.skipIf(!canUnshare)('a full /dev/shm', () => {
  let child: ChildProcess;
  let url: string;
  let out = '';
  let exited: Promise<number | null>;

  beforeAll(async () => {
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    const script = 'mount -t tmpfs -o size=24m,mode=1777 tmpfs /dev/shm && exec "$0" "$@"';
    child = spawn('unshare', ['--mount', '--propagation', 'private', '--', 'sh', '-c', script,
      process.execPath, BIN, 'serve', '--model-repository', REPO, '--model-control-mode', 'explicit',
      '--load-model', 'identity_fp32', '--load-model', 'add_sub', '--http-port', String(port),
      '--allow-grpc', 'false', '--allow-metrics', 'false', '--log-format', 'json'], { cwd: os.tmpdir(), stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (out += d));
    exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`stubhost exited early:\n${out}`);
      try {
        if ((await fetch(`${url}/v2/health/ready`)).status === 200) break;
      } catch { /* not listening yet */ }
      if (Date.now() > deadline) throw new Error(`stubhost not ready:\n${out}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }, 90_000);

  afterAll(async () => {
    if (child && child.exitCode === null) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(t);
    }
  }, 30_000);

  it('refuses a tensor larger than the room left with 503 naming /dev/shm; the host and the other models keep serving', async () => {
    const res = await binaryInfer(url, 8 * 1024 * 1024); // 32 MiB > the 24 MiB tmpfs
    expect(res.status).toBe(503);
    const body = await res.text();
    expect(body).toMatch(/\/dev\/shm has no room/);
    expect(child.exitCode).toBeNull();

    const small = await binaryInfer(url, 256 * 1024); // 1 MiB: still fits
    expect(small.status, await small.clone().text()).toBe(200);
    const canary = await fetch(`${url}/v2/models/add_sub/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ inputs: [
        { name: 'INPUT0', shape: [4], datatype: 'FP32', data: [1, 2, 3, 4] },
        { name: 'INPUT1', shape: [4], datatype: 'FP32', data: [1, 1, 1, 1] },
      ] }),
    });
    expect(canary.status).toBe(200);
    expect((await canary.json()).outputs[0].data).toEqual([2, 3, 4, 5]);
  }, 60_000);
});
