/**
 * Black box: `stubhost serve` start-up failures as a Triton user meets them. Each must end the
 * process with a message naming the flag and the fix, never leave it hanging on the ports it
 * already opened (a missing --model-repository and a port in use both used to hang after the
 * message), and --load-model outside explicit mode is refused as Triton refuses it (it was
 * silently ignored).
 */
import { execFile } from 'node:child_process';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ADD_SUB_TS, BIN, freePort, makeRepository } from './helpers/blackbox.js';

const repo = makeRepository({
  'add_sub/config.pbtxt': `backend: "typescript"
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] }, { name: "INPUT1" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] }, { name: "OUTPUT1" data_type: TYPE_FP32 dims: [ 4 ] } ]`,
  'add_sub/1/model.ts': ADD_SUB_TS,
});
afterAll(() => repo.cleanup());

function serve(args: string[]): Promise<{ code: number | null; stderr: string; ms: number }> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, 'serve', ...args], { cwd: os.tmpdir(), encoding: 'utf8', timeout: 15_000, killSignal: 'SIGKILL' }, (err, _stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stderr, ms: Date.now() - t0 });
    });
  });
}

async function ports(): Promise<string[]> {
  return ['--http-port', String(await freePort()), '--grpc-port', String(await freePort()), '--metrics-port', String(await freePort())];
}

describe('start-up failures end the process with a message naming the fix', () => {
  it('--model-repository that does not exist, or is a file', async () => {
    const [missing, file] = await Promise.all([
      serve(['--model-repository', path.join(repo.root, 'nope'), ...(await ports())]),
      serve(['--model-repository', path.join(repo.root, 'add_sub/config.pbtxt'), ...(await ports())]),
    ]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/model repository .*nope cannot be read \(ENOENT\); give an existing folder to --model-repository/);
    expect(file.code).toBe(1);
    expect(file.stderr).toMatch(/is not a folder/);
  });

  it('a port in use names its flag; nothing is left listening', async () => {
    const busy = net.createServer();
    await new Promise<void>((r) => busy.listen(0, () => r()));
    const port = (busy.address() as net.AddressInfo).port;
    try {
      const [h, m] = [await freePort(), await freePort()];
      const r = await serve(['--model-repository', repo.root, '--http-port', String(h), '--grpc-port', String(port), '--metrics-port', String(m)]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`gRPC endpoint cannot listen on port ${port}: the port is in use; free it or choose another with --grpc-port`));
      // The HTTP port it had opened before is free again.
      const again = net.createServer();
      await new Promise<void>((resolve, reject) => { again.once('error', reject); again.listen(h, () => resolve()); });
      await new Promise((r2) => again.close(r2));
    } finally {
      await new Promise((r) => busy.close(r));
    }
  });

  it('--load-model without --model-control-mode explicit is refused (exit 2)', async () => {
    const [r, poll] = await Promise.all([
      serve(['--model-repository', repo.root, '--load-model', 'add_sub', ...(await ports())]),
      serve(['--model-repository', repo.root, '--model-control-mode', 'poll', '--load-model', 'add_sub', ...(await ports())]),
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--load-model needs --model-control-mode explicit \(the mode is none/);
    expect(poll.code).toBe(2);
  });
});
