/**
 * Shared pieces of the Triton compatibility suites (test/compat-*.test.ts): a canary model that
 * must keep answering, the requests Triton's clients send over HTTP and gRPC, and the end-of-suite
 * leak check (stub processes, /dev/shm files, uploaded folders).
 */
import { expect } from 'vitest';
import { childPids, http, waitFor, type RepositoryServer } from './server.js';
import type { TestGrpcClient } from './grpc.js';
import { uploadLeftovers } from '../../src/repository/upload.js';

/** An FP32 identity model: OUT = IN. */
export const IDENTITY_TS = `
import { InferenceRequest, InferenceResponse, Tensor } from 'stubhost';
export default class Identity {
  execute(requests: InferenceRequest[]) {
    return requests.map((r) => new InferenceResponse({ outputs: [new Tensor('OUT', (r.input('IN')!.data as Float32Array).slice(), r.input('IN')!.shape)] }));
  }
}`;

export const identityConfig = (name: string, extra = ''): string => `name: "${name}"
backend: "typescript"
max_batch_size: 0
input [ { name: "IN" data_type: TYPE_FP32 dims: [ -1 ] } ]
output [ { name: "OUT" data_type: TYPE_FP32 dims: [ -1 ] } ]
${extra}`;

/** The canary folder every compat suite serves beside the models under test. */
export const CANARY = { 'config.pbtxt': identityConfig('canary'), '1/model.ts': IDENTITY_TS };

/** The canary answers over HTTP (and gRPC when a client is given). */
export async function expectCanary(server: RepositoryServer, grpc?: TestGrpcClient): Promise<void> {
  const r = await http(`${server.url}/v2/models/canary/infer`, 'POST', { inputs: [{ name: 'IN', shape: [3], datatype: 'FP32', data: [1, 2, 3] }] });
  expect(r.status, r.text).toBe(200);
  expect(r.json.outputs[0].data).toEqual([1, 2, 3]);
  if (grpc) {
    const g = await grpc.rpc('ModelInfer', {
      model_name: 'canary', inputs: [{ name: 'IN', datatype: 'FP32', shape: [2], contents: { fp32_contents: [4, 5] } }],
    });
    expect(Array.from(new Float32Array(new Uint8Array(g.raw_output_contents[0]).buffer))).toEqual([4, 5]);
  }
}

/** Stops the server and checks nothing is left: stub processes, /dev/shm files, uploaded folders. */
export async function stopAndCheckLeaks(server: RepositoryServer | undefined, grpc?: TestGrpcClient): Promise<void> {
  grpc?.close();
  if (!server) return;
  expect(await server.stop(5000)).toEqual([]);
  expect(uploadLeftovers()).toEqual([]);
  expect(await waitFor(() => childPids().length === 0, 10_000)).toBe(true);
}

/** BYTES raw contents (4-byte little-endian length, then the bytes, per element) as strings. */
export function decodeBytesElements(raw: Uint8Array): string[] {
  const buf = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  const out: string[] = [];
  for (let at = 0; at < buf.length;) {
    const n = buf.readUInt32LE(at);
    out.push(buf.subarray(at + 4, at + 4 + n).toString('utf8'));
    at += 4 + n;
  }
  return out;
}

/** A raw FP32 output as numbers. */
export function fp32Of(raw: Uint8Array): number[] {
  return Array.from(new Float32Array(Uint8Array.from(raw).buffer));
}
