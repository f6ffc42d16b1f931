/**
 * Triton's system shared-memory extension over gRPC, against a real server with real stubs:
 * SystemSharedMemoryRegister/Status/Unregister, add_sub with inputs and outputs in a region the
 * test made with the native addon, the same over ModelStreamInfer, and the bad cases (unknown
 * region, out-of-range offsets, double register, use after unregister) as INVALID_ARGUMENT while
 * the server stays healthy. A region registered over HTTP is seen over gRPC (one registry).
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { native } from '../src/ipc/native.js';
import { grpcClient, type TestGrpcClient } from './helpers/grpc.js';
import { http, shmLeftovers, startTestServer, tempRepository, type TestServer } from './helpers/server.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const KEY = `/shmtest-${process.pid}-grpc`;
const SIZE = 4096;


let repo: { root: string; cleanup(): void };
let server: TestServer;
let client: TestGrpcClient;
let region: SharedArrayBuffer;

beforeAll(async () => {
  region = native.shmCreate(KEY, SIZE);
  repo = tempRepository({});
  fs.cpSync(path.join(ROOT, 'models', 'add_sub'), path.join(repo.root, 'add_sub'), { recursive: true });
  server = await startTestServer({ modelRepository: repo.root, grpcPort: 0, allowClientShm: true });
  client = grpcClient(server.ports.grpc!);
}, 60_000);

afterAll(async () => {
  client?.close();
  await server?.close();
  repo?.cleanup();
  native.shmUnlink(KEY);
  expect(shmLeftovers()).toEqual([]);
  expect(fs.existsSync(`/dev/shm${KEY}`)).toBe(false);
});

const rpc = <T = any>(method: string, req: object): Promise<T> => client.rpc<T>(method, req);
const rpcError = (method: string, req: object): Promise<grpc.ServiceError> => client.rpcError(method, req);

const str = (s: string) => ({ string_param: s });
const int = (n: number) => ({ int64_param: n });
const f32At = (offset: number, n: number) => Array.from(new Float32Array(region, offset, n));

/** add_sub with both inputs at 0/16 and both outputs at 32/48 of region `name`. */
function addSubShm(name: string, over: { inOffset?: number; outByteSize?: number } = {}) {
  const input = (n: number) => ({
    name: `INPUT${n}`, datatype: 'FP32', shape: [4],
    parameters: { shared_memory_region: str(name), shared_memory_byte_size: int(16), shared_memory_offset: int((over.inOffset ?? 0) + n * 16) },
  });
  const output = (n: number) => ({
    name: `OUTPUT${n}`,
    parameters: { shared_memory_region: str(name), shared_memory_byte_size: int(over.outByteSize ?? 16), shared_memory_offset: int(32 + n * 16) },
  });
  return { model_name: 'add_sub', inputs: [input(0), input(1)], outputs: [output(0), output(1)] };
}

async function healthy(): Promise<void> {
  expect((await rpc('ServerReady', {})).ready).toBe(true);
}

describe('system shared memory over gRPC', () => {
  it('register, status, ModelInfer with inputs and outputs in the region, unregister', async () => {
    new Float32Array(region, 1024, 8).set([1, 2, 3, 4, 0.5, 0.5, 0.5, 0.5]);
    await rpc('SystemSharedMemoryRegister', { name: 'g0', key: KEY, offset: 1024, byte_size: 512 });

    const status = await rpc('SystemSharedMemoryStatus', {});
    expect(status.regions).toEqual({ g0: { name: 'g0', key: KEY, offset: '1024', byte_size: '512' } });
    expect(Object.keys((await rpc('SystemSharedMemoryStatus', { name: 'g0' })).regions)).toEqual(['g0']);

    const res = await rpc('ModelInfer', addSubShm('g0'));
    expect(res.outputs.map((o: any) => [o.name, o.datatype, o.shape])).toEqual([['OUTPUT0', 'FP32', ['4']], ['OUTPUT1', 'FP32', ['4']]]);
    expect(res.outputs[0].parameters).toEqual({
      shared_memory_region: expect.objectContaining({ string_param: 'g0' }),
      shared_memory_byte_size: expect.objectContaining({ int64_param: '16' }),
    });
    // One (empty) raw entry per output, so positions still line up with outputs.
    expect(res.raw_output_contents.map((b: Buffer) => b.length)).toEqual([0, 0]);
    expect(f32At(1024 + 32, 4)).toEqual([1.5, 2.5, 3.5, 4.5]);
    expect(f32At(1024 + 48, 4)).toEqual([0.5, 1.5, 2.5, 3.5]);

    await rpc('SystemSharedMemoryUnregister', { name: 'g0' });
    expect((await rpc('SystemSharedMemoryStatus', {})).regions).toEqual({});
  });

  it('raw_input_contents then covers only the inputs not in shared memory', async () => {
    new Float32Array(region, 0, 4).set([2, 4, 6, 8]);
    await rpc('SystemSharedMemoryRegister', { name: 'mix', key: KEY, offset: 0, byte_size: 64 });
    const res = await rpc('ModelInfer', {
      model_name: 'add_sub',
      inputs: [
        { name: 'INPUT0', datatype: 'FP32', shape: [4], parameters: { shared_memory_region: str('mix'), shared_memory_byte_size: int(16) } },
        { name: 'INPUT1', datatype: 'FP32', shape: [4] },
      ],
      raw_input_contents: [Buffer.from(Float32Array.of(1, 1, 1, 1).buffer)],
      outputs: [{ name: 'OUTPUT0', parameters: { shared_memory_region: str('mix'), shared_memory_byte_size: int(16), shared_memory_offset: int(16) } }, { name: 'OUTPUT1' }],
    });
    expect(f32At(16, 4)).toEqual([3, 5, 7, 9]);
    const diff = res.raw_output_contents[1] as Buffer;
    expect(Array.from(new Float32Array(diff.buffer.slice(diff.byteOffset, diff.byteOffset + diff.length)))).toEqual([1, 3, 5, 7]);
    await rpc('SystemSharedMemoryUnregister', { name: 'mix' });
  });

  it('ModelStreamInfer reads and writes shared memory too', async () => {
    new Float32Array(region, 2048, 8).set([1, 1, 1, 1, 2, 2, 2, 2]);
    await rpc('SystemSharedMemoryRegister', { name: 'st', key: KEY, offset: 2048, byte_size: 64 });
    const got = await client.streamAll([{ ...addSubShm('st'), id: 'ok' }, { ...addSubShm('nope'), id: 'bad' }]);
    const byId = Object.fromEntries(got.map((m) => [m.infer_response.id, m]));
    expect(byId.ok.error_message).toBe('');
    expect(byId.bad.error_message).toMatch(/input 'INPUT0': shared memory region 'nope' is not registered/);
    expect(f32At(2048 + 32, 4)).toEqual([3, 3, 3, 3]);
    expect(f32At(2048 + 48, 4)).toEqual([-1, -1, -1, -1]);
    await rpc('SystemSharedMemoryUnregister', { name: 'st' });
  });

  it('one registry for both front-ends: registered over HTTP, seen and unregistered over gRPC', async () => {
    const r = await http(`${server.url}/v2/systemsharedmemory/region/both/register`, 'POST', { key: KEY, offset: 0, byte_size: 32 });
    expect(r.status).toBe(200);
    expect(Object.keys((await rpc('SystemSharedMemoryStatus', {})).regions)).toEqual(['both']);
    await rpc('SystemSharedMemoryUnregister', {});
    expect((await http(`${server.url}/v2/systemsharedmemory/status`)).json).toEqual([]);
  });

  describe('errors are INVALID_ARGUMENT with a clear message, and the server stays healthy', () => {
    beforeAll(async () => {
      await rpc('SystemSharedMemoryRegister', { name: 'e', key: KEY, offset: 0, byte_size: 64 });
    });
    afterAll(async () => {
      await rpc('SystemSharedMemoryUnregister', {});
    });

    const cases: [string, string, () => object, RegExp][] = [
      ['unknown region', 'ModelInfer', () => addSubShm('nope'), /input 'INPUT0': shared memory region 'nope' is not registered/],
      ['input offset out of range', 'ModelInfer', () => addSubShm('e', { inOffset: 40 }), /input 'INPUT1': offset 56 \+ byte size 16 is outside shared memory region 'e' \(64 bytes\)/],
      ['output larger than its byte size', 'ModelInfer', () => addSubShm('e', { outByteSize: 4 }), /output 'OUTPUT0': the result is 16 bytes but shared_memory_byte_size is 4/],
      ['byte size vs shape', 'ModelInfer', () => ({
        model_name: 'add_sub',
        inputs: [
          { name: 'INPUT0', datatype: 'FP32', shape: [4], parameters: { shared_memory_region: str('e'), shared_memory_byte_size: int(8) } },
          { name: 'INPUT1', datatype: 'FP32', shape: [4], parameters: { shared_memory_region: str('e'), shared_memory_byte_size: int(16) } },
        ],
      }), /input byte size mismatch for input 'INPUT0' for model 'add_sub'\. Expected 16, got 8/],
      ['double register', 'SystemSharedMemoryRegister', () => ({ name: 'e', key: KEY, offset: 0, byte_size: 64 }), /shared memory region 'e' is already registered/],
      ['register out of the file', 'SystemSharedMemoryRegister', () => ({ name: 'big', key: KEY, offset: 0, byte_size: SIZE + 1 }), /exceeds the 4096-byte shared memory/],
      ['register an unknown key', 'SystemSharedMemoryRegister', () => ({ name: 'ghost', key: `/shmtest-${process.pid}-none`, offset: 0, byte_size: 8 }), /unable to open shared memory key/],
    ];
    it.each(cases)('%s', async (_label, method, req, message) => {
      const err = await rpcError(method, req());
      expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(err.details).toMatch(message);
      await healthy();
    });

    it('unregister, then use', async () => {
      await rpc('SystemSharedMemoryRegister', { name: 'gone', key: KEY, offset: 0, byte_size: 64 });
      await rpc('SystemSharedMemoryUnregister', { name: 'gone' });
      const err = await rpcError('ModelInfer', addSubShm('gone'));
      expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(err.details).toMatch(/shared memory region 'gone' is not registered/);
      await healthy();
    });

    it('status of an unknown region is NOT_FOUND', async () => {
      const err = await rpcError('SystemSharedMemoryStatus', { name: 'nope' });
      expect(err.code).toBe(grpc.status.NOT_FOUND);
    });
  });

  it('CUDA shared memory as Triton without GPUs: status empty, unregister succeeds, register fails', async () => {
    expect((await rpc('CudaSharedMemoryStatus', {})).regions).toEqual({});
    const err = await rpcError('CudaSharedMemoryRegister', { name: 'g', byte_size: 8 });
    expect([err.code, err.details]).toEqual([grpc.status.INVALID_ARGUMENT, "failed to register CUDA shared memory region: 'g', GPUs not supported"]);
    expect(await rpc('CudaSharedMemoryUnregister', {})).toEqual({});
    expect(await rpc('CudaSharedMemoryUnregister', { name: 'g' })).toEqual({});
    const one = await rpcError('CudaSharedMemoryStatus', { name: 'g' });
    expect([one.code, one.details]).toEqual([grpc.status.NOT_FOUND, "Unable to find cuda shared memory region: 'g'"]);
  });
});
