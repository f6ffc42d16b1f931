/**
 * Triton's response cache, `local` implementation: results of earlier requests, looked up by a
 * hash of the request, shared by every model that enables it (`response_cache { enable: true }`),
 * bounded in bytes and evicting the least recently used entries first (as Triton's local_cache
 * src/local_cache.cc: an entry larger than the whole cache is not stored).
 *
 * The key (see `responseCacheKey`) covers what Triton's core hashes (src/cache_manager.cc,
 * TritonCache::Hash: model name, version, each input's name and bytes, inputs sorted by name)
 * plus what else a model can see and answer differently to: each input's datatype and shape (the
 * same bytes as [2,3] and [3,2] are different requests), its parameters, the request's
 * parameters, its correlation id and the outputs it names. It is a SHA-256 digest, so distinct
 * requests do not collide (Triton's 64-bit boost hash can).
 */
import { createHash } from 'node:crypto';
import type { NumericTypedArray } from '../core/dtypes.js';
import type { InferRequest, Parameters, TensorValue } from '../core/types.js';

export interface CachedResult {
  outputs: TensorValue[];
  parameters?: Parameters;
}

interface Entry {
  result: CachedResult;
  bytes: number;
}

/** Running totals, for the nv_cache_* metrics of the local cache. */
export interface ResponseCacheCounters {
  entries: number;
  bytes: number;
  lookups: number;
  hits: number;
  misses: number;
  evictions: number;
  lookupUs: number;
  insertUs: number;
}

/** Per-entry bookkeeping counted against the bound beside the tensor bytes. */
const ENTRY_OVERHEAD = 64;

function tensorBytes(t: TensorValue): number {
  let n = ENTRY_OVERHEAD + t.name.length + t.shape.length * 8;
  if (Array.isArray(t.data)) for (const e of t.data) n += 4 + e.byteLength;
  else n += (t.data as NumericTypedArray).byteLength;
  return n;
}

export class ResponseCache {
  /** Map order is recency: the first key is the least recently used. */
  private readonly entries = new Map<string, Entry>();
  private used = 0;
  readonly counters: ResponseCacheCounters = { entries: 0, bytes: 0, lookups: 0, hits: 0, misses: 0, evictions: 0, lookupUs: 0, insertUs: 0 };

  constructor(readonly sizeBytes: number) {}

  /** The cached result for `key` (now the most recently used), or undefined. */
  lookup(key: string): CachedResult | undefined {
    const started = performance.now();
    this.counters.lookups++;
    const e = this.entries.get(key);
    if (e) {
      this.entries.delete(key);
      this.entries.set(key, e);
      this.counters.hits++;
    } else {
      this.counters.misses++;
    }
    this.counters.lookupUs += (performance.now() - started) * 1e3;
    return e?.result;
  }

  /**
   * Stores a result, evicting least recently used entries until it fits. Returns false when it
   * is larger than the whole cache (nothing is evicted then).
   */
  insert(key: string, result: CachedResult): boolean {
    const started = performance.now();
    try {
      const bytes = key.length + result.outputs.reduce((n, t) => n + tensorBytes(t), ENTRY_OVERHEAD);
      if (bytes > this.sizeBytes) return false;
      const old = this.entries.get(key);
      if (old) {
        this.entries.delete(key);
        this.used -= old.bytes;
      }
      while (this.used + bytes > this.sizeBytes) {
        const [lruKey, lru] = this.entries.entries().next().value as [string, Entry];
        this.entries.delete(lruKey);
        this.used -= lru.bytes;
        this.counters.evictions++;
      }
      // Outputs are private copies (the stub's arena blocks were copied out); their metadata is copied here.
      this.entries.set(key, { result: { outputs: result.outputs.map((t) => ({ ...t, shape: [...t.shape] })), parameters: result.parameters }, bytes });
      this.used += bytes;
      return true;
    } finally {
      this.counters.entries = this.entries.size;
      this.counters.bytes = this.used;
      this.counters.insertUs += (performance.now() - started) * 1e3;
    }
  }

  /** Fraction of the bound in use, 0..1 (Triton's nv_cache_util). */
  get utilization(): number {
    return this.used / this.sizeBytes;
  }
}

function sortedParams(p: Parameters | undefined): string {
  if (p === undefined) return '{}';
  return JSON.stringify(Object.keys(p).sort().map((k) => [k, p[k]]));
}

/**
 * The cache key of `request` to model `model` version `version` (see the file comment).
 * `generation` tells loads of the same version apart, so a reloaded model (new code or config
 * under the same version number) never gets the old one's answers; those age out of the LRU.
 */
export function responseCacheKey(model: string, version: number, request: InferRequest, generation = 0): string {
  const h = createHash('sha256');
  const field = (s: string): void => {
    h.update(`${s.length}:`);
    h.update(s);
  };
  field(model);
  field(String(version));
  field(String(generation));
  const inputs = [...request.inputs].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  field(String(inputs.length));
  for (const t of inputs) {
    field(t.name);
    field(t.datatype);
    field(t.shape.join(','));
    field(sortedParams(t.parameters));
    if (Array.isArray(t.data)) {
      field(String(t.data.length));
      for (const e of t.data) {
        field(String(e.byteLength));
        h.update(e);
      }
    } else {
      const d = t.data as NumericTypedArray;
      field(String(d.byteLength));
      h.update(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
    }
  }
  field(sortedParams(request.parameters));
  field(request.correlationId === undefined ? '' : String(request.correlationId));
  field((request.outputs ?? []).map((o) => o.name).sort().join('\0'));
  return h.digest('hex');
}
