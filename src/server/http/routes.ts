/**
 * The HTTP route table: every KServe v2 / Triton endpoint as method(s), path pattern, handler and
 * restriction category. `{model}`, `{version}` and `{region}` capture one non-empty path segment
 * (percent-decoded); an endpoint that takes an optional version is listed with and without it.
 *
 * The categories are the ones Triton's src/http_server.cc checks (RETURN_AND_RESPOND_IF_RESTRICTED
 * in each Handle* function): model ready is 'health', server and model metadata 'metadata', infer
 * and generate 'inference', CUDA and system shared memory 'shared-memory', the index and
 * load/unload 'model-repository', /v2/logging 'logging'.
 */
import type { RestrictedCategory } from '../restricted-features.js';
import type { RouteHandler, RouteParams } from './context.js';
import * as h from './handlers.js';
import { handleGenerate, handleGenerateStream, handleInfer } from './infer.js';

export interface Route {
  readonly methods: readonly string[];
  readonly path: string;
  readonly handler: RouteHandler;
  readonly category: RestrictedCategory;
}

const GET = ['GET'] as const;
const POST = ['POST'] as const;
const GET_POST = ['GET', 'POST'] as const;

/** `/v2/models/{model}` and `/v2/models/{model}/versions/{version}`, followed by `tail`. */
function withVersion(methods: readonly string[], tail: string, handler: RouteHandler, category: RestrictedCategory): Route[] {
  return [
    { methods, path: `/v2/models/{model}${tail}`, handler, category },
    { methods, path: `/v2/models/{model}/versions/{version}${tail}`, handler, category },
  ];
}

/** `/v2/<kind>/<op>` and `/v2/<kind>/region/{region}/<op>`. */
function withRegion(kind: string, methods: readonly string[], op: string, handler: RouteHandler, optional: boolean): Route[] {
  const one: Route = { methods, path: `/v2/${kind}/region/{region}/${op}`, handler, category: 'shared-memory' };
  return optional ? [{ ...one, path: `/v2/${kind}/${op}` }, one] : [one];
}

/** In order: the first pattern that matches a path wins. */
export const ROUTES: readonly Route[] = [
  { methods: GET, path: '/v2', handler: h.serverMetadata, category: 'metadata' },
  { methods: GET, path: '/v2/health/live', handler: h.live, category: 'health' },
  { methods: GET, path: '/v2/health/ready', handler: h.ready, category: 'health' },
  { methods: GET_POST, path: '/v2/logging', handler: h.logging, category: 'logging' },
  { methods: GET_POST, path: '/v2/trace/setting', handler: h.trace, category: 'trace' },
  ...withRegion('systemsharedmemory', GET, 'status', h.shmStatus, true),
  ...withRegion('systemsharedmemory', POST, 'register', h.shmRegister, false),
  ...withRegion('systemsharedmemory', POST, 'unregister', h.shmUnregister, true),
  ...withRegion('cudasharedmemory', GET, 'status', h.cudaShmStatusRoute, true),
  ...withRegion('cudasharedmemory', POST, 'register', h.cudaShmRegister, false),
  ...withRegion('cudasharedmemory', POST, 'unregister', h.cudaShmUnregister, true),
  { methods: POST, path: '/v2/repository/index', handler: h.repositoryIndex, category: 'model-repository' },
  { methods: POST, path: '/v2/repository/models/{model}/load', handler: h.load, category: 'model-repository' },
  { methods: POST, path: '/v2/repository/models/{model}/unload', handler: h.unload, category: 'model-repository' },
  // Triton reads /v2/models/stats as "statistics of every model", not a model named "stats".
  { methods: GET, path: '/v2/models/stats', handler: h.statistics, category: 'statistics' },
  ...withVersion(GET, '', h.modelMetadata, 'metadata'),
  // Triton's model trace route takes no version.
  { methods: GET_POST, path: '/v2/models/{model}/trace/setting', handler: h.trace, category: 'trace' },
  ...withVersion(GET, '/ready', h.modelReady, 'health'),
  ...withVersion(GET, '/config', h.modelConfig, 'model-config'),
  ...withVersion(POST, '/infer', handleInfer, 'inference'),
  ...withVersion(POST, '/generate', handleGenerate, 'inference'),
  ...withVersion(POST, '/generate_stream', handleGenerateStream, 'inference'),
  ...withVersion(GET, '/stats', h.statistics, 'statistics'),
];

type Capture = keyof RouteParams;

interface CompiledRoute {
  route: Route;
  /** A literal segment, or the capture it fills. */
  segments: readonly (string | { capture: Capture })[];
}

/** The table by segment count: a path is compared only with patterns of its length. */
const BY_LENGTH = new Map<number, CompiledRoute[]>();
for (const route of ROUTES) {
  const segments = route.path.split('/').map((s) => (s.startsWith('{') ? { capture: s.slice(1, -1) as Capture } : s));
  let list = BY_LENGTH.get(segments.length);
  if (list === undefined) BY_LENGTH.set(segments.length, (list = []));
  list.push({ route, segments });
}

export interface RouteMatch {
  route: Route;
  params: RouteParams;
}

/** The route of a path (no query); undefined: 404. Throws on bad percent-encoding. */
export function matchRoute(path: string): RouteMatch | undefined {
  const parts = path.split('/');
  const candidates = BY_LENGTH.get(parts.length);
  if (candidates === undefined) return undefined;
  next: for (const c of candidates) {
    const params: RouteParams = {};
    for (let i = 0; i < parts.length; i++) {
      const want = c.segments[i]!;
      const got = parts[i]!;
      if (typeof want === 'string') {
        if (want !== got) continue next;
      } else {
        if (got === '') continue next;
        params[want.capture] = decodeURIComponent(got);
      }
    }
    return { route: c.route, params };
  }
  return undefined;
}

/**
 * matchRoute() memoised per path: clients send the same few paths over and over, and splitting
 * and percent-decoding them costs more than a Map lookup. Matches are never mutated; paths with
 * no route (or bad encoding) are not kept, and the cache is emptied when it reaches its bound.
 */
const routeCache = new Map<string, RouteMatch>();
const ROUTE_CACHE_MAX = 256;

export function cachedRoute(path: string): RouteMatch | undefined {
  let r = routeCache.get(path);
  if (r !== undefined) return r;
  r = matchRoute(path);
  if (r !== undefined) {
    if (routeCache.size >= ROUTE_CACHE_MAX) routeCache.clear();
    routeCache.set(path, r);
  }
  return r;
}
