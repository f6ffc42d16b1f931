/**
 * `npm run bench -- grpc [--json] [--seconds <s>] [--cpu-prof <dir>]`: ModelInfer of add_sub
 * over gRPC (raw_input_contents, 2 × FP32[4]) against a bare @grpc/grpc-js server that decodes
 * the same message and computes the same sums, in the same run.
 *
 *   stubhost   `stubhost serve` with gRPC only (front-end → scheduler → stub process → back).
 *   baseline   this file run as `--baseline <port>`: grpc-js with the same .proto and loader
 *              options, the two sums, the same response. No validation, no scheduling, no IPC.
 *
 * Load: h2load (nghttp2) on one HTTP/2 connection with 1, 16 or 64 streams in flight, posting one
 * prebuilt gRPC frame; else a grpc-js client (this file as `--client`) in its own process. Either
 * runs on one CPU and the servers (the stub with its host) on the other (lib/servers.ts);
 * alternating rounds, medians, CPU µs per request from /proc as in the http benchmark.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { PROTO_LOADER_OPTIONS } from '../../src/server/grpc/proto.js';
import { nowMs, percentile } from './common.js';
import {
  type LoadGenerator, type Placement, type RunResult, collect, hasCommand, spawnOn, runServerComparison,
} from './lib/servers.js';

const thisFile = fileURLToPath(import.meta.url);
const repoRoot = path.resolve(path.dirname(thisFile), '../..');

const IN_FLIGHT = [1, 16, 64] as const;
const ROUNDS = 3;
const METHOD = '/inference.GRPCInferenceService/ModelInfer';

const A = [1, 2, 3, 4];
const B = [0.5, 0.25, 2, -1];
const EXPECTED_SUM = [1.5, 2.25, 5, 3];

function serviceDefinition(): grpc.ServiceDefinition {
  return protoLoader.loadSync('grpc_service.proto', PROTO_LOADER_OPTIONS)['inference.GRPCInferenceService'] as grpc.ServiceDefinition;
}

const f32Bytes = (xs: number[]) => Buffer.from(new Float32Array(xs).buffer);
const REQUEST = {
  model_name: 'add_sub', model_version: '', id: '',
  inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [4] }, { name: 'INPUT1', datatype: 'FP32', shape: [4] }],
  raw_input_contents: [f32Bytes(A), f32Bytes(B)],
};

/** Float32 values of a raw content (copied: the bytes may sit at any offset of the message). */
function floats(bytes: Uint8Array): Float32Array {
  return new Float32Array(Uint8Array.prototype.slice.call(bytes).buffer);
}

// ---------------------------------------------------------------------------------------------
// The baseline server (child process).

function runBaseline(port: number): void {
  const server = new grpc.Server();
  server.addService(serviceDefinition(), {
    ModelInfer(call: grpc.ServerUnaryCall<any, any>, callback: grpc.sendUnaryData<any>) {
      const req = call.request as typeof REQUEST;
      const a = floats(req.raw_input_contents[0]!);
      const b = floats(req.raw_input_contents[1]!);
      const sum = new Float32Array(a.length);
      const diff = new Float32Array(a.length);
      for (let i = 0; i < a.length; i++) {
        sum[i] = a[i]! + b[i]!;
        diff[i] = a[i]! - b[i]!;
      }
      const shape = req.inputs[0]!.shape;
      callback(null, {
        model_name: 'add_sub', model_version: '1', id: req.id,
        outputs: [{ name: 'OUTPUT0', datatype: 'FP32', shape }, { name: 'OUTPUT1', datatype: 'FP32', shape }],
        raw_output_contents: [Buffer.from(sum.buffer), Buffer.from(diff.buffer)],
      });
    },
  });
  server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err) => {
    if (err) throw err;
    process.stdout.write('listening\n');
  });
  process.on('disconnect', () => process.exit(0));
}

// ---------------------------------------------------------------------------------------------
// Load generators.


/**
 * h2load posting the request as one gRPC frame. h2load counts HTTP statuses, and a gRPC error is
 * HTTP 200 with no data (the status in trailers), so a run also needs response data on every
 * request; latencies come from its per-request log.
 */
function h2loadGenerator(cpu: string | undefined, dir: string): LoadGenerator {
  const message = (serviceDefinition().ModelInfer!.requestSerialize as (m: object) => Buffer)(REQUEST);
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  message.copy(frame, 5);
  const body = path.join(dir, 'request.grpc');
  fs.writeFileSync(body, frame);
  const log = path.join(dir, 'h2load.log');
  return {
    name: 'h2load (one connection)',
    async run(port, inFlight, seconds) {
      const out = await collect(spawnOn(cpu, 'h2load', ['-c1', `-m${inFlight}`, `-D${seconds}`, '-d', body, '--log-file', log,
        '-H', 'content-type: application/grpc', '-H', 'te: trailers', `http://127.0.0.1:${port}${METHOD}`], { stdio: ['ignore', 'pipe', 'pipe'] }));
      const finished = /finished in ([\d.]+)(m?s)/.exec(out);
      const req = /requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(out);
      const data = /\((\d+)\) data/.exec(out);
      if (!finished || !req || !data) throw new Error(`h2load: unexpected output:\n${out}`);
      const succeeded = Number(req[2]);
      const bad = Number(req[3]) + Number(req[4]) + Number(req[5]);
      // A successful add_sub response is well over 32 bytes of gRPC data; an error has none.
      if (bad > 0 || Number(data[1]) < succeeded * 32) throw new Error(`h2load: failed calls on port ${port}:\n${out}`);
      const latencies = fs.readFileSync(log, 'utf8').trim().split('\n').map((l) => Number(l.split('\t')[2]) / 1000);
      fs.rmSync(log, { force: true });
      const secs = Number(finished[1]) / (finished[2] === 'ms' ? 1000 : 1);
      return { requests: succeeded, seconds: secs, p50Ms: percentile(latencies, 50), p99Ms: percentile(latencies, 99) };
    },
  };
}

/** This file as `--client <port> <inFlight> <seconds>`: closed-loop grpc-js calls on one channel. */
function grpcJsGenerator(cpu: string | undefined): LoadGenerator {
  return {
    name: 'grpc-js client process',
    async run(port, inFlight, seconds) {
      const out = await collect(spawnOn(cpu, process.execPath, ['--import', 'tsx', thisFile, '--client', String(port), String(inFlight), String(seconds)],
        { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] }));
      return JSON.parse(out.trim().split('\n').pop()!) as RunResult;
    },
  };
}

async function runClient(port: number, inFlight: number, seconds: number): Promise<void> {
  const Client = grpc.makeGenericClientConstructor(serviceDefinition(), 'GRPCInferenceService');
  const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as any;
  const call = () => new Promise<any>((resolve, reject) => client.ModelInfer(REQUEST, (err: Error | null, res: any) => (err ? reject(err) : resolve(res))));
  const latencies: number[] = [];
  const start = nowMs();
  const end = start + seconds * 1000;
  await Promise.all(Array.from({ length: inFlight }, async () => {
    while (nowMs() < end) {
      const t0 = nowMs();
      await call();
      latencies.push(nowMs() - t0);
    }
  }));
  const result: RunResult = { requests: latencies.length, seconds: (nowMs() - start) / 1000, p50Ms: percentile(latencies, 50), p99Ms: percentile(latencies, 99) };
  process.stdout.write(`${JSON.stringify(result)}\n`);
  client.close();
}

function loadGenerator(place: Placement, dir: string): LoadGenerator {
  return hasCommand('h2load') ? h2loadGenerator(place.loadCpu, dir) : grpcJsGenerator(place.loadCpu);
}

/** One call by hand, checking the sums: h2load does not read the answers. */
async function checkAnswer(port: number, what: string): Promise<void> {
  const Client = grpc.makeGenericClientConstructor(serviceDefinition(), 'GRPCInferenceService');
  const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as any;
  try {
    const res = await new Promise<any>((resolve, reject) => client.ModelInfer(REQUEST, (err: Error | null, r: any) => (err ? reject(err) : resolve(r))));
    const sum = Array.from(floats(res.raw_output_contents[0]));
    if (JSON.stringify(sum) !== JSON.stringify(EXPECTED_SUM)) throw new Error(`${what} answered OUTPUT0 = ${JSON.stringify(sum)}`);
  } finally {
    client.close();
  }
}

export default async function main(argv: string[]): Promise<void> {
  await runServerComparison(argv, {
    protocol: 'grpc',
    repoRoot,
    benchFile: thisFile,
    baselineName: 'the bare grpc-js baseline',
    serveFlags: (port) => ['--allow-http', 'false', '--grpc-port', String(port), '--grpc-address', '127.0.0.1'],
    loadGenerator,
    checkAnswer,
    levels: IN_FLIGHT,
    rounds: ROUNDS,
    heading: (gen, seconds, runNote) =>
      `gRPC ModelInfer benchmark: add_sub (2 × FP32[4], raw_input_contents), load by ${gen}, conc = calls in flight, ${ROUNDS} alternating rounds of ${seconds} s (${runNote})\n` +
      'baseline = a bare @grpc/grpc-js server decoding the same message and computing the same sums',
  });
}

if (path.resolve(process.argv[1] ?? '') === thisFile) {
  if (process.argv[2] === '--baseline') runBaseline(Number(process.argv[3]));
  else if (process.argv[2] === '--client') await runClient(Number(process.argv[3]), Number(process.argv[4]), Number(process.argv[5]));
}
