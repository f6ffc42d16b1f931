/**
 * Triton's system shared-memory extension: clients register a POSIX shared-memory region
 * (`/v2/systemsharedmemory/region/{name}/register` with `key`, `offset`, `byte_size`) and then
 * name it in inputs (`shared_memory_region`, `shared_memory_offset`, `shared_memory_byte_size`)
 * instead of sending the bytes, and in outputs to receive results there.
 *
 * Off unless the server runs with `--allow-client-shm true` (Triton's flag and default, from its
 * src/command_line_parser.cc): then register and unregister are refused with Triton's message.
 *
 * Regions are never mapped (client-shm-file.ts): the registry holds one descriptor per region,
 * copies inputs out with pread when a request is decoded (the host copies them into the stub's
 * arena anyway) and writes outputs with pwrite. A client that truncates or replaces its file
 * fails its own requests, never the host. Unregister closes the descriptor at once. The client
 * owns the file; the server never unlinks it. Registrations are capped (--client-shm-max-regions),
 * and so are the bytes copied out for requests in flight (--client-shm-max-inflight-bytes): a
 * mapping cost nothing per queued request, a copy does, and one gRPC stream can queue thousands.
 * Front-ends take a `ShmSession` per request and release it when the request is answered.
 *
 * One registry per server, shared by the HTTP and gRPC front-ends (created in start.ts).
 */
import { StubhostError } from '../errors.js';
import { tensorByteLength, tensorBytes } from '../core/tensor-bytes.js';
import type { Parameters, TensorValue } from '../core/types.js';
import { invalidInput, isNonNegativeInt } from '../core/validate.js';
import { ClientShmFile } from './client-shm-file.js';

export interface RegionStatus {
  name: string;
  key: string;
  offset: number;
  byte_size: number;
}

interface Registered extends RegionStatus {
  file: ClientShmFile;
}

export interface SharedMemoryOptions {
  /** Clients may register regions (Triton's --allow-client-shm; its default is false). */
  allowClientShm?: boolean;
  /** Most regions registered at once (--client-shm-max-regions). */
  maxRegions?: number;
  /** Most bytes copied out of regions for requests in flight at once (--client-shm-max-inflight-bytes). */
  maxInflightBytes?: number;
}

export const DEFAULT_CLIENT_SHM_MAX_REGIONS = 1024;
export const DEFAULT_CLIENT_SHM_MAX_INFLIGHT_BYTES = 1024 * 1024 * 1024;

/** What the codecs use: one request's access to the registry (a `ShmSession`). */
export interface ShmAccess {
  /** A copy of an input's bytes, counted against the in-flight budget until the session is released. */
  read(ref: ShmRef, what: string): Uint8Array;
  /** The region is registered and the range lies inside it. */
  check(ref: ShmRef, what: string): void;
  /** Writes an output into its region; returns the parameters the response carries instead of data. */
  writeOutput(t: TensorValue, ref: ShmRef): Parameters;
}

/** Triton's message when client shared memory is off, word for word (its src/common.h kClientShmDisabledErrorStr). */
export const CLIENT_SHM_DISABLED = "Client shared memory is disabled. Start the server with '--allow-client-shm=true' to enable.";

/** Where a tensor's bytes live, from its `shared_memory_*` parameters. */
export interface ShmRef {
  region: string;
  offset: number;
  byteSize: number;
}

export const SHM_PARAMETERS: ReadonlySet<string> = new Set(['shared_memory_region', 'shared_memory_byte_size', 'shared_memory_offset']);

/**
 * CUDA shared memory, as Triton built without GPU support answers it (src/http_server.cc
 * HandleCudaSharedMemory, src/grpc/grpc_server.cc, src/shared_memory_manager.cc): no region can
 * be registered, so status lists none and unregister has nothing to do (both succeed); register
 * fails with these words (INVALID_ARG).
 */
export function cudaShmRegisterUnsupported(name: string): StubhostError {
  return new StubhostError('STUBHOST_INVALID_ARG', `failed to register CUDA shared memory region: '${name}', GPUs not supported`);
}

/** CUDA status: always empty; a named region is not found (Triton's words tell a system region apart). */
export function cudaShmStatus(registry: SharedMemoryRegistry | undefined, name: string | undefined): [] {
  if (name === undefined || name === '') return [];
  if (registry?.has(name)) {
    throw new StubhostError('STUBHOST_NOT_FOUND', `The region named '${name}' is registered as system shared memory, not CUDA shared memory`);
  }
  throw new StubhostError('STUBHOST_NOT_FOUND', `Unable to find cuda shared memory region: '${name}'`);
}

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
  readonly allowed: boolean;
  readonly maxRegions: number;
  readonly maxInflightBytes: number;
  private inflight = 0;

  constructor(options: SharedMemoryOptions = {}) {
    this.allowed = options.allowClientShm ?? false;
    this.maxRegions = options.maxRegions ?? DEFAULT_CLIENT_SHM_MAX_REGIONS;
    this.maxInflightBytes = options.maxInflightBytes ?? DEFAULT_CLIENT_SHM_MAX_INFLIGHT_BYTES;
  }

  /** One request's access; release it once the request is answered (or failed). */
  session(): ShmSession {
    return new ShmSession(this);
  }

  /** Bytes copied out of regions for requests in flight. */
  get inflightBytes(): number {
    return this.inflight;
  }

  /** Counts `n` bytes against the in-flight budget, or refuses the request (503) past it. */
  reserve(n: number, what: string, region: string): void {
    if (this.inflight + n > this.maxInflightBytes) {
      const why = n > this.maxInflightBytes
        ? `it alone is more than the server's limit (--client-shm-max-inflight-bytes ${this.maxInflightBytes}); send smaller tensors`
        : `${this.inflight} bytes are held for requests in flight, and the server's limit is ${this.maxInflightBytes} (--client-shm-max-inflight-bytes); retry later`;
      throw new StubhostError('STUBHOST_RESOURCE_EXHAUSTED', `${what}: cannot copy ${n} bytes out of shared memory region '${region}': ${why}`);
    }
    this.inflight += n;
  }

  unreserve(n: number): void {
    this.inflight = Math.max(0, this.inflight - n);
  }

  /** Throws Triton's "disabled" error unless clients may use shared memory. */
  assertAllowed(): void {
    if (!this.allowed) throw new StubhostError('STUBHOST_CLIENT_SHM_DISABLED', CLIENT_SHM_DISABLED);
  }

  /** A system region of this name is registered. */
  has(name: string): boolean {
    return this.regions.has(name);
  }

  /** Regions registered now (each holds one open descriptor). */
  get size(): number {
    return this.regions.size;
  }

  register(name: string, key: unknown, offset: unknown, byteSize: unknown): void {
    this.assertAllowed();
    if (typeof name !== 'string' || name === '') throw new StubhostError('STUBHOST_INVALID_ARG', 'shared memory region name is empty; name the region');
    if (typeof key !== 'string' || key === '') {
      throw new StubhostError('STUBHOST_INVALID_ARG', `register '${name}': 'key' (the shm_open name, e.g. "/my_region") is required`);
    }
    if (this.regions.has(name)) {
      throw new StubhostError('STUBHOST_INVALID_ARG', `shared memory region '${name}' is already registered; unregister it first or use another name`);
    }
    if (!isNonNegativeInt(offset) || !isNonNegativeInt(byteSize) || byteSize === 0) {
      throw new StubhostError('STUBHOST_INVALID_ARG', `register '${name}': 'offset' must be a non-negative integer and 'byte_size' a positive one, got offset ${JSON.stringify(offset)}, byte_size ${JSON.stringify(byteSize)}`);
    }
    if (this.regions.size >= this.maxRegions) {
      throw new StubhostError('STUBHOST_RESOURCE_EXHAUSTED', `register '${name}': ${this.regions.size} shared memory regions are registered, the server's limit (--client-shm-max-regions ${this.maxRegions}); unregister regions no longer used`);
    }
    const file = ClientShmFile.open(name, key);
    try {
      const size = file.size();
      if (offset + byteSize > size) {
        throw new StubhostError('STUBHOST_INVALID_ARG', `register '${name}': offset ${offset} + byte_size ${byteSize} exceeds the ${size}-byte shared memory '${key}'`);
      }
    } catch (err) {
      file.close();
      throw err;
    }
    this.regions.set(name, { name, key, offset, byte_size: byteSize, file });
  }

  /**
   * Unregisters one region, or every region when `name` is undefined, closing their descriptors.
   * An unknown name is not an error (as in Triton). Refused while client shared memory is off.
   */
  unregister(name?: string): void {
    this.assertAllowed();
    if (name === undefined) this.closeAll();
    else this.drop(name);
  }

  /** Server shutdown: closes every region whatever the flag. */
  closeAll(): void {
    for (const name of [...this.regions.keys()]) this.drop(name);
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
   * Checks that `ref` names a registered region and lies inside its registered part; returns it.
   * `what` names the tensor in messages ("input 'X'").
   */
  lookup(ref: ShmRef, what: string): Registered {
    const r = this.regions.get(ref.region);
    if (!r) {
      const fix = this.allowed ? `register it first (/v2/systemsharedmemory/region/${ref.region}/register)` : `client shared memory is disabled on this server (it starts with '--allow-client-shm=true' to enable it)`;
      throw invalidInput(`${what}: shared memory region '${ref.region}' is not registered; ${fix}`);
    }
    if (!isNonNegativeInt(ref.offset) || !isNonNegativeInt(ref.byteSize) || ref.offset + ref.byteSize > r.byte_size) {
      throw invalidInput(`${what}: offset ${ref.offset} + byte size ${ref.byteSize} is outside shared memory region '${ref.region}' (${r.byte_size} bytes)`);
    }
    return r;
  }

  /** A copy of the `ref.byteSize` bytes at `ref.offset` in the region (bounds-checked; the file's size too). Not counted: sessions count. */
  readUncounted(ref: ShmRef, what: string): Uint8Array {
    const r = this.lookup(ref, what);
    return r.file.read(r.offset + ref.offset, ref.byteSize, { what, region: ref.region });
  }

  /**
   * Writes an output's serialized bytes into its region and returns the parameters the response
   * carries instead of data (Triton's: the region and the bytes written).
   */
  writeOutput(t: TensorValue, ref: ShmRef): Parameters {
    const what = `output '${t.name}'`;
    const r = this.lookup(ref, what);
    // Sized before it is serialized: a region too small costs no copy.
    const size = tensorByteLength(t);
    if (size > ref.byteSize) throw tooSmall(what, ref, size);
    const bytes = tensorBytes(t);
    r.file.write(r.offset + ref.offset, bytes, { what, region: ref.region });
    return { shared_memory_region: ref.region, shared_memory_byte_size: bytes.byteLength };
  }

  private drop(name: string): void {
    const r = this.regions.get(name);
    if (!r) return;
    this.regions.delete(name);
    r.file.close();
  }
}

/** One request's use of the registry: the bytes it copied out count against the budget until `release()`. */
export class ShmSession implements ShmAccess {
  private held = 0;

  constructor(private readonly registry: SharedMemoryRegistry) {}

  read(ref: ShmRef, what: string): Uint8Array {
    this.registry.lookup(ref, what); // refusals about the region come before the budget's
    this.registry.reserve(ref.byteSize, what, ref.region);
    try {
      const bytes = this.registry.readUncounted(ref, what);
      this.held += ref.byteSize;
      return bytes;
    } catch (err) {
      this.registry.unreserve(ref.byteSize);
      throw err;
    }
  }

  check(ref: ShmRef, what: string): void {
    this.registry.lookup(ref, what);
  }

  writeOutput(t: TensorValue, ref: ShmRef): Parameters {
    return this.registry.writeOutput(t, ref);
  }

  /** Copies of this session count against the budget (release() is due). */
  get holding(): boolean {
    return this.held > 0;
  }

  /** The request is answered: its copies no longer count. Safe to call twice. */
  release(): void {
    this.registry.unreserve(this.held);
    this.held = 0;
  }
}

/** A copy of an input's bytes from its region, for a front-end whose registry may be absent (then: unsupported). */
export function shmInputBytes(shm: ShmAccess | undefined, ref: ShmRef, name: string): Uint8Array {
  if (shm === undefined) throw shmUnsupported('input', name);
  return shm.read(ref, `input '${name}'`);
}

/** Before execution: an output's region is registered and its range lies inside it. */
export function checkShmOutput(shm: ShmAccess | undefined, ref: ShmRef, name: string): void {
  if (shm === undefined) throw shmUnsupported('output', name);
  shm.check(ref, `output '${name}'`);
}

/** Writes an output into its region; returns the output's parameters for the response (its own, then the region's). */
export function writeShmOutput(shm: ShmAccess | undefined, t: TensorValue, ref: ShmRef): Parameters {
  if (shm === undefined) throw shmUnsupported('output', t.name);
  return { ...withoutShmParameters(t.parameters), ...shm.writeOutput(t, ref) };
}

function tooSmall(what: string, ref: ShmRef, size: number): StubhostError {
  return invalidInput(`${what}: the result is ${size} bytes but shared_memory_byte_size is ${ref.byteSize} (region '${ref.region}'); give at least ${size} bytes`);
}

function strip(r: Registered): RegionStatus {
  return { name: r.name, key: r.key, offset: r.offset, byte_size: r.byte_size };
}
