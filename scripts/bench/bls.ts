/**
 * BLS benchmark: what one BLS hop adds to a request, and how well parallel BLS calls overlap.
 *
 *   npm run bench -- bls [--json] [--samples N]
 *
 * A real server (real stubs) over a temporary repository of three TypeScript models:
 *   identity  OUTPUT0 = INPUT0 (no batching)
 *   sleepy    identity that awaits 5 ms first (an I/O- or accelerator-bound model), 8 in flight
 *   caller    calls `target` `calls` times through BLS, in parallel or in sequence (0 calls:
 *             answers alone, the caller's own cost)
 * Requests go through ServerCore.infer (no HTTP), one at a time, so the times are latencies:
 *   - direct:        identity
 *   - caller alone:  caller with 0 calls
 *   - via BLS:       caller with 1 call to identity
 *   one hop adds:    via BLS − caller alone (p50 and p99 of each, subtracted)
 *   through BLS vs direct: via BLS / direct
 *   8 parallel vs 8 sequential calls (to identity, and to sleepy): overlap = sequential / parallel
 *   16 MiB:          caller alone and via BLS with a 16 MiB FP32 tensor (the caller answers with
 *                    the BLS output as it got it): what the hop costs when the bytes dominate
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startServer } from '../../src/server/start.js';
import { createLogger, logSettings } from '../../src/log/logger.js';
import type { InferRequest } from '../../src/core/types.js';
import { fmt, formatTable, nowMs, parseArgs, percentile, progress, report } from './common.js';

const IDENTITY = `
import { InferenceRequest, InferenceResponse, Tensor } from 'stubhost';
export default class Identity {
  async execute(requests: InferenceRequest[]) {
    if (DELAY > 0) await new Promise((r) => setTimeout(r, DELAY));
    return requests.map((r) => new InferenceResponse({ outputs: [new Tensor('OUTPUT0', (r.input('INPUT0')!.data as Float32Array).slice(), r.input('INPUT0')!.shape)] }));
  }
}`;

const CALLER = `
import { InferenceRequest, InferenceResponse, Tensor } from 'stubhost';
export default class Caller {
  async execute(requests: InferenceRequest[]) {
    return Promise.all(requests.map(async (r) => {
      const x = r.input('X')!;
      const calls = Number(r.parameters.calls ?? 1);
      const call = () => new InferenceRequest({ modelName: String(r.parameters.target ?? 'identity'), inputs: [new Tensor('INPUT0', x.data as Float32Array, x.shape)], requestedOutputNames: ['OUTPUT0'] }).exec();
      let out = x.data as Float32Array;
      if (r.parameters.mode === 'sequential') {
        for (let i = 0; i < calls; i++) out = (await call()).output('OUTPUT0')!.data as Float32Array;
      } else if (calls > 0) {
        const rs = await Promise.all(Array.from({ length: calls }, call));
        out = rs[rs.length - 1]!.output('OUTPUT0')!.data as Float32Array;
      }
      // 'as-is': answer with the BLS output itself (a view, written out before execute returns).
      return new InferenceResponse({ outputs: [new Tensor('Y', r.parameters.copy === 'as-is' ? out : Float32Array.from(out), x.shape)] });
    }));
  }
}`;

const config = (name: string, input: string, output: string, inflight: number) => `
name: "${name}"
backend: "typescript"
max_batch_size: 0
input [{ name: "${input}" data_type: TYPE_FP32 dims: [ -1 ] }]
output [{ name: "${output}" data_type: TYPE_FP32 dims: [ -1 ] }]
instance_group [{ count: 1, kind: KIND_CPU }]
parameters { key: "max_inflight_per_instance" value: { string_value: "${inflight}" } }
`;

function repository(): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'stubhost-bench-bls-'));
  const put = (rel: string, text: string) => {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), text);
  };
  put('identity/config.pbtxt', config('identity', 'INPUT0', 'OUTPUT0', 1));
  put('identity/1/model.ts', IDENTITY.replace(/DELAY/g, '0'));
  put('sleepy/config.pbtxt', config('sleepy', 'INPUT0', 'OUTPUT0', 8));
  put('sleepy/1/model.ts', IDENTITY.replace(/DELAY/g, '5'));
  put('caller/config.pbtxt', config('caller', 'X', 'Y', 4));
  put('caller/1/model.ts', CALLER);
  return root;
}

export default async function main(argv: string[]): Promise<void> {
  const args = parseArgs(argv);
  const i = args.rest.indexOf('--samples');
  const samples = i >= 0 ? Number(args.rest[i + 1]) : 2000;
  const root = repository();
  logSettings.sink = () => {}; // the server's log lines would interleave with the report
  progress('starting a server with identity, sleepy and caller');
  const server = await startServer({ modelRepository: root, httpPort: undefined, grpcPort: undefined, metricsPort: undefined, logger: createLogger() });
  try {
    if (server.failed.size > 0) throw new Error(`models failed to load: ${[...server.failed].map(([m, e]) => `${m}: ${e}`).join('; ')}`);
    const small = Float32Array.from({ length: 16 }, (_, k) => k);
    const big = Float32Array.from({ length: (16 * 1024 * 1024) / 4 }, (_, k) => k % 1000);
    const request = (model: string, parameters: Record<string, string | number>, data = small): InferRequest => ({
      id: '', modelName: model, inputs: [{ name: model === 'caller' ? 'X' : 'INPUT0', datatype: 'FP32', shape: [data.length], data }],
      parameters, priority: 0, timeoutUs: 0,
    });
    const latencies = async (label: string, req: InferRequest, n: number, warm = Math.min(200, n)): Promise<number[]> => {
      for (let k = 0; k < warm; k++) await server.core.infer(req);
      const out: number[] = [];
      for (let k = 0; k < n; k++) {
        const t0 = nowMs();
        await server.core.infer(req);
        out.push(nowMs() - t0);
      }
      progress(`${label}: ${n} requests`);
      return out;
    };
    const p = (xs: number[], q: number) => percentile(xs, q);

    const direct = await latencies('direct', request('identity', {}), samples);
    const alone = await latencies('caller alone', request('caller', { calls: 0 }), samples);
    const viaBls = await latencies('via BLS', request('caller', { calls: 1, target: 'identity' }), samples);
    const fan = async (target: string, n: number) => ({
      parallel: await latencies(`8 parallel → ${target}`, request('caller', { calls: 8, target }), n),
      sequential: await latencies(`8 sequential → ${target}`, request('caller', { calls: 8, target, mode: 'sequential' }), n),
    });
    const fanIdentity = await fan('identity', Math.max(100, samples / 4));
    const fanSleepy = await fan('sleepy', Math.max(50, samples / 20));
    const bigSamples = Math.max(20, samples / 40);
    const bigAlone = await latencies('16 MiB, caller alone', request('caller', { calls: 0, copy: 'as-is' }, big), bigSamples, 5);
    const bigViaBls = await latencies('16 MiB, via BLS', request('caller', { calls: 1, target: 'identity', copy: 'as-is' }, big), bigSamples, 5);

    const result = {
      direct_p50_ms: p(direct, 50), direct_p99_ms: p(direct, 99),
      caller_alone_p50_ms: p(alone, 50), caller_alone_p99_ms: p(alone, 99),
      via_bls_p50_ms: p(viaBls, 50), via_bls_p99_ms: p(viaBls, 99),
      hop_added_p50_ms: p(viaBls, 50) - p(alone, 50), hop_added_p99_ms: p(viaBls, 99) - p(alone, 99),
      via_bls_vs_direct_p50: p(viaBls, 50) / p(direct, 50),
      fan8_identity_parallel_p50_ms: p(fanIdentity.parallel, 50), fan8_identity_sequential_p50_ms: p(fanIdentity.sequential, 50),
      fan8_identity_overlap: p(fanIdentity.sequential, 50) / p(fanIdentity.parallel, 50),
      fan8_sleepy_parallel_p50_ms: p(fanSleepy.parallel, 50), fan8_sleepy_sequential_p50_ms: p(fanSleepy.sequential, 50),
      fan8_sleepy_overlap: p(fanSleepy.sequential, 50) / p(fanSleepy.parallel, 50),
      mib16_caller_alone_p50_ms: p(bigAlone, 50), mib16_via_bls_p50_ms: p(bigViaBls, 50), mib16_via_bls_p99_ms: p(bigViaBls, 99),
      mib16_hop_added_p50_ms: p(bigViaBls, 50) - p(bigAlone, 50),
      samples,
    };
    const ms = (x: number) => `${fmt(x)} ms`;
    const rows = [
      ['identity, direct', ms(result.direct_p50_ms), ms(result.direct_p99_ms), ''],
      ['caller, no BLS call', ms(result.caller_alone_p50_ms), ms(result.caller_alone_p99_ms), ''],
      ['caller → identity (1 BLS hop)', ms(result.via_bls_p50_ms), ms(result.via_bls_p99_ms), `${fmt(result.via_bls_vs_direct_p50)}× direct`],
      ['one BLS hop adds', ms(result.hop_added_p50_ms), ms(result.hop_added_p99_ms), 'via BLS − caller alone'],
      ['8 BLS calls → identity, parallel', ms(result.fan8_identity_parallel_p50_ms), '', ''],
      ['8 BLS calls → identity, sequential', ms(result.fan8_identity_sequential_p50_ms), '', `overlap ${fmt(result.fan8_identity_overlap)}×`],
      ['8 BLS calls → sleepy (5 ms), parallel', ms(result.fan8_sleepy_parallel_p50_ms), '', ''],
      ['8 BLS calls → sleepy (5 ms), sequential', ms(result.fan8_sleepy_sequential_p50_ms), '', `overlap ${fmt(result.fan8_sleepy_overlap)}×`],
      ['16 MiB: caller, no BLS call', ms(result.mib16_caller_alone_p50_ms), '', `${bigSamples} requests`],
      ['16 MiB: caller → identity (1 BLS hop)', ms(result.mib16_via_bls_p50_ms), ms(result.mib16_via_bls_p99_ms), ''],
      ['16 MiB: one BLS hop adds', ms(result.mib16_hop_added_p50_ms), '', 'via BLS − caller alone'],
    ];
    const text = [
      `BLS (${samples} requests per latency row, one at a time, ServerCore.infer; ${os.cpus().length} cores)`,
      formatTable(['measure', 'p50', 'p99', ''], rows),
      'overlap = sequential p50 / parallel p50 (8 = perfect overlap; identity runs on one instance, one batch at a time)',
    ].join('\n');
    report(args, text, result);
  } finally {
    await server.close();
    fs.rmSync(root, { recursive: true, force: true });
  }
}
