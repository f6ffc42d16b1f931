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
import { createLogger, type Logger } from '../log/logger.js';

export interface ServerOptions {
  modelRepository: string;
  modelControlMode?: 'none' | 'poll' | 'explicit';
  /** explicit mode: models to load at start ('*' = all). */
  loadModels?: string[];
  /** Undefined: that endpoint is off. 0: any free port. */
  httpPort?: number;
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
  /** Largest gRPC message. Default: maxBodyBytes (64 MiB). */
  grpcMaxMessageBytes?: number;
  /** gRPC connections open at once. Default: the file-descriptor budget, shared with HTTP. */
  grpcMaxConnections?: number;
  metricsPort?: number;
  stubTimeoutMs?: number;
  arenaMaxBytes?: number;
  rateLimit?: 'off' | 'execution_count';
  rateLimitResources?: string[];
  /** Ready only when every model is ready, a failed load included (Triton's --strict-readiness). Default true. */
  strictReadiness?: boolean;
  /** Poll interval for poll mode (the CLI's --repository-poll-secs, in ms). */
  pollIntervalMs?: number;
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

export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  const logger = opts.logger ?? createLogger();
  const root = path.resolve(opts.modelRepository);
  const connectionCaps = connectionCapsOf(opts, raiseFdLimit(), logger);
  const swept = sweepOrphans();
  if (swept > 0) logger.info(`removed ${swept} shared-memory files left by stubhost processes that no longer run`);
  const metrics = new Metrics();
  const rateLimiter = new RateLimiter(opts.rateLimit ?? 'off', opts.rateLimitResources ?? []);
  const core = new ServerCore({ root, logger, metrics, rateLimiter, stubTimeoutMs: opts.stubTimeoutMs ?? 1000, arenaMaxBytes: opts.arenaMaxBytes, strictReadiness: opts.strictReadiness });

  const shm = new SharedMemoryRegistry();
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
  const mode = opts.modelControlMode ?? 'none';
  const failed = new Map<string, string>();
  try {
    // Endpoints come up first (live, not ready) so health checks answer while models load.
    if (opts.httpPort !== undefined) {
      const http = new HttpServer(core, {
        port: opts.httpPort, host: opts.httpAddress, maxBodyBytes: opts.maxBodyBytes, logger: log, shm,
        requestTimeoutMs: opts.httpRequestTimeoutMs, headersTimeoutMs: opts.httpHeadersTimeoutMs, keepAliveTimeoutMs: opts.httpKeepAliveTimeoutMs,
        maxConnections: connectionCaps.http,
      });
      ports.http = await bind('HTTP', '--http-port', opts.httpPort, () => http.start());
      endpoints.push(http);
      logger.info(`HTTP service listening on port ${ports.http}`, { port: ports.http, service: 'http' });
    }
    if (opts.grpcPort !== undefined) {
      const grpc = new GrpcServer(core, {
        port: opts.grpcPort, logger: log, shm,
        maxMessageBytes: opts.grpcMaxMessageBytes ?? opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
        maxConnections: connectionCaps.grpc,
      });
      ports.grpc = await bind('gRPC', '--grpc-port', opts.grpcPort, () => grpc.start());
      endpoints.push(grpc);
      logger.info(`gRPC service listening on port ${ports.grpc}`, { port: ports.grpc, service: 'grpc' });
    }
    if (opts.metricsPort !== undefined) {
      const ms = new MetricsServer(metrics, { port: opts.metricsPort });
      ports.metrics = await bind('metrics', '--metrics-port', opts.metricsPort, () => ms.start());
      endpoints.push(ms);
      logger.info(`metrics service listening on port ${ports.metrics}`, { port: ports.metrics, service: 'metrics' });
    }

    const list = opts.loadModels ?? [];
    const names = mode === 'explicit' ? (list.includes('*') ? undefined : list) : undefined;
    if (mode !== 'explicit' || names === undefined || names.length > 0) {
      logger.info(`loading models from ${root}`);
      let ok = 0;
      await core.repository.loadAll(names, (name, err) => {
        if (err) {
          failed.set(name, err.message);
          logger.error(`model '${name}' failed to load: ${err.message}`, { model: name });
        } else {
          ok++;
          logger.info(`model '${name}' is ready`, { model: name });
        }
      });
      logger.info(`${ok} model(s) ready, ${failed.size} failed`, { ready: ok, failed: failed.size });
    }
  } catch (err) {
    // Whatever opened stops again, so a failed start exits instead of hanging on open sockets.
    await Promise.all(endpoints.map((e) => e.close().catch(() => {})));
    await core.close().catch(() => {});
    throw err;
  }
  core.markStarted();

  let pollTimer: NodeJS.Timeout | undefined;
  let closed = false;
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

  let endpointsClosed: Promise<void> | undefined;
  const closeEndpoints = (): Promise<void> =>
    (endpointsClosed ??= Promise.all(endpoints.map((e) => e.close().catch(() => {}))).then(() => {}));

  return {
    core, shm, metrics, ports, failed, closeEndpoints,
    async close() {
      if (closed) return;
      closed = true;
      if (pollTimer) clearTimeout(pollTimer);
      // As Triton on SIGTERM: requests already queued or running finish and their answers still
      // reach the clients (the endpoints stay up while the models drain and finalize); new ones
      // are refused because every model is unloading. Only then do the endpoints close.
      await core.close();
      await closeEndpoints();
      shm.unregister();
    },
  };
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

/** Starts an endpoint; a port that cannot be bound is named with its flag. */
async function bind(what: string, flag: string, port: number, start: () => Promise<number>): Promise<number> {
  try {
    return await start();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const text = (err as Error).message;
    const why = code === 'EADDRINUSE' || /EADDRINUSE/.test(text) ? 'the port is in use' : code === 'EACCES' || /EACCES/.test(text) ? 'permission denied' : text;
    throw new StubhostError('STUBHOST_UNAVAILABLE', `${what} endpoint cannot listen on port ${port}: ${why}; free it or choose another with ${flag} (0 picks a free port)`, { cause: err });
  }
}
