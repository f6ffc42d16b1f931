/**
 * `--cache-config <cache_name>,<key>=<value>` (repeatable), as Triton's server
 * src/command_line_parser.cc (ParseCacheConfigOption) reads it, with its words for a malformed
 * flag. stubhost has Triton's `local` cache only (an LRU in host memory, bounded in bytes; see
 * ./response-cache.ts), which takes one setting, `size`; any other cache or setting is refused.
 */

export class CacheConfigError extends Error {}

export interface CacheConfig {
  /** The `local` cache's bound, in bytes (> 0). */
  sizeBytes: number;
}

/** Parses the flag's values; undefined when none was given (no response cache, as Triton). */
export function parseCacheConfig(values: readonly string[]): CacheConfig | undefined {
  if (values.length === 0) return undefined;
  let size = 0;
  for (const arg of values) {
    const comma = arg.indexOf(',');
    if (comma <= 0) {
      throw new CacheConfigError(`No cache specified. --cache-config option format is <cache name>,<setting>=<value>. Got ${arg}`);
    }
    const eq = arg.indexOf('=', comma + 1);
    const formatError = () => new CacheConfigError(`--cache-config option format is '<cache name>,<setting>=<value>'. Got ${arg}`);
    if (eq < 0) throw formatError();
    const name = arg.slice(0, comma);
    const key = arg.slice(comma + 1, eq);
    const value = arg.slice(eq + 1);
    if (key === '' || value === '') throw formatError();
    if (name !== 'local') {
      throw new CacheConfigError(`--cache-config ${arg}: the cache '${name}' is not supported by stubhost; it has the 'local' cache only (--cache-config local,size=<bytes>)`);
    }
    if (key !== 'size') throw new CacheConfigError(`--cache-config ${arg}: the local cache has no setting '${key}'; its one setting is size=<bytes>`);
    const n = Number(value);
    if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n <= 0) {
      throw new CacheConfigError(`--cache-config ${arg}: size must be a whole number of bytes > 0`);
    }
    size = n;
  }
  return { sizeBytes: size };
}
