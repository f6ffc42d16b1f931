/**
 * One model version's use of the response cache: a request whose key is cached is answered from
 * it without reaching the scheduler; any other runs and its result is stored. Statistics as
 * Triton's (core src/infer_stats.cc): a hit is a success with a cache_hit and no compute; a miss
 * adds its lookup and insertion time to the request and to cache_miss. Failed requests are not
 * stored.
 */
import type { InferRequest, InferResult, TensorValue } from '../core/types.js';
import type { ModelConfig } from '../config/schema.js';
import type { Logger } from '../log/logger.js';
import type { ModelStatsRecorder } from '../metrics/model-stats.js';
import { responseCacheKey, type ResponseCache } from './response-cache.js';

export interface CacheUse {
  cache: ResponseCache;
  model: string;
  version: number;
  stats: ModelStatsRecorder;
  logger?: Logger;
  /** This load of the version (see responseCacheKey). */
  generation: number;
}

let loads = 0;

export async function inferThroughCache(use: CacheUse, request: InferRequest, run: (request: InferRequest) => Promise<InferResult>): Promise<InferResult> {
  const started = performance.now();
  const key = responseCacheKey(use.model, use.version, request, use.generation);
  const hit = use.cache.lookup(key);
  if (hit) {
    const result: InferResult = {
      modelName: use.model, modelVersion: String(use.version), id: request.id,
      outputs: hit.outputs.map((t) => ({ ...t })), parameters: hit.parameters,
    };
    const ns = (performance.now() - started) * 1e6;
    use.stats.recordCacheHit({ requestNs: ns, hitNs: ns });
    use.logger?.verbose(`response cache hit for model '${use.model}' version ${use.version}`, { model: use.model, key }, 2);
    return result;
  }
  const lookupMs = performance.now() - started;
  const result = await run(request);
  const inserting = performance.now();
  // Outputs placed in a BLS caller's arena live only as long as its call: the cache keeps a copy.
  const outputs = request.outputPlacement ? result.outputs.map(privateCopy) : result.outputs;
  const stored = use.cache.insert(key, { outputs, parameters: result.parameters });
  if (!stored) {
    use.logger?.verbose(`response of model '${use.model}' is larger than the whole response cache (${use.cache.sizeBytes} bytes); not cached`, { model: use.model }, 1);
  }
  use.stats.recordCacheMiss((lookupMs + performance.now() - inserting) * 1e6);
  return result;
}

/** Numeric data only is ever placed (see OutputPlacement); BYTES elements are private already. */
function privateCopy(t: TensorValue): TensorValue {
  return Array.isArray(t.data) ? t : { ...t, data: t.data.slice() };
}

/**
 * The version's use of the response cache: when its config enables it and the server has one.
 * Enabled without a server cache, Triton serves uncached without a word; here the load says so.
 */
export function cacheUseOf(config: ModelConfig, cache: ResponseCache | undefined, stats: ModelStatsRecorder, logger: Logger, label: string): CacheUse | undefined {
  if (!config.response_cache?.enable) return undefined;
  if (!cache) {
    logger.warn(`${label} enables response_cache but the server has no response cache; its requests are not cached (start with --cache-config local,size=<bytes>)`, { model: config.name });
    return undefined;
  }
  stats.enableCache();
  return { cache, model: stats.model, version: Number(stats.version), stats, logger, generation: ++loads };
}
