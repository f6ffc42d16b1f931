/**
 * Assembles a server: core (repository, schedulers, stubs), HTTP, gRPC and metrics endpoints,
 * and the initial model load. The CLI and the integration tests both start servers this way.
 */
import fs from 'node:fs';
import path from 'node:path';
import { StubhostError } from '../errors.js';
import { ServerCore } from './core.js';
import { DEFAULT_MAX_BODY_BYTES, HttpServer } from './http/server.js';
import { fdBudget, raiseFdLimit } from './fd-limit.js';
import { GrpcServer } from './grpc/server.js';
import { SharedMemoryRegistry } from './shm-registry.js';
import { Metrics, MetricsServer } from '../metrics/index.js';
import { RateLimiter } from '../scheduler/rate-limiter.js';
import { sweepOrphans } from '../ipc/shm-sweep.js';
import { sweepOrphanUploads } from '../repository/upload.js';
import { reportSlowLoads } from '../repository/load-progress.js';
import { loadGrpcTls, type GrpcTlsFiles } from './grpc/tls.js';
import type { RestrictedFeatures } from './restricted-features.js';
import { parseHeaderForwardPattern } from './header-forward.js';
import { defaultStubMemoryLimitBytes } from '../instance/process-memory.js';
import { createLogger, type Logger } from '../log/logger.js';
import { ResponseCache } from '../cache/response-cache.js';

export interface ServerOptions {
  modelRepository: string;
  modelControlMode?: 'none' | 'poll' | 'explicit';
  /** explicit mode: models to load at start ('*' = all). */
  loadModels?: string[];
  /** Undefined: that endpoint is off. 0: any free port. */
  httpPort?: number;
  /** Address HTTP binds. Default 0.0.0.0, as Triton's --http-address. */
  httpAddress?: string;
  /** Largest HTTP request body accepted (413 beyond it). Default: the HTTP server's 64 MiB. */
  maxBodyBytes?: number;
  /** HTTP: the whole request must arrive within this (408 otherwise; 0 = no limit). Default 60 s. */
  httpRequestTimeoutMs?: number;
  /** HTTP: the request headers must arrive within this. Default 20 s. */
  httpHeadersTimeoutMs?: number;
  /** HTTP: idle keep-alive connections close after this. Default Node's 5 s. */
  httpKeepAliveTimeoutMs?: number;
  /** HTTP connections open at once. Default: the file-descriptor budget (see fd-limit.ts), shared with gRPC. */
  httpMaxConnections?: number;
  grpcPort?: number;
  /** Address gRPC binds. Default 0.0.0.0, as Triton's --grpc-address. */
  grpcAddress?: string;
  /** gRPC over TLS (mutual TLS with `mutual`); the files are read and checked before any port opens. */
  grpcTls?: GrpcTlsFiles;
  /** Largest gRPC message. Default: maxBodyBytes (64 MiB). */
  grpcMaxMessageBytes?: number;
  /** gRPC connections open at once. Default: the file-descriptor budget, shared with HTTP. */
  grpcMaxConnections?: number;
  metricsPort?: number;
  /** Address metrics binds. Default: httpAddress, as Triton's --metrics-address. */
  metricsAddress?: string;
  /** HTTP API categories that need a header (Triton's --http-restricted-api). */
  httpRestrictedApis?: RestrictedFeatures;
  /** Headers of HTTP infer requests whose name matches become request parameters (Triton's --http-header-forward-pattern). */
  httpHeaderForwardPattern?: string;
  /** gRPC protocol categories that need a metadata key (Triton's --grpc-restricted-protocol). */
  grpcRestrictedProtocols?: RestrictedFeatures;
  stubTimeoutMs?: number;
  arenaMaxBytes?: number;
  /** Clients may register system shared memory (Triton's --allow-client-shm). Default false, as Triton's. */
  allowClientShm?: boolean;
  /** Most client shared-memory regions registered at once (--client-shm-max-regions). Default 1024. */
  clientShmMaxRegions?: number;
  /** Most bytes copied out of client regions for requests in flight (--client-shm-max-inflight-bytes). Default 1 GiB. */
  clientShmMaxInflightBytes?: number;
  /** Cap on one stub's resident memory (model parameter memory_limit_bytes overrides; 0 = none). Default: half the machine's memory. */
  stubMemoryLimitBytes?: number;
  /** How long unload, reload and close let running executes finish before killing their stubs (default 30 s). */
  unloadGraceMs?: number;
  /** Executes running longer are reported in the log, metrics and statistics (0 = off; default 60 s). */
  executeWarnMs?: number;
  rateLimit?: 'off' | 'execution_count';
  rateLimitResources?: string[];
  /** Ready only when every model is ready, a failed load included (Triton's --strict-readiness). Default true. */
  strictReadiness?: boolean;
  /** Poll interval for poll mode (the CLI's --repository-poll-secs, in ms). */
  pollIntervalMs?: number;
  /** Triton's local response cache (--cache-config local,size=<bytes>); none when undefined. */
  responseCacheBytes?: number;
  /** A log line names the models still loading every this long, while a load takes longer (default 5 s). */
  loadProgressIntervalMs?: number;
  logger?: Logger;
}

export interface RunningServer {
  core: ServerCore;
  /** System shared-memory regions clients registered, shared by the HTTP and gRPC endpoints. */
  shm: SharedMemoryRegistry;
  metrics: Metrics;
  /** Bound ports of the endpoints that are on. */
  ports: { http?: number; grpc?: number; metrics?: number };
  /** Models that failed to load at start, with why. */
  failed: Map<string, string>;
  /** Lets queued and running requests finish, unloads every model (finalize runs), then stops the endpoints. Safe to call twice. */
  close(): Promise<void>;
  /**
   * Closes the HTTP, gRPC and metrics endpoints now: requests still in flight get a 503 /
   * UNAVAILABLE "shutting down" answer instead of a reset. For the CLI when --exit-timeout-secs
   * runs out while a model still works. Safe to call twice, and close() calls it.
   */
  closeEndpoints(): Promise<void>;
}

/** Default of ServerOptions.executeWarnMs (--execute-warn-secs 60). */
export const DEFAULT_EXECUTE_WARN_MS = 60_000;

export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  const logger = opts.logger ?? createLogger();
  const root = path.resolve(opts.modelRepository);
  const headerForwardPattern = opts.httpHeaderForwardPattern === undefined ? undefined : parseHeaderForwardPattern(opts.httpHeaderForwardPattern);
  const connectionCaps = connectionCapsOf(opts, raiseFdLimit(), logger);
  const swept = sweepOrphans();
  if (swept > 0) logger.info(`removed ${swept} shared-memory files left by stubhost processes that no longer run`);
  const sweptUploads = sweepOrphanUploads();
  if (sweptUploads > 0) logger.info(`removed ${sweptUploads} uploaded-model folders left by stubhost processes that no longer run`);
  const mode = opts.modelControlMode ?? 'none';
  const metrics = new Metrics();
  const rateLimiter = new RateLimiter(opts.rateLimit ?? 'off', opts.rateLimitResources ?? []);
  const responseCache = opts.responseCacheBytes !== undefined ? new ResponseCache(opts.responseCacheBytes) : undefined;
  if (responseCache) {
    metrics.enableCache(responseCache);
    logger.info(`Response Cache is created with size ${responseCache.sizeBytes}`); // as Triton's local_cache
  }
  const core = new ServerCore({
    root, logger, metrics, rateLimiter, stubTimeoutMs: opts.stubTimeoutMs ?? 1000, arenaMaxBytes: opts.arenaMaxBytes,
    strictReadiness: opts.strictReadiness, modelControlMode: mode,
    stubMemoryLimitBytes: opts.stubMemoryLimitBytes ?? defaultStubMemoryLimitBytes(),
    unloadGraceMs: opts.unloadGraceMs,
    executeWarnMs: opts.executeWarnMs ?? DEFAULT_EXECUTE_WARN_MS,
    responseCache,
  });

  const shm = new SharedMemoryRegistry({ allowClientShm: opts.allowClientShm, maxRegions: opts.clientShmMaxRegions, maxInflightBytes: opts.clientShmMaxInflightBytes });
  const endpoints: { close(): Promise<void> }[] = [];
  const ports: RunningServer['ports'] = {};
  const log = { info: (m: string) => logger.info(m), warn: (m: string) => logger.warn(m), error: (m: string) => logger.error(m) };
  // A missing repository fails the start (as Triton's "failed to stat"), before any port opens.
  let isDir = false;
  try {
    isDir = fs.statSync(root).isDirectory();
  } catch (err) {
    throw new StubhostError('STUBHOST_NOT_FOUND', `model repository ${root} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); give an existing folder to --model-repository`);
  }
  if (!isDir) throw new StubhostError('STUBHOST_INVALID_ARG', `model repository ${root} is not a folder; give the folder that holds the model folders to --model-repository`);
  const failed = new Map<string, string>();
  let pollTimer: NodeJS.Timeout | undefined;
  let closed = false;
  const progress = reportSlowLoads(() => core.repository.loadsInProgress(), logger, opts.loadProgressIntervalMs);
  // Triton's defaults (src/command_line_parser.cc): every endpoint on 0.0.0.0, metrics on the HTTP address.
  const httpAddress = opts.httpAddress ?? '0.0.0.0';
  const grpcAddress = opts.grpcAddress ?? '0.0.0.0';
  const metricsAddress = opts.metricsAddress ?? httpAddress;
  const grpcTls = opts.grpcPort !== undefined && opts.grpcTls !== undefined ? loadGrpcTls(opts.grpcTls) : undefined;
  try {
    // Endpoints come up first (live, not ready) so health checks answer while models load.
    if (opts.httpPort !== undefined) {
      const http = new HttpServer(core, {
        port: opts.httpPort, host: httpAddress, maxBodyBytes: opts.maxBodyBytes, logger: log, shm, restrictedApis: opts.httpRestrictedApis, headerForwardPattern,
        requestTimeoutMs: opts.httpRequestTimeoutMs, headersTimeoutMs: opts.httpHeadersTimeoutMs, keepAliveTimeoutMs: opts.httpKeepAliveTimeoutMs,
        maxConnections: connectionCaps.http,
      });
      ports.http = await bind('HTTP', '--http', httpAddress, opts.httpPort, () => http.start());
      endpoints.push(http);
      logger.info(`HTTP service listening on ${httpAddress}:${ports.http}`, { port: ports.http, address: httpAddress, service: 'http' });
      logRestrictions(logger, 'HTTP', opts.httpRestrictedApis);
    }
    if (opts.grpcPort !== undefined) {
      const grpc = new GrpcServer(core, {
        port: opts.grpcPort, host: grpcAddress, logger: log, shm, restrictedProtocols: opts.grpcRestrictedProtocols, tls: grpcTls,
        maxMessageBytes: opts.grpcMaxMessageBytes ?? opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
        maxConnections: connectionCaps.grpc,
      });
      ports.grpc = await bind('gRPC', '--grpc', grpcAddress, opts.grpcPort, () => grpc.start());
      endpoints.push(grpc);
      const security = grpcTls === undefined ? 'plaintext' : grpcTls.mutual ? 'mutual TLS' : 'TLS';
      logger.info(`gRPC service listening on ${grpcAddress}:${ports.grpc} (${security})`, { port: ports.grpc, address: grpcAddress, service: 'grpc', security });
      logRestrictions(logger, 'gRPC', opts.grpcRestrictedProtocols);
    }
    if (opts.metricsPort !== undefined) {
      const ms = new MetricsServer(metrics, { port: opts.metricsPort, host: metricsAddress });
      ports.metrics = await bind('metrics', '--metrics', metricsAddress, opts.metricsPort, () => ms.start());
      endpoints.push(ms);
      logger.info(`metrics service listening on ${metricsAddress}:${ports.metrics}`, { port: ports.metrics, address: metricsAddress, service: 'metrics' });
    }

    // Polling runs from the start, while the initial loads are still in progress: an edit to one
    // model does not wait for another one's long initialize.
    if (mode === 'poll') {
      const interval = Math.max(100, opts.pollIntervalMs ?? 15_000);
      const tick = async (): Promise<void> => {
        try {
          await core.repository.poll();
        } catch (err) {
          logger.error(`repository poll failed: ${(err as Error).message}`);
        }
        if (!closed) pollTimer = setTimeout(tick, interval);
      };
      pollTimer = setTimeout(tick, interval);
    }
    const list = opts.loadModels ?? [];
    const names = mode === 'explicit' ? (list.includes('*') ? undefined : list) : undefined;
    if (mode !== 'explicit' || names === undefined || names.length > 0) {
      logger.info(`loading models from ${root}`);
      let ok = 0;
      // Each outcome is logged by the repository, with its reason.
      await core.repository.loadAll(names, (name, err) => {
        if (err) failed.set(name, err.message);
        else ok++;
      });
      logger.info(`${ok} model(s) ready, ${failed.size} failed`, { ready: ok, failed: failed.size });
    }
  } catch (err) {
    // Whatever opened stops again, so a failed start exits instead of hanging on open sockets.
    closed = true;
    if (pollTimer) clearTimeout(pollTimer);
    progress.stop();
    await Promise.all(endpoints.map((e) => e.close().catch(() => {})));
    await core.close().catch(() => {});
    throw err;
  }
  core.markStarted();

  let endpointsClosed: Promise<void> | undefined;
  const closeEndpoints = (): Promise<void> =>
    (endpointsClosed ??= Promise.all(endpoints.map((e) => e.close().catch(() => {}))).then(() => {}));

  return {
    core, shm, metrics, ports, failed, closeEndpoints,
    async close() {
      if (closed) return;
      closed = true;
      if (pollTimer) clearTimeout(pollTimer);
      progress.stop();
      // As Triton on SIGTERM: requests already queued or running finish and their answers still
      // reach the clients (the endpoints stay up while the models drain and finalize); new ones
      // are refused because every model is unloading. Only then do the endpoints close.
      await core.close();
      await closeEndpoints();
      shm.closeAll();
    },
  };
}

/** Which categories need which header (never the value), so an operator can see what is open. */
function logRestrictions(logger: Logger, what: string, restrictions: RestrictedFeatures | undefined): void {
  if (restrictions === undefined || restrictions.size === 0) return;
  const byHeader = new Map<string, string[]>();
  for (const [category, r] of restrictions.entries()) byHeader.set(r.header, [...(byHeader.get(r.header) ?? []), category]);
  for (const [header, categories] of byHeader) {
    logger.info(`${what}: ${categories.join(', ')} restricted to requests with header '${header}'`, { service: what.toLowerCase(), restricted: categories, header });
  }
}

/**
 * The connection caps of the HTTP and gRPC endpoints: together under the file-descriptor limit,
 * with a reserve for stubs and files (fd-limit.ts). Unset caps share what is left equally; caps
 * given that exceed the budget fail the start, naming the limit.
 */
function connectionCapsOf(opts: ServerOptions, limit: number, logger: Logger): { http?: number; grpc?: number } {
  const budget = fdBudget(limit);
  const httpOn = opts.httpPort !== undefined;
  const grpcOn = opts.grpcPort !== undefined;
  const given = (httpOn ? opts.httpMaxConnections ?? 0 : 0) + (grpcOn ? opts.grpcMaxConnections ?? 0 : 0);
  if (given > budget.maxConnections) {
    throw new StubhostError('STUBHOST_INVALID_ARG', `--http-max-connections and --grpc-max-connections (${given} in all) exceed the ${budget.maxConnections} connections the file-descriptor limit of ${budget.limit} allows (${budget.reserve} are kept for stubs and files); lower them, or raise the hard limit (ulimit -Hn)`);
  }
  const unset = (httpOn && opts.httpMaxConnections === undefined ? 1 : 0) + (grpcOn && opts.grpcMaxConnections === undefined ? 1 : 0);
  const share = unset > 0 ? Math.max(1, Math.floor((budget.maxConnections - given) / unset)) : 0;
  const caps = {
    http: httpOn ? opts.httpMaxConnections ?? share : undefined,
    grpc: grpcOn ? opts.grpcMaxConnections ?? share : undefined,
  };
  logger.info(`file descriptors: limit ${budget.limit}, ${budget.reserve} reserved; connection caps: HTTP ${caps.http ?? 'off'}, gRPC ${caps.grpc ?? 'off'}`);
  return caps;
}

/**
 * Starts an endpoint; a port or an address that cannot be bound is named with its flag
 * (`<flagPrefix>-port`, `<flagPrefix>-address`).
 */
async function bind(what: string, flagPrefix: string, address: string, port: number, start: () => Promise<number>): Promise<number> {
  try {
    return await start();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const text = (err as Error).message;
    // grpc-js reports the listen error inside its own text, so codes are looked for in both.
    const has = (c: string): boolean => code === c || text.includes(c);
    const addressWhy = has('EADDRNOTAVAIL') ? 'no network interface of this machine has that address' : has('ENOTFOUND') || has('EAI_AGAIN') ? 'the name does not resolve' : undefined;
    if (addressWhy !== undefined && !has('EADDRINUSE')) {
      throw new StubhostError('STUBHOST_UNAVAILABLE', `${what} endpoint cannot listen on address ${address} (port ${port}): ${addressWhy}; choose another with ${flagPrefix}-address (0.0.0.0 = every interface, 127.0.0.1 = this machine only)`, { cause: err });
    }
    const why = has('EADDRINUSE') ? 'the port is in use' : has('EACCES') ? 'permission denied' : text;
    throw new StubhostError('STUBHOST_UNAVAILABLE', `${what} endpoint cannot listen on port ${port}: ${why}; free it or choose another with ${flagPrefix}-port (0 picks a free port)`, { cause: err });
  }
}
