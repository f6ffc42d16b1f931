/**
 * File descriptors and memory under attack, against `stubhost serve` run as a child process
 * under a small RLIMIT_NOFILE (ulimit -n 300): a flood of idle connections larger than the limit
 * itself fills the HTTP connection cap and no more, a killed stub still restarts (no
 * `spawn EMFILE`), a canary is answered, and the descriptors are given back. A 256 MiB gRPC
 * message is refused without the server's memory growing by anything like its size.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { childPids, isAlive, shmLeftovers, tempRepository, waitFor } from './helpers/server.js';
import { freePort } from './helpers/blackbox.js';
import { grpcClient, type TestGrpcClient } from './helpers/grpc.js';
import { fdBudget } from '../src/server/fd-limit.js';
import { gateModel } from './fixtures/models/dos/repo.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const BIN = path.join(ROOT, 'bin/stubhost.js');
const FD_LIMIT = 300;

const repo = tempRepository({ canary: gateModel('canary'), victim: gateModel('victim') });
let child: ChildProcess;
let exited: Promise<number | null>;
let output = '';
let url = '';
let client: TestGrpcClient;
const sockets: net.Socket[] = [];

beforeAll(async () => {
  const [httpPort, grpcPort, metricsPort] = [await freePort(), await freePort(), await freePort()];
  // `ulimit -n` sets the soft and the hard limit: the server cannot raise it past 300.
  const cmd = `ulimit -n ${FD_LIMIT} && exec "${process.execPath}" "${BIN}" serve --model-repository "${repo.root}" --http-port ${httpPort} --grpc-port ${grpcPort} --metrics-port ${metricsPort} --http-keepalive-timeout-secs 120 --http-header-timeout-secs 120 --stub-timeout-seconds 10 --log-format json`;
  child = spawn('bash', ['-c', cmd], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  url = `http://127.0.0.1:${httpPort}`;
  client = grpcClient(grpcPort);
  // Readiness over gRPC: a pooled HTTP client connection would take a place under the HTTP cap.
  expect(await waitFor(async () => client.rpc('ServerReady', {}).then((r) => r.ready === true, () => false), 60_000, 100)).toBe(true);
}, 90_000);

afterAll(async () => {
  for (const s of sockets) s.destroy();
  client?.close();
  const pid = child.pid!;
  const stubs = childPids(pid);
  if (child.exitCode === null) child.kill('SIGTERM');
  expect(await exited).toBe(0);
  expect(shmLeftovers(pid)).toEqual([]);
  expect(await waitFor(() => stubs.every((p) => !isAlive(p)), 5000)).toBe(true);
  repo.cleanup();
}, 60_000);

const fdsOf = (pid: number): number => fs.readdirSync(`/proc/${pid}/fd`).length;
/** The server's stub processes (not tsx's esbuild helper, also a child). */
const stubsOf = (pid: number): number[] => childPids(pid).filter((p) => {
  try {
    return fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(`${path.sep}stub${path.sep}`);
  } catch {
    return false;
  }
});
const status = (pid: number, field: string): number => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;

/** gRPC canary: another model answers with its own data. */
async function expectCanary(model = 'canary'): Promise<void> {
  const res = await client.rpc('ModelInfer', {
    model_name: model, inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [1], contents: { fp32_contents: [9] } }],
  });
  expect(Buffer.from(res.raw_output_contents[0]).readFloatLE(0)).toBe(9);
}

/** Opens a TCP connection; resolves once connected, with whether the server then kept it. */
function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

/** One keep-alive request on an open socket: resolves with the status line, or '' if the server closed it. */
function askLive(s: net.Socket): Promise<string> {
  return new Promise((resolve) => {
    let got = '';
    const onData = (d: Buffer): void => {
      got += d.toString('latin1');
      if (got.includes('\r\n\r\n')) done();
    };
    const done = (): void => {
      s.off('data', onData);
      s.off('close', done);
      resolve(got.split('\r\n')[0] ?? '');
    };
    s.on('data', onData);
    s.once('close', done);
    s.write('GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n');
  });
}

describe('file-descriptor headroom', () => {
  it('a connection flood larger than the fd limit fills the HTTP cap only; a killed stub restarts; fds are given back', async () => {
    const pid = child.pid!;
    // Both endpoints are on and neither cap is given: HTTP gets half of what the limit leaves.
    const cap = Math.floor(fdBudget(FD_LIMIT).maxConnections / 2);
    expect(output).toContain(`connection caps: HTTP ${cap}, gRPC ${cap}`);
    const baseline = fdsOf(pid);
    const port = Number(new URL(url).port);

    // Up to the cap: every connection is served (and stays open, idle).
    for (let i = 0; i < cap; i++) {
      const s = await connect(port);
      sockets.push(s);
      expect(await askLive(s)).toBe('HTTP/1.1 200 OK');
    }
    // Beyond it, and beyond the fd limit itself: each is closed as it is accepted.
    let refused = 0;
    for (let i = 0; i < FD_LIMIT + 20; i++) {
      const s = await connect(port).catch(() => undefined);
      if (s === undefined || (await askLive(s)) === '') refused++;
      s?.destroy();
    }
    expect(refused).toBe(FD_LIMIT + 20);
    expect(fdsOf(pid)).toBeLessThan(FD_LIMIT - 64);
    expect(await waitFor(() => /HTTP connection cap reached/.test(output), 5000)).toBe(true);

    // A stub killed now restarts: the reserve holds the descriptors a spawn needs.
    const stubs = stubsOf(pid);
    expect(stubs.length).toBe(2);
    process.kill(stubs[0]!, 'SIGKILL');
    expect(await waitFor(() => {
      const now = stubsOf(pid);
      return now.length === 2 && !now.includes(stubs[0]!);
    }, 30_000, 50)).toBe(true);
    for (const model of ['canary', 'victim']) {
      expect(await waitFor(async () => expectCanary(model).then(() => true, () => false), 30_000, 100), model).toBe(true);
    }
    expect(output).not.toMatch(/EMFILE/);
    // The idle connections still work, and closing them gives their descriptors back.
    expect(await askLive(sockets[0]!)).toBe('HTTP/1.1 200 OK');
    for (const s of sockets.splice(0)) s.destroy();
    expect(await waitFor(() => fdsOf(pid) <= baseline + 4, 10_000, 50)).toBe(true);
    const after = await connect(port);
    expect(await askLive(after)).toBe('HTTP/1.1 200 OK');
    after.destroy();
  }, 180_000);
});

describe('gRPC connection cap', () => {
  it('connections over --grpc-max-connections are closed as accepted; the existing client is still served', async () => {
    const cap = Math.floor(fdBudget(FD_LIMIT).maxConnections / 2);
    await expectCanary(); // the test's own client holds one connection
    const port = Number(client.raw.getChannel().getTarget().split(':').pop());
    const open: net.Socket[] = [];
    let closedByServer = 0;
    for (let i = 0; i < cap + 20; i++) {
      const s = await connect(port);
      s.on('error', () => {});
      s.once('close', () => closedByServer++);
      open.push(s);
    }
    expect(await waitFor(() => closedByServer >= 21, 10_000, 20)).toBe(true);
    expect(closedByServer).toBe(21);
    await expectCanary();
    for (const s of open) s.destroy();
    await expectCanary();
  }, 60_000);
});

describe('gRPC message size', () => {
  it('a 256 MiB ModelInfer is refused with RESOURCE_EXHAUSTED and does not cost the server its size in memory', async () => {
    const pid = child.pid!;
    const peakBefore = status(pid, 'VmHWM');
    const big = Buffer.alloc(256 * 1024 * 1024);
    const err = await client.rpcError('ModelInfer', {
      model_name: 'canary', inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [big.length / 4] }], raw_input_contents: [big],
    });
    expect(err.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(err.details).toMatch(/--grpc-max-message-bytes/);
    const grown = status(pid, 'VmHWM') - peakBefore;
    expect(grown).toBeLessThan(64 * 1024 * 1024);
    await expectCanary();
  }, 120_000);
});
