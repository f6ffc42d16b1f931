/**
 * Client shared memory cannot hurt the host, against real servers, stubs and sockets:
 * - a region truncated after registration fails the requests that reach past its end (400 /
 *   INVALID_ARGUMENT naming the truncation), never SIGBUS; a removed region keeps serving
 *   through the descriptor the server holds; one removed and created again asks for a new
 *   registration; registrations and the bytes copied for requests in flight are capped;
 *   unregister closes the descriptor at once;
 * - the server's own files (a stub's live arena segment, by name, hard link or symbolic link)
 *   cannot be registered, nor keys that leave /dev/shm or name a FIFO;
 * - with the default flags, register and unregister are refused with Triton's message (HTTP 501,
 *   gRPC UNIMPLEMENTED), over the CLI too;
 * - sweeps match whole names: `…-1` takes neither `…-10` nor `…-1x`, and with 12 instances of
 *   one model loading and serving large tensors while another model's stubs exit and one of
 *   the 12 is killed, everything else keeps serving.
 * Every test checks that a canary model still answers; nothing is left in /dev/shm or /tmp.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { Region } from '../src/ipc/region.js';
import { newRegionName } from '../src/ipc/shm-names.js';
import { sweepRegion } from '../src/ipc/shm-sweep.js';
import { ownShmCount } from '../src/ipc/own-shm.js';
import { CLIENT_SHM_DISABLED } from '../src/server/shm-registry.js';
import { grpcClient, type TestGrpcClient } from './helpers/grpc.js';
import { childPids, http, shmLeftovers, startRepositoryServer, waitFor, type RepositoryServer } from './helpers/server.js';
import { ADD_SUB_TS, BIN, makeRepository, shmFilesOf, startCli } from './helpers/blackbox.js';

const ADD_SUB_CFG = `backend: "typescript"
max_batch_size: 0
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] }, { name: "INPUT1" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] }, { name: "OUTPUT1" data_type: TYPE_FP32 dims: [ 4 ] } ]
`;
/** Echoes IN; a first byte > 0 in a short input first blocks the stub's thread for that many × 100 ms. */
const ECHO_TS = `import { InferenceRequest, InferenceResponse, Tensor } from 'stubhost';
export default class Echo {
  async execute(requests: InferenceRequest[]) {
    return requests.map((r) => {
      const x = r.input('IN')!.data as Uint8Array;
      if (x.length < 16 && x[0]! > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, x[0]! * 100);
      return new InferenceResponse({ outputs: [new Tensor('OUT', Uint8Array.from(x), [x.length], 'UINT8')] });
    });
  }
}
`;
const echoCfg = (count: number, extra = '') => `backend: "typescript"
max_batch_size: 0
input [ { name: "IN" data_type: TYPE_UINT8 dims: [ -1 ] } ]
output [ { name: "OUT" data_type: TYPE_UINT8 dims: [ -1 ] } ]
instance_group [ { count: ${count}, kind: KIND_CPU } ]
${extra}`;
const MODELS = {
  add_sub: { 'config.pbtxt': ADD_SUB_CFG, '1/model.ts': ADD_SUB_TS },
  canary: { 'config.pbtxt': ADD_SUB_CFG, '1/model.ts': ADD_SUB_TS },
};

// ---- client shared-memory files, made the way a client makes them (a file in /dev/shm) ----

const clientFiles = new Set<string>();
const fileOf = (tag: string) => `shmtrust-${process.pid}-${tag}`;
const keyOf = (tag: string) => `/${fileOf(tag)}`;
const pathOf = (tag: string) => `/dev/shm/${fileOf(tag)}`;

function makeClientFile(tag: string, size: number): string {
  fs.writeFileSync(pathOf(tag), Buffer.alloc(size));
  clientFiles.add(pathOf(tag));
  return keyOf(tag);
}

function writeF32(tag: string, position: number, values: number[]): void {
  const fd = fs.openSync(pathOf(tag), 'r+');
  fs.writeSync(fd, new Uint8Array(Float32Array.from(values).buffer), 0, values.length * 4, position);
  fs.closeSync(fd);
}

function readF32(tag: string, position: number, n: number): number[] {
  const buf = Buffer.alloc(n * 4);
  const fd = fs.openSync(pathOf(tag), 'r');
  fs.readSync(fd, buf, 0, n * 4, position);
  fs.closeSync(fd);
  return Array.from(new Float32Array(buf.buffer, buf.byteOffset, n));
}

/** Descriptors of this process (the in-process server's) open on /dev/shm/<file>. */
function descriptorsOn(file: string): number {
  let n = 0;
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      const link = fs.readlinkSync(`/proc/self/fd/${fd}`);
      if (link === `/dev/shm/${file}` || link === `/dev/shm/${file} (deleted)`) n++;
    } catch {
      // closed while we looked
    }
  }
  return n;
}

function removeClientFiles(): void {
  for (const p of clientFiles) fs.rmSync(p, { force: true });
  clientFiles.clear();
}

/** add_sub with INPUT0/INPUT1 at 0/16 and OUTPUT0/OUTPUT1 at 32/48 of region `name` (offsets within the region). */
function addSubShm(name: string, base = 0) {
  const input = (n: number) => ({
    name: `INPUT${n}`, datatype: 'FP32', shape: [4],
    parameters: { shared_memory_region: name, shared_memory_byte_size: 16, shared_memory_offset: base + n * 16 },
  });
  const output = (n: number) => ({
    name: `OUTPUT${n}`, parameters: { shared_memory_region: name, shared_memory_byte_size: 16, shared_memory_offset: base + 32 + n * 16 },
  });
  return { inputs: [input(0), input(1)], outputs: [output(0), output(1)] };
}

async function canaryAnswers(url: string): Promise<void> {
  const r = await http(`${url}/v2/models/canary/infer`, 'POST', {
    inputs: [
      { name: 'INPUT0', datatype: 'FP32', shape: [4], data: [1, 2, 3, 4] },
      { name: 'INPUT1', datatype: 'FP32', shape: [4], data: [1, 1, 1, 1] },
    ],
  });
  expect(r.status, r.text).toBe(200);
  expect(r.json.outputs[0].data).toEqual([2, 3, 4, 5]);
}

describe('client shared memory allowed: what a client does to its files fails only its requests', () => {
  let server: RepositoryServer;
  let client: TestGrpcClient;
  const url = (p: string) => `${server.url}${p}`;
  const register = (name: string, key: string, byteSize: number, offset = 0) =>
    http(url(`/v2/systemsharedmemory/region/${name}/register`), 'POST', { key, offset, byte_size: byteSize });
  const unregister = (name?: string) => http(url(name === undefined ? '/v2/systemsharedmemory/unregister' : `/v2/systemsharedmemory/region/${name}/unregister`), 'POST');
  const infer = (body: unknown) => http(url('/v2/models/add_sub/infer'), 'POST', body);

  beforeAll(async () => {
    server = await startRepositoryServer({
      ...MODELS,
      // instance_prefetch 1: a second request is handed to the stub while it still runs the first.
      slow: { 'config.pbtxt': echoCfg(1, 'parameters { key: "instance_prefetch" value: { string_value: "1" } }'), '1/model.ts': ECHO_TS },
    }, { allowClientShm: true, clientShmMaxRegions: 4, clientShmMaxInflightBytes: 64, grpcPort: 0 });
    expect([...server.failed]).toEqual([]);
    client = grpcClient(server.ports.grpc!);
  }, 120_000);

  afterEach(async () => {
    await unregister();
    expect(server.shm.size).toBe(0);
    // Every request's copies were released (HTTP on the response's close, gRPC when the call ends).
    expect(await waitFor(() => server.shm.inflightBytes === 0, 5000)).toBe(true);
    await canaryAnswers(server.url);
    expect((await http(url('/v2/health/ready'))).status).toBe(200);
  });

  afterAll(async () => {
    client?.close();
    const left = await server?.stop(3000);
    removeClientFiles();
    expect(left).toEqual([]);
    expect(await waitFor(() => childPids().length === 0, 5000)).toBe(true);
    expect(fs.readdirSync('/dev/shm').filter((f) => f.startsWith(`shmtrust-${process.pid}-`))).toEqual([]);
  });

  it('a truncated region: the request reaching past the end is a 400 naming it; grown again, the same registration serves', async () => {
    const key = makeClientFile('trunc', 4096);
    writeF32('trunc', 1024, [1, 2, 3, 4, 10, 20, 30, 40]);
    expect((await register('t', key, 2048, 1024)).status).toBe(200);
    let r = await infer(addSubShm('t'));
    expect(r.status, r.text).toBe(200);
    expect(readF32('trunc', 1024 + 32, 4)).toEqual([11, 22, 33, 44]);

    fs.truncateSync(pathOf('trunc'), 1000); // the whole region now lies past the end
    r = await infer(addSubShm('t'));
    expect(r.status).toBe(400);
    expect(r.json.error).toMatch(new RegExp(`input 'INPUT0': shared memory region 't': key '${key}' is now 1000 bytes: too small for bytes 1024\\.\\.1040 .*truncated after the region was registered`));
    await canaryAnswers(server.url);

    // Inputs still inside, outputs past the end: the request fails once the model ran, the host does not.
    fs.truncateSync(pathOf('trunc'), 1024 + 40);
    writeF32('trunc', 1024, [1, 2, 3, 4, 10, 20, 30, 40]);
    r = await infer(addSubShm('t'));
    expect(r.status).toBe(400);
    expect(r.json.error).toMatch(/output 'OUTPUT0': shared memory region 't': .* is now 1064 bytes: too small for bytes 1056\.\.1072/);
    expect(fs.statSync(pathOf('trunc')).size).toBe(1064); // nothing was written past the end

    fs.truncateSync(pathOf('trunc'), 4096);
    writeF32('trunc', 1024, [5, 5, 5, 5, 1, 2, 3, 4]);
    r = await infer(addSubShm('t'));
    expect(r.status, r.text).toBe(200);
    expect(readF32('trunc', 1024 + 48, 4)).toEqual([4, 3, 2, 1]);
  });

  it('over gRPC a truncated region is INVALID_ARGUMENT for that call only', async () => {
    const key = makeClientFile('gtrunc', 256);
    await client.rpc('SystemSharedMemoryRegister', { name: 'g', key, offset: 0, byte_size: 256 });
    fs.truncateSync(pathOf('gtrunc'), 0);
    const s = (v: string) => ({ string_param: v });
    const i = (v: number) => ({ int64_param: v });
    const err = await client.rpcError('ModelInfer', {
      model_name: 'add_sub',
      inputs: [0, 1].map((n) => ({ name: `INPUT${n}`, datatype: 'FP32', shape: [4], parameters: { shared_memory_region: s('g'), shared_memory_byte_size: i(16), shared_memory_offset: i(n * 16) } })),
    });
    expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err.details).toMatch(/input 'INPUT0': shared memory region 'g': key .* is now 0 bytes: too small/);
    expect((await client.rpc('ServerReady', {})).ready).toBe(true);
  });

  it('a removed region serves on through the held descriptor; removed and created again, it asks for a new registration', async () => {
    const key = makeClientFile('gone', 128);
    writeF32('gone', 0, [1, 1, 1, 1, 2, 2, 2, 2]);
    expect((await register('g', key, 128)).status).toBe(200);

    fs.unlinkSync(pathOf('gone')); // shm_unlink: the object lives while someone holds it, as with Triton's mapping
    let r = await infer({ inputs: addSubShm('g').inputs });
    expect(r.status, r.text).toBe(200);
    expect(r.json.outputs[0].data).toEqual([3, 3, 3, 3]);

    makeClientFile('gone', 128); // a new object under the same key: the server would see stale bytes
    writeF32('gone', 0, [7, 7, 7, 7, 1, 1, 1, 1]);
    r = await infer(addSubShm('g'));
    expect(r.status).toBe(400);
    expect(r.json.error).toMatch(new RegExp(`input 'INPUT0': shared memory region 'g': key '${key}' was removed and created again after the region was registered.*register it again`));
    expect(readF32('gone', 32, 4)).toEqual([0, 0, 0, 0]); // the new file was not written either

    expect((await unregister('g')).status).toBe(200);
    expect((await register('g', key, 128)).status).toBe(200);
    r = await infer(addSubShm('g'));
    expect(r.status, r.text).toBe(200);
    expect(readF32('gone', 32, 4)).toEqual([8, 8, 8, 8]);
  });

  it('registrations are capped by --client-shm-max-regions: 503 / RESOURCE_EXHAUSTED naming the flag, until one is unregistered', async () => {
    const key = makeClientFile('cap', 64);
    for (let n = 0; n < 4; n++) expect((await register(`c${n}`, key, 64)).status).toBe(200);
    const r = await register('c4', key, 64);
    expect(r.status).toBe(503);
    expect(r.json.error).toBe("register 'c4': 4 shared memory regions are registered, the server's limit (--client-shm-max-regions 4); unregister regions no longer used");
    const err = await client.rpcError('SystemSharedMemoryRegister', { name: 'c4', key, offset: 0, byte_size: 64 });
    expect(err.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(server.shm.size).toBe(4);
    expect((await unregister('c0')).status).toBe(200);
    expect((await register('c4', key, 64)).status).toBe(200);
  });

  it('bytes copied out for requests in flight are capped (--client-shm-max-inflight-bytes): 503, released when answered', async () => {
    const key = makeClientFile('budget', 256);
    const fd = fs.openSync(pathOf('budget'), 'r+');
    fs.writeSync(fd, Uint8Array.of(20), 0, 1, 0); // the slow model blocks 2 s on this 8-byte input
    fs.closeSync(fd);
    expect((await register('b', key, 256)).status).toBe(200);
    const shmIn = (offset: number, size: number) => ({ inputs: [{ name: 'IN', datatype: 'UINT8', shape: [size], parameters: { shared_memory_region: 'b', shared_memory_offset: offset, shared_memory_byte_size: size } }] });
    const slow = (body: unknown) => http(url('/v2/models/slow/infer'), 'POST', body);

    let r = await slow(shmIn(0, 100)); // more than the whole budget
    expect(r.status).toBe(503);
    expect(r.json.error).toBe("input 'IN': cannot copy 100 bytes out of shared memory region 'b': it alone is more than the server's limit (--client-shm-max-inflight-bytes 64); send smaller tensors");

    const held = slow(shmIn(0, 8));
    expect(await waitFor(() => server.shm.inflightBytes === 8, 5000)).toBe(true);
    r = await slow(shmIn(64, 60));
    expect(r.status).toBe(503);
    expect(r.json.error).toMatch(/cannot copy 60 bytes .*: 8 bytes are held for requests in flight, and the server's limit is 64 .*retry later/);
    expect((await held).status).toBe(200);
    expect(await waitFor(() => server.shm.inflightBytes === 0, 5000)).toBe(true);
    r = await slow(shmIn(64, 60));
    expect(r.status, r.text).toBe(200);
    expect(server.shm.inflightBytes).toBe(0);
  });

  it('each registration holds one descriptor and no mapping; unregister closes it at once', async () => {
    const key = makeClientFile('fds', 64);
    const mapsBefore = fs.readFileSync('/proc/self/maps', 'utf8').includes(fileOf('fds'));
    expect(mapsBefore).toBe(false);
    for (const n of ['a', 'b', 'c']) expect((await register(n, key, 64)).status).toBe(200);
    expect(descriptorsOn(fileOf('fds'))).toBe(3);
    expect(fs.readFileSync('/proc/self/maps', 'utf8')).not.toContain(fileOf('fds'));
    expect((await unregister('a')).status).toBe(200);
    expect(descriptorsOn(fileOf('fds'))).toBe(2);
    expect((await unregister()).status).toBe(200);
    expect(descriptorsOn(fileOf('fds'))).toBe(0);
    // A refused registration keeps nothing open either.
    expect((await register('big', key, 65)).status).toBe(400);
    expect(descriptorsOn(fileOf('fds'))).toBe(0);
  });

  it("the server's own files cannot be registered: a stub's live segment by name, by hard link or symbolic link", async () => {
    // The stub's thread is blocked in its first request; the second (large) one is written into a
    // new host arena segment that the stub has not mapped yet, so that file is live in /dev/shm.
    const first = http(url('/v2/models/slow/infer'), 'POST', { inputs: [{ name: 'IN', datatype: 'UINT8', shape: [1], data: [40] }] });
    const second = http(url('/v2/models/slow/infer'), 'POST', { inputs: [{ name: 'IN', datatype: 'UINT8', shape: [4096], data: Array(4096).fill(3) }] });
    const segmentOf = () => fs.readdirSync('/dev/shm').find((f) => f.startsWith(`stubhost-${process.pid}-`) && /-h\d+$/.test(f));
    expect(await waitFor(() => segmentOf() !== undefined, 3000)).toBe(true);
    const segment = segmentOf()!;
    expect(segment).toMatch(new RegExp(`^stubhost-${process.pid}-[0-9a-f]{32}-h\\d+$`)); // unguessable

    let r = await register('own', `/${segment}`, 64);
    expect(r.status).toBe(400);
    expect(r.json.error).toBe(`cannot register shared memory region 'own' with key '/${segment}' as the key contains the reserved prefix 'stubhost-'`);

    fs.linkSync(`/dev/shm/${segment}`, pathOf('alias'));
    clientFiles.add(pathOf('alias'));
    r = await register('own', keyOf('alias'), 64);
    expect(r.status).toBe(400);
    expect(r.json.error).toBe(`register 'own': shared memory key '${keyOf('alias')}' is one of this server's own shared-memory files; register a region your client created`);
    fs.rmSync(pathOf('alias'));

    fs.symlinkSync(`/dev/shm/${segment}`, pathOf('symlink'));
    clientFiles.add(pathOf('symlink'));
    r = await register('own', keyOf('symlink'), 64);
    expect(r.status).toBe(400);
    expect(r.json.error).toMatch(/unable to open shared memory key .* \(it is a symbolic link\)/);
    fs.rmSync(pathOf('symlink'));

    // The blocked requests complete normally: nothing of theirs was touched.
    const [a, b] = await Promise.all([first, second]);
    expect([a.status, b.status]).toEqual([200, 200]);
    expect(b.json.outputs[0].data).toEqual(Array(4096).fill(3));
  });

  it('a live region made the way the stub manager makes one is refused by name and by hard link', async () => {
    const region = Region.create(newRegionName());
    try {
      let r = await register('own', region.name, 64);
      expect(r.json.error).toMatch(/contains the reserved prefix 'stubhost-'/);
      fs.linkSync(`/dev/shm${region.name}`, pathOf('alias2'));
      clientFiles.add(pathOf('alias2'));
      r = await register('own', keyOf('alias2'), 64);
      expect(r.status).toBe(400);
      expect(r.json.error).toMatch(/is one of this server's own shared-memory files/);
    } finally {
      region.close();
      region.unlink();
      fs.rmSync(pathOf('alias2'), { force: true });
    }
  });

  it('keys that leave /dev/shm, and files that are not shared memory objects, are refused without blocking', async () => {
    for (const key of ['../../etc/passwd', '/a/b', '/', '..']) {
      const r = await register('k', key, 16);
      expect(r.status, key).toBe(400);
      expect(r.json.error).toMatch(/invalid shm key/);
    }
    await new Promise<void>((resolve, reject) => execFile('mkfifo', [pathOf('fifo')], (err) => (err ? reject(err) : resolve())));
    clientFiles.add(pathOf('fifo'));
    const r = await register('k', keyOf('fifo'), 16);
    expect(r.status).toBe(400);
    expect(r.json.error).toMatch(/is not a shared memory object \(not a regular file\)/);
  });
});

describe('client shared memory off (the default): register and unregister refused with Triton\'s message', () => {
  let server: RepositoryServer;
  let client: TestGrpcClient;
  const url = (p: string) => `${server.url}${p}`;

  beforeAll(async () => {
    server = await startRepositoryServer(MODELS, { grpcPort: 0 });
    client = grpcClient(server.ports.grpc!);
  }, 120_000);

  afterAll(async () => {
    client?.close();
    const left = await server?.stop(3000);
    removeClientFiles();
    expect(left).toEqual([]);
    expect(await waitFor(() => childPids().length === 0, 5000)).toBe(true);
  });

  it('HTTP: 501 with the message; status answers (nothing registered); inputs naming a region are 400 saying why', async () => {
    const key = makeClientFile('off', 64);
    for (const p of ['/v2/systemsharedmemory/region/r/register', '/v2/systemsharedmemory/region/r/unregister', '/v2/systemsharedmemory/unregister', '/v2/cudasharedmemory/region/r/register', '/v2/cudasharedmemory/unregister']) {
      const r = await http(url(p), 'POST', { key, offset: 0, byte_size: 64 });
      expect(r.status, p).toBe(501);
      expect(r.json, p).toEqual({ error: CLIENT_SHM_DISABLED });
    }
    expect(CLIENT_SHM_DISABLED).toBe("Client shared memory is disabled. Start the server with '--allow-client-shm=true' to enable.");
    // Refused before the body is read: a malformed body gets the same answer.
    expect((await http(url('/v2/systemsharedmemory/region/r/register'), 'POST', '{not json')).json).toEqual({ error: CLIENT_SHM_DISABLED });
    expect(descriptorsOn(fileOf('off'))).toBe(0);

    const status = await http(url('/v2/systemsharedmemory/status'));
    expect([status.status, status.json]).toEqual([200, []]);
    expect((await http(url('/v2/systemsharedmemory/region/r/status'))).status).toBe(404);

    const r = await http(url('/v2/models/add_sub/infer'), 'POST', addSubShm('r'));
    expect(r.status).toBe(400);
    expect(r.json.error).toMatch(/input 'INPUT0': shared memory region 'r' is not registered; client shared memory is disabled on this server/);
    await canaryAnswers(server.url);
  });

  it('gRPC: UNIMPLEMENTED with the message; status answers', async () => {
    const key = makeClientFile('offg', 64);
    for (const [method, req] of [
      ['SystemSharedMemoryRegister', { name: 'r', key, offset: 0, byte_size: 64 }],
      ['SystemSharedMemoryUnregister', { name: 'r' }],
      ['SystemSharedMemoryUnregister', {}],
      ['CudaSharedMemoryUnregister', {}],
    ] as const) {
      const err = await client.rpcError(method, req);
      expect(err.code, method).toBe(grpc.status.UNIMPLEMENTED);
      expect(err.details, method).toBe(CLIENT_SHM_DISABLED);
    }
    // Triton built without GPUs answers CUDA register before it looks at the flag (src/grpc/grpc_server.cc).
    const cuda = await client.rpcError('CudaSharedMemoryRegister', { name: 'r', raw_handle: Buffer.alloc(0), device_id: 0, byte_size: 64 });
    expect([cuda.code, cuda.details]).toEqual([grpc.status.INVALID_ARGUMENT, "failed to register CUDA shared memory region: 'r', GPUs not supported"]);
    expect((await client.rpc('SystemSharedMemoryStatus', {})).regions).toEqual({});
    expect(server.shm.size).toBe(0);
    await canaryAnswers(server.url);
  });
});

describe('the CLI flags', () => {
  const repo = makeRepository({ 'canary/config.pbtxt': ADD_SUB_CFG, 'canary/1/model.ts': ADD_SUB_TS });
  afterAll(() => {
    repo.cleanup();
    removeClientFiles();
  });

  it('default: refused; --allow-client-shm true --client-shm-max-regions 1: one registration, then 503', { timeout: 150_000 }, async () => {
    const key = makeClientFile('cli', 64);
    const slowMachine = { timeoutMs: 60_000 };
    const [off, on] = await Promise.all([
      startCli(repo.root, [], slowMachine),
      startCli(repo.root, ['--allow-client-shm', 'true', '--client-shm-max-regions', '1'], slowMachine),
    ]);
    try {
      const reg = (base: string, name: string) => http(`${base}/v2/systemsharedmemory/region/${name}/register`, 'POST', { key, offset: 0, byte_size: 64 });
      let r = await reg(off.http, 'a');
      expect([r.status, r.json]).toEqual([501, { error: CLIENT_SHM_DISABLED }]);
      expect((await reg(on.http, 'a')).status).toBe(200);
      r = await reg(on.http, 'b');
      expect(r.status).toBe(503);
      expect(r.json.error).toMatch(/--client-shm-max-regions 1/);
      await canaryAnswers(off.http);
      await canaryAnswers(on.http);
    } finally {
      await Promise.all([off.stop(), on.stop()]);
    }
    expect([...shmFilesOf(off.pid), ...shmFilesOf(on.pid)]).toEqual([]);
  });

  it('a bool that is not one refuses to start (exit 2)', { timeout: 90_000 }, async () => {
    for (const [args, message] of [
      [['--allow-client-shm', 'ture'], /--allow-client-shm "ture": expected true or false/],
      [['--client-shm-max-regions', '1.5'], /--client-shm-max-regions "1.5": expected a positive whole number/],
    ] as const) {
      const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
        execFile(process.execPath, [BIN, 'serve', '--model-repository', repo.root, ...args], { timeout: 40_000 }, (err, _out, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stderr }));
      });
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(message);
    }
  });
});

describe('sweeps match whole names', () => {
  it('a region sweep takes the region and its segments, never a region whose name merely starts the same', () => {
    const base = `stubhost-${process.pid}-t1`;
    const ours = [base, `${base}-h0`, `${base}-s12`];
    const others = [`stubhost-${process.pid}-t10`, `stubhost-${process.pid}-t10-h0`, `stubhost-${process.pid}-t11-s3`, `${base}x-h0`, `${base}-h0x`];
    for (const f of [...ours, ...others]) fs.writeFileSync(`/dev/shm/${f}`, '');
    try {
      expect(sweepRegion(`/${base}`)).toBe(3);
      const left = fs.readdirSync('/dev/shm').filter((f) => f.startsWith(`stubhost-${process.pid}-t1`));
      expect(left.sort()).toEqual([...others].sort());
    } finally {
      for (const f of [...ours, ...others]) fs.rmSync(`/dev/shm/${f}`, { force: true });
    }
  });

  describe('12 instances loading and serving while other stubs exit and one of them is killed', () => {
    let server: RepositoryServer;
    const url = (p: string) => `${server.url}${p}`;
    const MIB = 1 << 20;

    beforeAll(async () => {
      server = await startRepositoryServer({
        ...MODELS,
        victim: { 'config.pbtxt': echoCfg(3), '1/model.ts': ECHO_TS },
        many: { 'config.pbtxt': echoCfg(12), '1/model.ts': ECHO_TS },
      }, { modelControlMode: 'explicit', loadModels: ['canary', 'victim'] });
      expect([...server.failed]).toEqual([]);
    }, 120_000);

    afterAll(async () => {
      const left = await server?.stop(3000);
      expect(left).toEqual([]);
      expect(await waitFor(() => childPids().length === 0, 5000)).toBe(true);
      expect(ownShmCount()).toBe(0);
    });

    /** 48 requests of 1 MiB through the core (no HTTP JSON cost): each answer echoes its own bytes. */
    async function allServe(round: number, allowDied = false): Promise<void> {
      const rs = await Promise.allSettled(Array.from({ length: 48 }, (_, i) => server.core.infer({
        id: '', modelName: 'many', parameters: {}, priority: 0, timeoutUs: 0,
        inputs: [{ name: 'IN', datatype: 'UINT8', shape: [MIB], data: new Uint8Array(MIB).fill((round + i) % 251) }],
      })));
      for (const [i, r] of rs.entries()) {
        if (r.status === 'rejected') {
          // Only requests that were on the killed stub may fail, and only for that reason.
          if (allowDied && /killed by SIGKILL/.test((r.reason as Error).message)) continue;
          throw r.reason;
        }
        const out = r.value.outputs[0]!.data as Uint8Array;
        expect(out.length).toBe(MIB);
        expect([out[0], out[MIB - 1]]).toEqual([(round + i) % 251, (round + i) % 251]);
      }
    }

    it('the 12 load while the victim unloads, serve large tensors, and one killed leaves the others serving', { timeout: 180_000 }, async () => {
      // The victim's stubs exit (each sweeping its own files) while the 12 new regions wait in
      // /dev/shm for their stubs to attach: a prefix sweep took those of its name's extensions.
      const loading = http(url('/v2/repository/models/many/load'), 'POST', {});
      const regionFiles = () => fs.readdirSync('/dev/shm').filter((f) => f.startsWith(`stubhost-${process.pid}-`) && !/-[hs]\d+$/.test(f)).length;
      await waitFor(() => regionFiles() >= 6, 20_000); // a synchronisation point only: fast attaches may never show 6 at once
      const [load, unload] = await Promise.all([loading, http(url('/v2/repository/models/victim/unload'), 'POST', {})]);
      expect(load.status, load.text).toBe(200);
      expect(unload.status, unload.text).toBe(200);
      const instances = server.core.repository.get('many').instanceList;
      expect(instances.length).toBe(12);
      // First tensors: every instance creates and maps its first arena segments now.
      await allServe(0);

      const killed = instances[0]!.pid;
      const during = allServe(100, true);
      process.kill(killed, 'SIGKILL');
      await during;
      expect(await waitFor(() => {
        const now = server.core.repository.get('many').instanceList;
        return now[0]!.pid !== killed && now.every((i) => i.isHealthy());
      }, 60_000, 50)).toBe(true);
      await allServe(200);
      await canaryAnswers(server.url);
    });
  });
});
