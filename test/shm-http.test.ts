/**
 * Triton's system shared-memory extension over HTTP, against a real server with real stubs:
 * register a region the test made with the native addon, run add_sub and string_upper with
 * inputs and outputs in it, and check the bad cases (unknown region, out-of-range offsets,
 * double register, use after unregister, an output region too small) answer 400 while the server
 * stays healthy. CUDA shared memory answers as Triton built without GPUs. No /dev/shm file is left behind.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { native } from '../src/ipc/native.js';
import { encodeBytesElements } from '../src/core/dtypes.js';
import { http, shmLeftovers, startTestServer, tempRepository, type TestServer } from './helpers/server.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const KEY = `/shmtest-${process.pid}-http`;
const SIZE = 4096;

let repo: { root: string; cleanup(): void };
let server: TestServer;
let region: SharedArrayBuffer;

beforeAll(async () => {
  region = native.shmCreate(KEY, SIZE);
  repo = tempRepository({});
  for (const m of ['add_sub', 'string_upper']) fs.cpSync(path.join(ROOT, 'models', m), path.join(repo.root, m), { recursive: true });
  server = await startTestServer({ modelRepository: repo.root, allowClientShm: true });
}, 60_000);

afterAll(async () => {
  await server?.close();
  repo?.cleanup();
  native.shmUnlink(KEY);
  expect(shmLeftovers()).toEqual([]);
  expect(fs.existsSync(`/dev/shm${KEY}`)).toBe(false);
});

const url = (p: string) => `${server.url}${p}`;
const register = (name: string, body: unknown) => http(url(`/v2/systemsharedmemory/region/${name}/register`), 'POST', body);
const unregister = (name?: string) => http(url(name === undefined ? '/v2/systemsharedmemory/unregister' : `/v2/systemsharedmemory/region/${name}/unregister`), 'POST');
const f32At = (offset: number, n: number) => Array.from(new Float32Array(region, offset, n));

/** add_sub with both inputs at 0/16 and both outputs at 32/48 of `name` (the region's own offsets). */
function addSubShm(name: string, over: { inOffset?: number; outByteSize?: number } = {}) {
  const input = (n: number) => ({
    name: `INPUT${n}`, datatype: 'FP32', shape: [4],
    parameters: { shared_memory_region: name, shared_memory_byte_size: 16, shared_memory_offset: (over.inOffset ?? 0) + n * 16 },
  });
  const output = (n: number) => ({
    name: `OUTPUT${n}`,
    parameters: { shared_memory_region: name, shared_memory_byte_size: over.outByteSize ?? 16, shared_memory_offset: 32 + n * 16 },
  });
  return { inputs: [input(0), input(1)], outputs: [output(0), output(1)] };
}

async function healthy(): Promise<void> {
  expect((await http(url('/v2/health/ready'))).status).toBe(200);
}

describe('system shared memory over HTTP', () => {
  it('register, status, infer with inputs and outputs in the region, unregister', async () => {
    // The region starts 256 bytes into the file: offsets in requests are relative to it.
    new Float32Array(region, 256, 8).set([1, 2, 3, 4, 10, 20, 30, 40]);
    expect((await register('r0', { key: KEY, offset: 256, byte_size: 1024 })).status).toBe(200);

    const all = await http(url('/v2/systemsharedmemory/status'));
    expect(all.status).toBe(200);
    expect(all.json).toEqual([{ name: 'r0', key: KEY, offset: 256, byte_size: 1024 }]);
    expect((await http(url('/v2/systemsharedmemory/region/r0/status'))).json).toEqual([{ name: 'r0', key: KEY, offset: 256, byte_size: 1024 }]);

    const r = await http(url('/v2/models/add_sub/infer'), 'POST', addSubShm('r0'));
    expect(r.status, r.text).toBe(200);
    expect(r.json.outputs).toEqual([
      { name: 'OUTPUT0', datatype: 'FP32', shape: [4], parameters: { shared_memory_region: 'r0', shared_memory_byte_size: 16 } },
      { name: 'OUTPUT1', datatype: 'FP32', shape: [4], parameters: { shared_memory_region: 'r0', shared_memory_byte_size: 16 } },
    ]);
    expect(f32At(256 + 32, 4)).toEqual([11, 22, 33, 44]);
    expect(f32At(256 + 48, 4)).toEqual([-9, -18, -27, -36]);

    expect((await unregister('r0')).status).toBe(200);
    expect((await http(url('/v2/systemsharedmemory/status'))).json).toEqual([]);
  });

  it('mixes shared-memory and JSON tensors; an output not in shared memory comes back in the body', async () => {
    new Float32Array(region, 0, 4).set([5, 6, 7, 8]);
    expect((await register('mix', { key: KEY, offset: 0, byte_size: 64 })).status).toBe(200);
    const r = await http(url('/v2/models/add_sub/infer'), 'POST', {
      inputs: [
        { name: 'INPUT0', datatype: 'FP32', shape: [4], parameters: { shared_memory_region: 'mix', shared_memory_byte_size: 16 } },
        { name: 'INPUT1', datatype: 'FP32', shape: [4], data: [1, 1, 1, 1] },
      ],
      outputs: [{ name: 'OUTPUT0', parameters: { shared_memory_region: 'mix', shared_memory_byte_size: 16, shared_memory_offset: 16 } }, { name: 'OUTPUT1' }],
    });
    expect(r.status, r.text).toBe(200);
    expect(f32At(16, 4)).toEqual([6, 7, 8, 9]);
    expect(r.json.outputs[1]).toEqual({ name: 'OUTPUT1', datatype: 'FP32', shape: [4], data: [4, 5, 6, 7] });
    expect((await unregister('mix')).status).toBe(200);
  });

  it('BYTES in and out of shared memory keep their length prefixes', async () => {
    const input = encodeBytesElements([Buffer.from('ab'), Buffer.from('xyz')]);
    new Uint8Array(region, 512, input.byteLength).set(input);
    expect((await register('s', { key: KEY, offset: 512, byte_size: 128 })).status).toBe(200);
    const r = await http(url('/v2/models/string_upper/infer'), 'POST', {
      inputs: [{ name: 'INPUT0', datatype: 'BYTES', shape: [2], parameters: { shared_memory_region: 's', shared_memory_byte_size: input.byteLength } }],
      outputs: [{ name: 'OUTPUT0', parameters: { shared_memory_region: 's', shared_memory_byte_size: 64, shared_memory_offset: 64 } }],
    });
    expect(r.status, r.text).toBe(200);
    expect(r.json.outputs[0].parameters).toEqual({ shared_memory_region: 's', shared_memory_byte_size: input.byteLength });
    expect(Buffer.from(region, 512 + 64, input.byteLength)).toEqual(Buffer.from(encodeBytesElements([Buffer.from('AB'), Buffer.from('XYZ')])));

    // A length prefix that runs past the given byte size is a 400, as for binary data.
    const bad = await http(url('/v2/models/string_upper/infer'), 'POST', {
      inputs: [{ name: 'INPUT0', datatype: 'BYTES', shape: [2], parameters: { shared_memory_region: 's', shared_memory_byte_size: input.byteLength - 1 } }],
    });
    expect(bad.status).toBe(400);
    expect(bad.json.error).toMatch(/input 'INPUT0': bad BYTES data in shared memory region 's': element 1 claims 3 bytes/);
    expect((await unregister('s')).status).toBe(200);
  });

  describe('errors are 400s that name the problem, and the server stays healthy', () => {
    beforeAll(async () => {
      expect((await register('e', { key: KEY, offset: 0, byte_size: 64 })).status).toBe(200);
    });
    afterAll(async () => {
      await unregister();
    });

    const cases: [string, () => Promise<{ status: number; json: any }>, RegExp][] = [
      ['unknown region in an input', () => http(url('/v2/models/add_sub/infer'), 'POST', addSubShm('nope')), /input 'INPUT0': shared memory region 'nope' is not registered/],
      ['input offset out of range', () => http(url('/v2/models/add_sub/infer'), 'POST', addSubShm('e', { inOffset: 40 })), /input 'INPUT1': offset 56 \+ byte size 16 is outside shared memory region 'e' \(64 bytes\)/],
      ['output range out of the region', () => http(url('/v2/models/add_sub/infer'), 'POST', addSubShm('e', { outByteSize: 32 })), /output 'OUTPUT1': offset 48 \+ byte size 32 is outside shared memory region 'e'/],
      ['byte size does not match shape and dtype', () => http(url('/v2/models/add_sub/infer'), 'POST', {
        inputs: [
          { name: 'INPUT0', datatype: 'FP32', shape: [4], parameters: { shared_memory_region: 'e', shared_memory_byte_size: 12 } },
          { name: 'INPUT1', datatype: 'FP32', shape: [4], data: [1, 2, 3, 4] },
        ],
      }), /input byte size mismatch for input 'INPUT0' for model 'add_sub'\. Expected 16, got 12/],
      ['output region smaller than the output', () => http(url('/v2/models/add_sub/infer'), 'POST', addSubShm('e', { outByteSize: 8 })), /output 'OUTPUT0': the result is 16 bytes but shared_memory_byte_size is 8/],
      ['both data and a region', () => http(url('/v2/models/add_sub/infer'), 'POST', {
        inputs: [
          { name: 'INPUT0', datatype: 'FP32', shape: [4], data: [1, 2, 3, 4], parameters: { shared_memory_region: 'e', shared_memory_byte_size: 16 } },
          { name: 'INPUT1', datatype: 'FP32', shape: [4], data: [1, 2, 3, 4] },
        ],
      }), /input 'INPUT0': has shared_memory_region and also 'data'/],
      ['a region without a byte size', () => http(url('/v2/models/add_sub/infer'), 'POST', {
        inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [4], parameters: { shared_memory_region: 'e' } }, { name: 'INPUT1', datatype: 'FP32', shape: [4], data: [1, 2, 3, 4] }],
      }), /needs 'shared_memory_byte_size'/],
      ['double register', () => register('e', { key: KEY, offset: 0, byte_size: 64 }), /shared memory region 'e' is already registered; unregister it first/],
      ['register past the end of the file', () => register('big', { key: KEY, offset: SIZE - 8, byte_size: 16 }), /offset 4088 \+ byte_size 16 exceeds the 4096-byte shared memory/],
      ['register a key that does not exist', () => register('ghost', { key: `/shmtest-${process.pid}-none`, offset: 0, byte_size: 16 }), /unable to open shared memory key/],
      ['register without a byte size', () => register('nosize', { key: KEY }), /'byte_size' a positive one/],
      ['register without a body', () => http(url('/v2/systemsharedmemory/region/x/register'), 'POST'), /the body must be \{"key"/],
    ];
    it.each(cases)('%s', async (_label, run, message) => {
      const r = await run();
      expect(r.status, JSON.stringify(r.json)).toBe(400);
      expect(r.json.error).toMatch(message);
      await healthy();
    });

    it('status of an unknown region is 404', async () => {
      const r = await http(url('/v2/systemsharedmemory/region/nope/status'));
      expect(r.status).toBe(404);
      expect(r.json.error).toMatch(/'nope' is not registered/);
    });

    it('unregister, then use: 400', async () => {
      expect((await register('gone', { key: KEY, offset: 0, byte_size: 64 })).status).toBe(200);
      expect((await unregister('gone')).status).toBe(200);
      const r = await http(url('/v2/models/add_sub/infer'), 'POST', addSubShm('gone'));
      expect(r.status).toBe(400);
      expect(r.json.error).toMatch(/shared memory region 'gone' is not registered/);
      await healthy();
    });
  });

  it('CUDA shared memory as Triton without GPUs: status empty, unregister succeeds, register fails', async () => {
    expect((await http(url('/v2/cudasharedmemory/status'))).json).toEqual([]);
    const reg = await http(url('/v2/cudasharedmemory/region/g/register'), 'POST', { raw_handle: { b64: '' }, device_id: 0, byte_size: 16 });
    expect([reg.status, reg.json]).toEqual([400, { error: "failed to register CUDA shared memory region: 'g', GPUs not supported" }]);
    expect((await http(url('/v2/cudasharedmemory/unregister'), 'POST')).status).toBe(200);
    expect((await http(url('/v2/cudasharedmemory/region/g/unregister'), 'POST')).status).toBe(200);
    const one = await http(url('/v2/cudasharedmemory/region/g/status'));
    expect([one.status, one.json]).toEqual([404, { error: "Unable to find cuda shared memory region: 'g'" }]);
  });

  it('the server lists the extension', async () => {
    expect((await http(url('/v2'))).json.extensions).toContain('system_shared_memory');
  });
});
