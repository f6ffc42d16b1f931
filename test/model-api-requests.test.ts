/**
 * What a model learns about a request beyond its inputs, through real stubs and sockets:
 * - the client's request id (`id` of the KServe request) as `request.requestId`, echoed in the
 *   response `id` (HTTP and gRPC);
 * - headers forwarded as request parameters with Triton's `--http-header-forward-pattern`
 *   (searched, case-insensitive unless `(?-i)`, reserved names refused, infer only);
 * - the sequence batcher's slot (`request.sequenceSlot`, direct strategy): stable per sequence,
 *   distinct between live sequences, reused once a sequence ends; undefined for oldest.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { childPids, http, startRepositoryServer, tempRepository, type RepositoryServer } from './helpers/server.js';
import { grpcClient, type TestGrpcClient } from './helpers/grpc.js';
import { stubhost } from './helpers/cli.js';

/** Answers with what it saw: INFO = JSON of requestId, parameters, sequenceSlot. */
const REPORT_TS = `
import { InferenceRequest, InferenceResponse, Tensor } from 'stubhost';
export default class Report {
  execute(requests: InferenceRequest[]) {
    return requests.map((r) => new InferenceResponse({ outputs: [
      new Tensor('INFO', [JSON.stringify({ requestId: r.requestId, parameters: r.parameters, slot: r.sequenceSlot ?? null, corr: r.correlationId === undefined ? null : String(r.correlationId) })], r.input('IN')!.shape),
    ] }));
  }
}`;
const REPORT_CONFIG = (name: string, extra = ''): string => `name: "${name}"
backend: "typescript"
max_batch_size: ${extra.includes('sequence_batching') ? 2 : 0}
input [ { name: "IN" data_type: TYPE_FP32 dims: [ 1 ] } ]
output [ { name: "INFO" data_type: TYPE_STRING dims: [ 1 ] } ]
${extra}
`;

let server: RepositoryServer;
let grpc: TestGrpcClient;

beforeAll(async () => {
  server = await startRepositoryServer({
    report: { 'config.pbtxt': REPORT_CONFIG('report'), '1/model.ts': REPORT_TS },
    seq_direct: { 'config.pbtxt': REPORT_CONFIG('seq_direct', 'sequence_batching { direct { } max_sequence_idle_microseconds: 60000000 }'), '1/model.ts': REPORT_TS },
    seq_oldest: { 'config.pbtxt': REPORT_CONFIG('seq_oldest', 'sequence_batching { oldest { max_candidate_sequences: 4 } }'), '1/model.ts': REPORT_TS },
  }, { grpcPort: 0, httpHeaderForwardPattern: '^x-fwd-' });
  grpc = grpcClient(server.ports.grpc!);
}, 120_000);

afterAll(async () => {
  grpc?.close();
  const left = await server?.stop(3000);
  expect(left).toEqual([]);
  expect(childPids()).toEqual([]);
});

const IN = [{ name: 'IN', datatype: 'FP32', shape: [1], data: [1] }];
const inputOf = (shape: number[]) => [{ name: 'IN', datatype: 'FP32', shape, data: [1] }];

async function report(model: string, body: Record<string, unknown>, headers: Record<string, string> = {}): Promise<{ status: number; json: any; info: any }> {
  const res = await fetch(`${server.url}/v2/models/${model}/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  const json = await res.json() as any;
  const info = res.status === 200 ? JSON.parse(json.outputs[0].data[0]) : undefined;
  return { status: res.status, json, info };
}

describe('request ids', () => {
  it('HTTP: the model sees the id as requestId, and the response carries it back', async () => {
    const r = await report('report', { id: 'req-42', inputs: IN });
    expect(r.status).toBe(200);
    expect([r.info.requestId, r.json.id]).toEqual(['req-42', 'req-42']);
    const none = await report('report', { inputs: IN });
    expect([none.info.requestId, 'id' in none.json]).toEqual(['', false]);
  });

  it('gRPC: the same', async () => {
    const res = await grpc.rpc('ModelInfer', { model_name: 'report', id: 'grpc-7', inputs: [{ name: 'IN', datatype: 'FP32', shape: [1], contents: { fp32_contents: [1] } }] });
    expect(res.id).toBe('grpc-7');
    const info = JSON.parse(Buffer.from(res.raw_output_contents[0]).subarray(4).toString());
    expect(info.requestId).toBe('grpc-7');
  });
});

describe('--http-header-forward-pattern', () => {
  it('matching headers become string parameters with the name the client sent; others do not', async () => {
    const r = await report('report', { inputs: IN, parameters: { custom: 3 } }, { 'X-Fwd-User': 'alice', 'x-fwd-trace': 'abc', 'x-other': 'no', 'fwd-x-fwd-': 'no (anchored)' });
    expect(r.status).toBe(200);
    expect(r.info.parameters).toEqual({ custom: 3, 'X-Fwd-User': 'alice', 'x-fwd-trace': 'abc' });
  });

  it('a forwarded header replaces a body parameter of the same name', async () => {
    const r = await report('report', { inputs: IN, parameters: { 'x-fwd-k': 'body' } }, { 'x-fwd-k': 'header' });
    expect(r.info.parameters).toEqual({ 'x-fwd-k': 'header' });
  });

  it('generate requests are not forwarded (Triton forwards on infer only)', async () => {
    const res = await fetch(`${server.url}/v2/models/report/generate`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-fwd-user': 'bob' }, body: JSON.stringify({ IN: [1] }) });
    expect(res.status).toBe(200);
    const body = await res.json() as any;
    expect(JSON.parse(typeof body.INFO === 'string' ? body.INFO : body.INFO[0]).parameters).toEqual({});
  });

  it('a matching header named like a reserved parameter fails the request with Triton\'s message', async () => {
    const s = await startRepositoryServer({ report: { 'config.pbtxt': REPORT_CONFIG('report'), '1/model.ts': REPORT_TS } }, { httpHeaderForwardPattern: '(?-i)^(sequence_id|triton_|X-Case)' });
    try {
      const call = (headers: Record<string, string>) => fetch(`${s.url}/v2/models/report/infer`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ inputs: IN }) });
      const reserved = await call({ sequence_id: '5' });
      expect([reserved.status, (await reserved.json() as any).error]).toEqual([400, "Header 'sequence_id' is reserved for Triton usage and cannot be forwarded."]);
      const prefixed = await call({ triton_x: '1' });
      expect([prefixed.status, (await prefixed.json() as any).error]).toEqual([400, "Header 'triton_x' is reserved for Triton usage and cannot be forwarded."]);
      // (?-i): case-sensitive, so x-case does not match X-Case.
      const lower = await call({ 'x-case': 'v' });
      const lowerInfo = JSON.parse((await lower.json() as any).outputs[0].data[0]);
      expect(lowerInfo.parameters).toEqual({});
      const upper = await call({ 'X-Case': 'v' });
      expect(JSON.parse((await upper.json() as any).outputs[0].data[0]).parameters).toEqual({ 'X-Case': 'v' });
    } finally {
      expect(await s.stop(3000)).toEqual([]);
    }
  }, 60_000);

  it('a pattern that is not a regular expression is a flag error (exit 2) naming the flag', () => {
    const repo = tempRepository({});
    try {
      const r = stubhost(['serve', '--model-repository', repo.root, '--http-header-forward-pattern', '(unclosed', '--http-port', '0', '--grpc-port', '0', '--metrics-port', '0'], repo.root, 20_000);
      expect(r.status).toBe(2);
      expect(r.stderr).toContain('--http-header-forward-pattern "(unclosed": not a regular expression');
    } finally {
      repo.cleanup();
    }
  });
});

describe('request.sequenceSlot', () => {
  const step = (model: string, seq: number, flags: { start?: boolean; end?: boolean } = {}) =>
    report(model, { inputs: inputOf([1, 1]), parameters: { sequence_id: seq, ...(flags.start ? { sequence_start: true } : {}), ...(flags.end ? { sequence_end: true } : {}) } });

  it('direct: one slot per live sequence, the same for all its requests; a slot is reused after END', async () => {
    const a1 = await step('seq_direct', 101, { start: true });
    const b1 = await step('seq_direct', 102, { start: true });
    expect(a1.status, JSON.stringify(a1.json)).toBe(200);
    expect([a1.info.slot, b1.info.slot].sort()).toEqual([0, 1]);
    const a2 = await step('seq_direct', 101);
    const b2 = await step('seq_direct', 102, { end: true });
    expect([a2.info.slot, b2.info.slot]).toEqual([a1.info.slot, b1.info.slot]);
    // 102 ended: a new sequence takes its slot while 101 keeps its own.
    const c1 = await step('seq_direct', 103, { start: true });
    expect(c1.info.slot).toBe(b1.info.slot);
    const a3 = await step('seq_direct', 101, { end: true });
    expect(a3.info.slot).toBe(a1.info.slot);
    await step('seq_direct', 103, { end: true });
  });

  it('oldest: no slot (a sequence may run on any instance); models without sequence batching: none', async () => {
    const o = await step('seq_oldest', 201, { start: true, end: true });
    expect([o.status, o.info.slot, o.info.corr]).toEqual([200, null, '201']);
    const plain = await report('report', { inputs: IN });
    expect(plain.info.slot).toBe(null);
  });
});
