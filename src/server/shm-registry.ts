/**
 * Triton's system shared-memory extension: clients register a POSIX shared-memory region
 * (`/v2/systemsharedmemory/region/{name}/register` with `key`, `offset`, `byte_size`) and then
 * name it in inputs (`shared_memory_region`, `shared_memory_offset`, `shared_memory_byte_size`)
 * instead of sending the bytes, and in outputs to receive results there.
 *
 * Regions are mapped through the native addon (the same `shm_open` + `mmap` as stub regions), so
 * input tensors are views of the client's memory and are copied only into a stub's arena.
 * The mapping lives as long as a view of it does: a region unregistered while a request still
 * reads it stays mapped until that request is done (the SharedArrayBuffer's deleter unmaps it),
 * so unregistering never pulls memory from under a running model. The client owns the file; the
 * server never unlinks it.
 *
 * One registry per server, shared by the HTTP and gRPC front-ends (created in start.ts).
 */
import { native } from '../ipc/native.js';
import { StubhostError } from '../errors.js';
import { bytesElementsSize, writeBytesElements, type NumericTypedArray } from '../core/dtypes.js';
import type { Parameters, TensorValue } from '../core/types.js';
import { invalidInput, isNonNegativeInt } from '../core/validate.js';

export interface RegionStatus {
  name: string;
  key: string;
  offset: number;
  byte_size: number;
}

interface Registered extends RegionStatus {
  buffer: SharedArrayBuffer;
}

/** Where a tensor's bytes live, from its `shared_memory_*` parameters. */
export interface ShmRef {
  region: string;
  offset: number;
  byteSize: number;
}

export const SHM_PARAMETERS: ReadonlySet<string> = new Set(['shared_memory_region', 'shared_memory_byte_size', 'shared_memory_offset']);

/** What both front-ends answer on the CUDA shared-memory routes and RPCs. */
export const CUDA_SHM_UNSUPPORTED = 'CUDA shared memory is not supported on this server (no GPU); use system shared memory (/v2/systemsharedmemory)';

/** What both front-ends answer when a request names shared memory and the server has no registry. */
export function shmUnsupported(dir: 'input' | 'output', name: string): StubhostError {
  const fix = dir === 'input' ? 'send the data in the request' : 'leave shared_memory_region out to get the data in the response';
  return new StubhostError('STUBHOST_UNSUPPORTED', `${dir} '${name}': shared-memory ${dir}s are not supported by this server; ${fix}`);
}

/**
 * The shared-memory reference in a tensor's parameters; undefined when it names no region.
 * `what` names the tensor in messages ("input 'X'").
 */
export function shmRefOf(params: Parameters | undefined, what: string): ShmRef | undefined {
  if (params === undefined) return undefined;
  const region = params.shared_memory_region;
  const byteSize = params.shared_memory_byte_size;
  const offset = params.shared_memory_offset ?? 0;
  if (region === undefined) {
    if (byteSize !== undefined || params.shared_memory_offset !== undefined) {
      throw invalidInput(`${what}: has shared_memory_byte_size or shared_memory_offset but no shared_memory_region; name the registered region`);
    }
    return undefined;
  }
  if (typeof region !== 'string' || region === '') throw invalidInput(`${what}: 'shared_memory_region' must be the name of a registered region`);
  if (!isNonNegativeInt(byteSize)) {
    throw invalidInput(`${what}: shared memory region '${region}' needs 'shared_memory_byte_size', a non-negative integer, got ${JSON.stringify(byteSize)}`);
  }
  if (!isNonNegativeInt(offset)) throw invalidInput(`${what}: 'shared_memory_offset' must be a non-negative integer, got ${JSON.stringify(offset)}`);
  return { region, offset, byteSize };
}

/** `params` without the shared_memory_* keys; undefined when nothing is left. */
export function withoutShmParameters(params: Parameters | undefined): Parameters | undefined {
  if (params === undefined) return undefined;
  let out: Parameters | undefined;
  for (const key in params) if (!SHM_PARAMETERS.has(key)) (out ??= {})[key] = params[key]!;
  return out;
}

export class SharedMemoryRegistry {
  private readonly regions = new Map<string, Registered>();

  register(name: string, key: unknown, offset: unknown, byteSize: unknown): void {
    if (typeof name !== 'string' || name === '') throw new StubhostError('STUBHOST_INVALID_ARG', 'shared memory region name is empty; name the region');
    if (this.regions.has(name)) {
      throw new StubhostError('STUBHOST_INVALID_ARG', `shared memory region '${name}' is already registered; unregister it first or use another name`);
    }
    if (typeof key !== 'string' || key === '') {
      throw new StubhostError('STUBHOST_INVALID_ARG', `register '${name}': 'key' (the shm_open name, e.g. "/my_region") is required`);
    }
    if (!isNonNegativeInt(offset) || !isNonNegativeInt(byteSize) || byteSize === 0) {
      throw new StubhostError('STUBHOST_INVALID_ARG', `register '${name}': 'offset' must be a non-negative integer and 'byte_size' a positive one, got offset ${JSON.stringify(offset)}, byte_size ${JSON.stringify(byteSize)}`);
    }
    let buffer: SharedArrayBuffer;
    try {
      buffer = native.shmOpen(key.startsWith('/') ? key : `/${key}`);
    } catch (err) {
      throw new StubhostError('STUBHOST_INVALID_ARG', `register '${name}': unable to open shared memory key '${key}' (${(err as Error).message}); create it (shm_open) before registering`);
    }
    if (offset + byteSize > buffer.byteLength) {
      throw new StubhostError('STUBHOST_INVALID_ARG', `register '${name}': offset ${offset} + byte_size ${byteSize} exceeds the ${buffer.byteLength}-byte shared memory '${key}'`);
    }
    this.regions.set(name, { name, key, offset, byte_size: byteSize, buffer });
  }

  /** Unregisters one region, or every region when `name` is undefined. An unknown name is not an error (as in Triton). */
  unregister(name?: string): void {
    if (name === undefined) this.regions.clear();
    else this.regions.delete(name);
  }

  status(name?: string): RegionStatus[] {
    if (name !== undefined) {
      const r = this.regions.get(name);
      if (!r) throw new StubhostError('STUBHOST_NOT_FOUND', `shared memory region '${name}' is not registered`);
      return [strip(r)];
    }
    return [...this.regions.values()].map(strip);
  }

  /**
   * `byteSize` bytes at `offset` within region `name`, as a view (bounds-checked against the
   * registered part of the region). `what` names the tensor in messages.
   */
  view(name: string, offset: number, byteSize: number, what: string): Uint8Array {
    const r = this.regions.get(name);
    if (!r) throw invalidInput(`${what}: shared memory region '${name}' is not registered; register it first (/v2/systemsharedmemory/region/${name}/register)`);
    if (!isNonNegativeInt(offset) || !isNonNegativeInt(byteSize) || offset + byteSize > r.byte_size) {
      throw invalidInput(`${what}: offset ${offset} + byte size ${byteSize} is outside shared memory region '${name}' (${r.byte_size} bytes)`);
    }
    return new Uint8Array(r.buffer, r.offset + offset, byteSize);
  }

  /**
   * Writes an output's serialized bytes into its region and returns the parameters the response
   * carries instead of data (Triton's: the region and the bytes written).
   */
  writeOutput(t: TensorValue, ref: ShmRef): Parameters {
    const what = `output '${t.name}'`;
    const dest = this.view(ref.region, ref.offset, ref.byteSize, what);
    let size: number;
    if (t.datatype === 'BYTES' || Array.isArray(t.data)) {
      const items = t.data as Uint8Array[];
      size = bytesElementsSize(items);
      if (size > ref.byteSize) throw tooSmall(what, ref, size);
      writeBytesElements(items, dest.subarray(0, size));
    } else {
      const d = t.data as NumericTypedArray;
      size = d.byteLength;
      if (size > ref.byteSize) throw tooSmall(what, ref, size);
      dest.set(new Uint8Array(d.buffer, d.byteOffset, size));
    }
    return { shared_memory_region: ref.region, shared_memory_byte_size: size };
  }
}

/**
 * The bytes a tensor's shared-memory reference names, for a front-end whose registry may be
 * absent (then: unsupported). Used for inputs, and for outputs to check the range before execution.
 */
export function shmBytes(shm: SharedMemoryRegistry | undefined, ref: ShmRef, dir: 'input' | 'output', name: string): Uint8Array {
  if (shm === undefined) throw shmUnsupported(dir, name);
  return shm.view(ref.region, ref.offset, ref.byteSize, `${dir} '${name}'`);
}

/** Writes an output into its region; returns the output's parameters for the response (its own, then the region's). */
export function writeShmOutput(shm: SharedMemoryRegistry | undefined, t: TensorValue, ref: ShmRef): Parameters {
  if (shm === undefined) throw shmUnsupported('output', t.name);
  return { ...withoutShmParameters(t.parameters), ...shm.writeOutput(t, ref) };
}

function tooSmall(what: string, ref: ShmRef, size: number): StubhostError {
  return invalidInput(`${what}: the result is ${size} bytes but shared_memory_byte_size is ${ref.byteSize} (region '${ref.region}'); give at least ${size} bytes`);
}

function strip(r: Registered): RegionStatus {
  return { name: r.name, key: r.key, offset: r.offset, byte_size: r.byte_size };
}
