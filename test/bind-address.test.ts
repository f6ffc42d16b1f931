/**
 * --http-address, --grpc-address and --metrics-address, as Triton's: every endpoint binds 0.0.0.0
 * by default, metrics follows the HTTP address unless given its own, and 127.0.0.1 keeps an
 * endpoint to this machine. Checked on real sockets two ways: the kernel's table of listening
 * sockets (/proc/net/tcp), and a connection to another loopback address (127.0.0.2), which a
 * socket bound to 127.0.0.1 refuses and one bound to 0.0.0.0 accepts. An address the machine
 * does not have stops the start with a message naming the flag. A canary model keeps answering,
 * and nothing is left behind.
 */
import fs from 'node:fs';
import net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { afterAll, describe, expect, it } from 'vitest';
import { inference } from './helpers/grpc.js';
import { childPids, http, startRepositoryServer, waitFor, type RepositoryServer } from './helpers/server.js';
import { ADD_SUB_TS, freePort, makeRepository, startCli, shmFilesOf } from './helpers/blackbox.js';
import type { ServerOptions } from '../src/server/start.js';
import { usePrivateTmpdir } from './helpers/private-tmp.js';

const tmp = usePrivateTmpdir('bind-address-test-');

const CONFIG = `name: "canary"
backend: "typescript"
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] }, { name: "INPUT1" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] }, { name: "OUTPUT1" data_type: TYPE_FP32 dims: [ 4 ] } ]`;
const MODELS = { canary: { 'config.pbtxt': CONFIG, '1/model.ts': ADD_SUB_TS } };

/** The IPv4 addresses sockets listen on at `port`, from /proc/net/tcp. */
function listeningOn(port: number): string[] {
  const out: string[] = [];
  for (const line of fs.readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4 || f[3] !== '0A') continue; // 0A: LISTEN
    const [hexIp, hexPort] = f[1]!.split(':');
    if (parseInt(hexPort!, 16) !== port) continue;
    // Little-endian hex: 0100007F is 127.0.0.1.
    out.push([3, 2, 1, 0].map((i) => parseInt(hexIp!.slice(i * 2, i * 2 + 2), 16)).join('.'));
  }
  return out;
}

/** Whether a TCP connection to host:port is accepted. */
function connects(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, host);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

async function expectCanary(server: { url: string; grpcPort: number; metricsUrl: string }): Promise<void> {
  const r = await http(`${server.url}/v2/models/canary/infer`, 'POST', {
    inputs: [
      { name: 'INPUT0', shape: [4], datatype: 'FP32', data: [1, 2, 3, 4] },
      { name: 'INPUT1', shape: [4], datatype: 'FP32', data: [1, 1, 1, 1] },
    ],
  });
  expect(r.status, r.text).toBe(200);
  expect(r.json.outputs[0].data).toEqual([2, 3, 4, 5]);
  const client = new inference.GRPCInferenceService(`127.0.0.1:${server.grpcPort}`, grpc.credentials.createInsecure());
  try {
    const live = await new Promise<any>((resolve, reject) =>
      client.ServerLive({}, new grpc.Metadata(), { deadline: Date.now() + 15_000 }, (err: Error | null, res: any) => (err ? reject(err) : resolve(res))));
    expect(live.live).toBe(true);
  } finally {
    client.close();
  }
  expect((await fetch(`${server.metricsUrl}/metrics`)).status).toBe(200);
}

async function withServer(opts: Partial<ServerOptions>, body: (s: RepositoryServer) => Promise<void>): Promise<void> {
  const server = await startRepositoryServer(MODELS, { grpcPort: 0, metricsPort: 0, ...opts });
  try {
    await body(server);
  } finally {
    expect(await server.stop(5000)).toEqual([]);
    expect(await waitFor(() => childPids().length === 0, 5000)).toBe(true);
  }
}

const canaryOf = (s: RepositoryServer) => ({ url: s.url, grpcPort: s.ports.grpc!, metricsUrl: `http://127.0.0.1:${s.ports.metrics}` });

describe('bind addresses', () => {
  it('default: HTTP, gRPC and metrics all on 0.0.0.0, as Triton', async () => {
    await withServer({}, async (s) => {
      for (const port of [s.ports.http!, s.ports.grpc!, s.ports.metrics!]) {
        expect(listeningOn(port), `port ${port}`).toEqual(['0.0.0.0']);
        expect(await connects('127.0.0.2', port), `port ${port}`).toBe(true);
      }
      await expectCanary(canaryOf(s));
    });
  }, 60_000);

  it('127.0.0.1 for each: listening there only, other addresses refused', async () => {
    await withServer({ httpAddress: '127.0.0.1', grpcAddress: '127.0.0.1', metricsAddress: '127.0.0.1' }, async (s) => {
      for (const port of [s.ports.http!, s.ports.grpc!, s.ports.metrics!]) {
        expect(listeningOn(port), `port ${port}`).toEqual(['127.0.0.1']);
        expect(await connects('127.0.0.2', port), `port ${port}`).toBe(false);
        expect(await connects('127.0.0.1', port), `port ${port}`).toBe(true);
      }
      await expectCanary(canaryOf(s));
    });
  }, 60_000);

  it('metrics follows --http-address unless given its own; gRPC does not', async () => {
    await withServer({ httpAddress: '127.0.0.1' }, async (s) => {
      expect(listeningOn(s.ports.http!)).toEqual(['127.0.0.1']);
      expect(listeningOn(s.ports.metrics!)).toEqual(['127.0.0.1']);
      expect(listeningOn(s.ports.grpc!)).toEqual(['0.0.0.0']);
      await expectCanary(canaryOf(s));
    });
    await withServer({ httpAddress: '127.0.0.1', metricsAddress: '0.0.0.0', grpcAddress: '127.0.0.1' }, async (s) => {
      expect(listeningOn(s.ports.metrics!)).toEqual(['0.0.0.0']);
      expect(listeningOn(s.ports.grpc!)).toEqual(['127.0.0.1']);
      await expectCanary(canaryOf(s));
    });
  }, 90_000);

  // 192.0.2.0/24 is TEST-NET-1 (RFC 5737): never an address of this machine.
  for (const [flag, opts] of [
    ['--http-address', { httpAddress: '192.0.2.1' }],
    ['--grpc-address', { grpcAddress: '192.0.2.1' }],
    ['--metrics-address', { metricsAddress: '192.0.2.1' }],
  ] as const) {
    it(`an address the machine does not have: the start fails naming ${flag}, nothing left listening`, async () => {
      const ports = { httpPort: await freePort(), grpcPort: await freePort(), metricsPort: await freePort() };
      await expect(startRepositoryServer(MODELS, { ...ports, ...opts })).rejects.toThrow(
        new RegExp(`cannot listen on address 192\\.0\\.2\\.1 \\(port \\d+\\): no network interface of this machine has that address; choose another with ${flag} `),
      );
      for (const port of Object.values(ports)) expect(listeningOn(port), `port ${port}`).toEqual([]);
      expect(childPids()).toEqual([]);
    });
  }
});

describe('the flags of `stubhost serve`', () => {
  it('--http-address, --grpc-address and --metrics-address 127.0.0.1', async () => {
    const repo = makeRepository({ 'canary/config.pbtxt': CONFIG, 'canary/1/model.ts': ADD_SUB_TS });
    const cli = await startCli(repo.root, ['--http-address', '127.0.0.1', '--grpc-address', '127.0.0.1', '--metrics-address=127.0.0.1'], { timeoutMs: 90_000 }).catch((err) => {
      repo.cleanup();
      throw err;
    });
    try {
      const ports = [new URL(cli.http).port, String(cli.grpcPort), new URL(cli.metrics).port].map(Number);
      for (const port of ports) {
        expect(listeningOn(port), `port ${port}`).toEqual(['127.0.0.1']);
        expect(await connects('127.0.0.2', port), `port ${port}`).toBe(false);
      }
      await expectCanary({ url: cli.http, grpcPort: cli.grpcPort, metricsUrl: cli.metrics });
      expect(cli.output()).toMatch(/gRPC service listening on 127\.0\.0\.1:\d+ \(plaintext\)/);
    } finally {
      const [code] = await cli.stop();
      repo.cleanup();
      expect(code).toBe(0);
    }
    expect(shmFilesOf(cli.pid)).toEqual([]);
  }, 150_000);
});

afterAll(() => {
  const left = tmp.leftovers();
  tmp.remove();
  expect(left).toEqual([]);
});
