/**
 * Response cache metrics with Triton's names and help texts: per model (core src/metrics.cc,
 * registered by src/metric_model_reporter.cc only for models that use the cache) and for the
 * local cache as a whole (local_cache src/local_cache.cc, InitMetrics). Registered only when the
 * server has a cache (--cache-config), as Triton shows them only then.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { ResponseCache, ResponseCacheCounters } from '../cache/response-cache.js';

export interface CacheSeries {
  readonly labels: Readonly<{ model: string; version: string }>;
  hits: number;
  misses: number;
  hitUs: number;
  missUs: number;
}

type SeriesField = 'hits' | 'misses' | 'hitUs' | 'missUs';

export class CacheMetrics {
  private readonly series = new Map<string, CacheSeries>();

  constructor(registry: Registry, cache: ResponseCache) {
    const registers = [registry];
    const all = this.series;
    const perModel = (name: string, help: string, field: SeriesField) => new Counter({
      name, help, labelNames: ['model', 'version'], registers,
      collect() {
        this.reset();
        for (const s of all.values()) this.inc(s.labels, s[field]);
      },
    });
    perModel('nv_cache_num_hits_per_model', 'Number of cache hits per model', 'hits');
    perModel('nv_cache_hit_duration_per_model', 'Total cache hit duration per model, in microseconds', 'hitUs');
    perModel('nv_cache_num_misses_per_model', 'Number of cache misses per model', 'misses');
    perModel('nv_cache_miss_duration_per_model', 'Total cache miss (insert+lookup) duration per model, in microseconds', 'missUs');
    const gauge = (name: string, help: string, read: (c: ResponseCacheCounters) => number) => new Gauge({
      name, help, registers,
      collect() {
        this.set(read(cache.counters));
      },
    });
    new Gauge({ name: 'nv_cache_util', help: 'Cache utilization [0.0 - 1.0]', registers, collect() { this.set(cache.utilization); } });
    gauge('nv_cache_num_entries', 'Number of responses stored in response cache', (c) => c.entries);
    gauge('nv_cache_num_hits', 'Number of cache hits in response cache', (c) => c.hits);
    gauge('nv_cache_num_misses', 'Number of cache misses in response cache', (c) => c.misses);
    gauge('nv_cache_num_lookups', 'Number of cache lookups in response cache', (c) => c.lookups);
    gauge('nv_cache_num_evictions', 'Number of cache evictions in response cache', (c) => c.evictions);
    gauge('nv_cache_lookup_duration', 'Total cache lookup duration (hit and miss), in microseconds', (c) => c.lookupUs);
    gauge('nv_cache_insertion_duration', 'Total cache insertion duration, in microseconds', (c) => c.insertUs);
  }

  /** The series of one model version that uses the cache, created at 0. */
  model(name: string, version: string): CacheSeries {
    const key = `${name}\0${version}`;
    let s = this.series.get(key);
    if (!s) this.series.set(key, (s = { labels: Object.freeze({ model: name, version }), hits: 0, misses: 0, hitUs: 0, missUs: 0 }));
    return s;
  }

  remove(name: string, version: string): void {
    this.series.delete(`${name}\0${version}`);
  }
}
