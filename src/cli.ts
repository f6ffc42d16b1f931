/**
 * `stubhost serve --model-repository <dir> ...`: Triton's flag names where Triton has them.
 */
import { parseArgs } from 'node:util';
import { DEFAULT_CLIENT_SHM_MAX_INFLIGHT_BYTES, DEFAULT_CLIENT_SHM_MAX_REGIONS } from './server/shm-registry.js';
import { createLogger, logSettings, setLogFile } from './log/logger.js';
import { CacheConfigError, parseCacheConfig } from './cache/cache-config.js';
import { GRPC_RESTRICTED_PROTOCOL, HTTP_RESTRICTED_API, RestrictedOptionError, parseRestrictedFeatures } from './server/restricted-features.js';
import { AUTHORING_COMMANDS, AUTHORING_HELP } from './authoring/help.js';
import { parseHeaderForwardPattern } from './server/header-forward.js';
import { packageVersion } from './tools/package-info.js';

export const HELP = `stubhost: a Triton-style inference server for TypeScript models

Usage:
  stubhost serve --model-repository <dir> [options]
  stubhost dev --model-repository <dir> [options]
                                 Serve, and reload a model as its files are saved: it is
                                 type-checked first (errors with file:line in the log; the
                                 old version keeps serving). Takes serve's options except
                                 --model-control-mode, --load-model, --repository-poll-secs.
${AUTHORING_HELP}  stubhost --version
  stubhost --help

Options:
  --model-repository <dir>       Model repository to serve (required). Each model is a folder
                                 with config.pbtxt or config.json and version folders (1/model.ts,
                                 1/model.onnx).
  --http-port <n>                KServe v2 HTTP port (default 8000; 0 picks a free port).
  --http-address <addr>          Address the HTTP server binds (default 0.0.0.0).
  --http-max-input-size <n>      Largest HTTP request body in bytes, after decompression
                                 (default 67108864 = 64 MiB; 413 beyond it).
  --http-request-timeout-secs <n>
                                 The whole request, headers and body, must arrive within this
                                 long, else 408 and the connection is closed (default 60;
                                 0 = no limit). Computing the response does not count.
  --http-header-timeout-secs <n> The request headers must arrive within this long (default 20).
  --http-keepalive-timeout-secs <n>
                                 Idle keep-alive connections close after this long (default 5).
  --http-max-connections <n>     HTTP connections open at once; more are closed as they are
                                 accepted (default: the share of the file-descriptor budget,
                                 see below).
  --grpc-max-message-bytes <n>   Largest gRPC message in bytes; a larger request fails with
                                 RESOURCE_EXHAUSTED before it is read (default: the HTTP
                                 body limit, 64 MiB).
  --grpc-max-connections <n>     gRPC connections open at once (default: the share of the
                                 file-descriptor budget). At start the soft RLIMIT_NOFILE is
                                 raised to the hard limit; a quarter of it (128..4096) is kept
                                 for stubs and files, the rest is shared by HTTP and gRPC.
  --grpc-port <n>                KServe v2 gRPC port (default 8001; 0 picks a free port).
  --grpc-address <addr>          Address the gRPC server binds (default 0.0.0.0).
  --metrics-port <n>             Prometheus metrics port (default 8002; 0 picks a free port).
  --metrics-address <addr>       Address the metrics server binds (default: --http-address).
  --http-restricted-api <a>:<key>=<value>
                                 Only HTTP requests with header <key>: <value> may use the APIs
                                 <a>, a comma-separated list of: health, metadata, inference,
                                 shared-memory, model-config, model-repository, statistics,
                                 trace, logging (repeatable; an API in one group only). Others
                                 get 403.
  --http-header-forward-pattern <regex>
                                 HTTP infer requests: headers whose name matches (searched,
                                 case-insensitive unless the pattern starts with (?-i)) reach
                                 the model as string request parameters, as Triton's.
  --grpc-restricted-protocol <p>:<key>=<value>
                                 Only gRPC calls with metadata triton-grpc-protocol-<key>: <value>
                                 may use the protocols <p> (same names as above; repeatable).
                                 Others get UNAVAILABLE.
  --grpc-use-ssl <bool>          Serve gRPC over TLS (default false); needs --grpc-server-cert
                                 and --grpc-server-key.
  --grpc-use-ssl-mutual <bool>   Mutual TLS: clients must present a certificate signed by
                                 --grpc-root-cert (default false; implies --grpc-use-ssl).
  --grpc-server-cert <file>      PEM certificate of the gRPC server.
  --grpc-server-key <file>       PEM private key of the gRPC server.
  --grpc-root-cert <file>        PEM CA certificate that client certificates must chain to.
  --allow-http <bool>            Serve HTTP (default true).
  --allow-grpc <bool>            Serve gRPC (default true).
  --allow-metrics <bool>         Serve metrics (default true).
  --model-control-mode <mode>    none: load every model at start;
                                 poll: also watch the repository and load, reload and unload
                                 models as their folders change;
                                 explicit: load only --load-model models at start, and
                                 let clients load, unload and upload models through the
                                 repository API (/v2/repository/models/{m}/load|unload);
                                 in none and poll modes that API answers 503, as Triton's
                                 (default none).
  --load-model <name>            With explicit mode: a model to load at start (repeatable;
                                 "*" loads all).
  --repository-poll-secs <n>     Poll interval in seconds for poll mode (default 15).
  --stub-timeout-seconds <n>     A stub whose health flag is not set again within this long is
                                 declared dead and restarted (default 1; a model can override
                                 it with the parameter stub_timeout_seconds).
  --rate-limit <mode>            off | execution_count (default off).
  --rate-limit-resource <r>      <name>:<count>[:<device>] resources for the rate limiter
                                 (repeatable).
  --shm-max-bytes <n>            Cap on one stub's shared-memory arena in bytes (default 4 GiB).
  --allow-client-shm <bool>      Let clients register system shared-memory regions for inputs and
                                 outputs (default false, as Triton; while off, register and
                                 unregister are refused).
  --client-shm-max-regions <n>   Most client shared-memory regions registered at once
                                 (default 1024).
  --client-shm-max-inflight-bytes <n>
                                 Most bytes copied out of client shared-memory regions for
                                 requests in flight at once; beyond, requests get 503
                                 (default 1 GiB).
  --stub-memory-limit-bytes <n>  Cap on one stub's resident memory (shared memory not counted);
                                 over it the stub is killed, its requests fail naming the cap,
                                 and it restarts. 0 = no cap (default: half the machine's memory;
                                 a model can override it with the parameter memory_limit_bytes).
  --execute-warn-secs <n>        An execute running longer is reported in the log, the metric
                                 stubhost_stalled_executes and /v2/models/{m}/stats, not stopped
                                 (default 60; 0 = off).
  --unload-grace-secs <n>        How long unload and reload let running executes finish before
                                 their stubs are killed (default: --exit-timeout-secs; a model
                                 can override it with the parameter unload_grace_seconds).
  --strict-readiness <bool>      Ready only when every model is ready (default true).
  --log-verbose <n>              Verbose level: verbose lines of level <= n show (default 0 =
                                 none). Also settable with /v2/logging log_verbose_level.
  --log-info <bool>              Info lines on or off (default true).
  --log-warning <bool>           Warning lines on or off (default true).
  --log-error <bool>             Error lines on or off (default true).
  --log-format <fmt>             default (Triton's "I0520 12:34:56.789012 <pid> ..."), ISO8601
                                 ("2024-05-20T12:34:56Z I <pid> ..."), or json (one object per
                                 line); text = default (default: default on a terminal, else json).
  --log-file <path>              Append log lines to this file instead of stderr (an unwritable
                                 path stops the start; not changeable over the network, as Triton).
  --exit-timeout-secs <n>        On SIGINT/SIGTERM, how long models get to finish (default 30).
  --cache-config local,size=<n>  Triton's response cache: an LRU of up to <n> bytes in host
                                 memory, shared by the models whose config has
                                 response_cache { enable: true } (default: no cache; only the
                                 local cache exists).
  -h, --help                     Show this help.
  -v, --version                  Print the version of stubhost.
`;

const bool = (v: string | undefined, dflt: boolean): boolean => (v === undefined ? dflt : !['false', '0', 'no', 'off'].includes(v.toLowerCase()));

/** A bool flag taking true/on/1 or false/off/0 only (as Triton's ParseOption<bool>, src/command_line_parser.cc): a typo must not flip a protection. */
function strictBool(name: string, v: string | undefined, dflt: boolean): boolean {
  if (v === undefined) return dflt;
  const l = v.toLowerCase();
  if (['true', 'on', '1'].includes(l)) return true;
  if (['false', 'off', '0'].includes(l)) return false;
  throw new CliError(`--${name} ${JSON.stringify(v)}: expected true or false`);
}

function port(name: string, v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new CliError(`--${name} ${JSON.stringify(v)}: expected a port number 0..65535`);
  return n;
}

class CliError extends Error {}

/** An address flag: a host name or IP literal, not empty. */
function address(name: string, v: string | undefined): string | undefined {
  if (v === undefined) return undefined;
  if (v.trim() === '' || /\s/.test(v)) throw new CliError(`--${name} ${JSON.stringify(v)}: expected an address such as 0.0.0.0 (every interface) or 127.0.0.1 (this machine only)`);
  return v;
}

function restricted(values: string[] | undefined, kind: typeof HTTP_RESTRICTED_API): ReturnType<typeof parseRestrictedFeatures> | undefined {
  if (values === undefined) return undefined;
  try {
    return parseRestrictedFeatures(values, kind);
  } catch (err) {
    if (err instanceof RestrictedOptionError) throw new CliError(err.message);
    throw err;
  }
}

/**
 * --grpc-use-ssl[-mutual] and the certificate flags, as Triton's: mutual implies TLS. (Triton
 * turns TLS on for any --grpc-use-ssl-mutual, even "false"; here false means false.) A
 * certificate flag that would have no effect is refused rather than ignored.
 */
function grpcTlsFlags(o: Record<string, string | string[] | boolean | undefined>): { serverCert: string; serverKey: string; rootCert?: string; mutual: boolean } | undefined {
  const mutual = strictBool('grpc-use-ssl-mutual', o['grpc-use-ssl-mutual'] as string | undefined, false);
  const useSsl = mutual || strictBool('grpc-use-ssl', o['grpc-use-ssl'] as string | undefined, false);
  const cert = o['grpc-server-cert'] as string | undefined;
  const key = o['grpc-server-key'] as string | undefined;
  const root = o['grpc-root-cert'] as string | undefined;
  if (!useSsl) {
    const given = [cert && '--grpc-server-cert', key && '--grpc-server-key', root && '--grpc-root-cert'].filter(Boolean);
    if (given.length > 0) throw new CliError(`${given.join(', ')} given without --grpc-use-ssl true (or --grpc-use-ssl-mutual true): gRPC would stay plaintext`);
    return undefined;
  }
  if (cert === undefined || key === undefined) throw new CliError(`--grpc-use-ssl${mutual ? '-mutual' : ''} needs --grpc-server-cert <file> and --grpc-server-key <file>`);
  if (mutual && root === undefined) throw new CliError('--grpc-use-ssl-mutual needs --grpc-root-cert <file>: the CA that client certificates must be signed by');
  if (!mutual && root !== undefined) throw new CliError('--grpc-root-cert is used to verify client certificates, which only --grpc-use-ssl-mutual true asks for');
  return { serverCert: cert, serverKey: key, rootCert: root, mutual };
}

/**
 * Triton's logging flags (src/command_line_parser.cc): --log-verbose <level> (kept as given; a
 * verbose line shows when its level is at most this), --log-info / --log-warning / --log-error,
 * --log-format default | ISO8601 (plus stubhost's json, and text = default), --log-file <path>.
 */
function logFlags(o: Record<string, string | string[] | boolean | undefined>): void {
  const verbose = o['log-verbose'] as string | undefined;
  if (verbose !== undefined) {
    const n = Number(verbose);
    if (verbose.trim() === '' || !Number.isSafeInteger(n) || n < 0) throw new CliError(`--log-verbose ${JSON.stringify(verbose)}: expected a verbose level, a whole number >= 0 (0 = off)`);
    logSettings.verboseLevel = n;
  }
  logSettings.info = strictBool('log-info', o['log-info'] as string | undefined, logSettings.info);
  logSettings.warning = strictBool('log-warning', o['log-warning'] as string | undefined, logSettings.warning);
  logSettings.error = strictBool('log-error', o['log-error'] as string | undefined, logSettings.error);
  const fmt = o['log-format'] as string | undefined;
  if (fmt === 'default' || fmt === 'text') logSettings.format = 'default';
  else if (fmt === 'ISO8601' || fmt === 'json') logSettings.format = fmt;
  else if (fmt !== undefined) throw new CliError(`--log-format ${JSON.stringify(fmt)}: expected default, ISO8601 or json (text = default)`);
  const file = o['log-file'] as string | undefined;
  if (file !== undefined) {
    try {
      setLogFile(file);
    } catch (err) {
      throw new CliError(`--log-file: ${(err as Error).message}`);
    }
  }
}

function wholeBytes(name: string, v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isSafeInteger(n) || n < 0) throw new CliError(`--${name} ${JSON.stringify(v)}: expected a whole number of bytes (0 = no cap)`);
  return n;
}

export async function main(argv: string[]): Promise<number> {
  if (AUTHORING_COMMANDS.includes(argv[0] ?? '')) return (await import('./authoring/cli.js')).runAuthoringCommand(argv);
  let args;
  try {
    args = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
        'model-repository': { type: 'string', multiple: true },
        'http-port': { type: 'string' },
        'http-address': { type: 'string' },
        'http-max-input-size': { type: 'string' },
        'http-request-timeout-secs': { type: 'string' },
        'http-header-timeout-secs': { type: 'string' },
        'http-keepalive-timeout-secs': { type: 'string' },
        'http-max-connections': { type: 'string' },
        'grpc-max-message-bytes': { type: 'string' },
        'grpc-max-connections': { type: 'string' },
        'grpc-port': { type: 'string' },
        'grpc-address': { type: 'string' },
        'metrics-port': { type: 'string' },
        'metrics-address': { type: 'string' },
        'http-restricted-api': { type: 'string', multiple: true },
        'http-header-forward-pattern': { type: 'string' },
        'grpc-restricted-protocol': { type: 'string', multiple: true },
        'grpc-use-ssl': { type: 'string' },
        'grpc-use-ssl-mutual': { type: 'string' },
        'grpc-server-cert': { type: 'string' },
        'grpc-server-key': { type: 'string' },
        'grpc-root-cert': { type: 'string' },
        'allow-http': { type: 'string' },
        'allow-grpc': { type: 'string' },
        'allow-metrics': { type: 'string' },
        'model-control-mode': { type: 'string' },
        'load-model': { type: 'string', multiple: true },
        'repository-poll-secs': { type: 'string' },
        'stub-timeout-seconds': { type: 'string' },
        'rate-limit': { type: 'string' },
        'rate-limit-resource': { type: 'string', multiple: true },
        'shm-max-bytes': { type: 'string' },
        'allow-client-shm': { type: 'string' },
        'client-shm-max-regions': { type: 'string' },
        'client-shm-max-inflight-bytes': { type: 'string' },
        'strict-readiness': { type: 'string' },
        'log-verbose': { type: 'string' },
        'log-format': { type: 'string' },
        'log-info': { type: 'string' },
        'log-warning': { type: 'string' },
        'log-error': { type: 'string' },
        'log-file': { type: 'string' },
        'cache-config': { type: 'string', multiple: true },
        'exit-timeout-secs': { type: 'string' },
        'stub-memory-limit-bytes': { type: 'string' },
        'execute-warn-secs': { type: 'string' },
        'unload-grace-secs': { type: 'string' },
      },
    });
  } catch (err) {
    process.stderr.write(`stubhost: ${(err as Error).message}\nRun stubhost --help for the options.\n`);
    return 2;
  }
  const o = args.values;
  if (o.version) {
    process.stdout.write(`${packageVersion()}\n`);
    return 0;
  }
  if (o.help || args.positionals.length === 0) {
    process.stdout.write(HELP);
    return o.help ? 0 : 2;
  }
  if (args.positionals[0] !== 'serve' && args.positionals[0] !== 'dev') {
    process.stderr.write(`stubhost: unknown command ${JSON.stringify(args.positionals[0])}; the commands are serve, dev, ${AUTHORING_COMMANDS.join(', ')}\n`);
    return 2;
  }
  try {
    return await serve(o, args.positionals[0] === 'dev');
  } catch (err) {
    process.stderr.write(`stubhost: ${(err as Error).message}\n`);
    return err instanceof CliError ? 2 : 1;
  }
}

async function serve(o: Record<string, string | string[] | boolean | undefined>, dev = false): Promise<number> {
  const repos = (o['model-repository'] as string[] | undefined) ?? [];
  if (repos.length !== 1) throw new CliError(repos.length === 0 ? '--model-repository <dir> is required' : 'give one --model-repository');
  if (dev) {
    const given = ['model-control-mode', 'load-model', 'repository-poll-secs'].filter((f) => o[f] !== undefined);
    if (given.length > 0) throw new CliError(`stubhost dev loads every model and reloads them as they are saved: --${given.join(', --')} ${given.length > 1 ? 'are' : 'is'} for stubhost serve`);
  }
  const mode = (o['model-control-mode'] as string | undefined) ?? 'none';
  if (!['none', 'poll', 'explicit'].includes(mode)) throw new CliError(`--model-control-mode ${JSON.stringify(mode)}: expected none, poll or explicit`);
  const rateMode = (o['rate-limit'] as string | undefined) ?? 'off';
  if (rateMode !== 'off' && rateMode !== 'execution_count') throw new CliError(`--rate-limit ${JSON.stringify(rateMode)}: expected off or execution_count`);
  const num = (name: string, dflt: number): number => {
    const v = o[name] as string | undefined;
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) throw new CliError(`--${name} ${JSON.stringify(v)}: expected a non-negative number`);
    return n;
  };
  /** A positive whole number, or undefined when the flag is absent. */
  const count = (name: string): number | undefined => {
    const v = o[name] as string | undefined;
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n <= 0) throw new CliError(`--${name} ${JSON.stringify(v)}: expected a positive whole number`);
    return n;
  };
  const secondsOf = (name: string): number | undefined => (o[name] === undefined ? undefined : num(name, 0) * 1000);
  logFlags(o);

  const httpRestrictedApis = restricted(o['http-restricted-api'] as string[] | undefined, HTTP_RESTRICTED_API);
  const grpcRestrictedProtocols = restricted(o['grpc-restricted-protocol'] as string[] | undefined, GRPC_RESTRICTED_PROTOCOL);
  const grpcTls = grpcTlsFlags(o);
  let cacheConfig;
  try {
    cacheConfig = parseCacheConfig((o['cache-config'] as string[] | undefined) ?? []);
  } catch (err) {
    if (err instanceof CacheConfigError) throw new CliError(err.message);
    throw err;
  }
  const headerForward = o['http-header-forward-pattern'] as string | undefined;
  if (headerForward !== undefined) {
    try {
      parseHeaderForwardPattern(headerForward);
    } catch (err) {
      throw new CliError((err as Error).message);
    }
  }
  const logger = createLogger();
  const loadList = (o['load-model'] as string[] | undefined) ?? [];
  if (loadList.length > 0 && mode !== 'explicit') {
    // As Triton: in none and poll modes every model loads, so a --load-model list would be ignored.
    throw new CliError(`--load-model needs --model-control-mode explicit (the mode is ${mode}, which loads every model of the repository)`);
  }
  // Listening from before the models load: in a container node is PID 1, and the kernel drops a
  // SIGTERM that PID 1 has no handler for, so `docker stop` / the kubelet would wait out the grace
  // period and SIGKILL. A signal that arrives while models load is acted on once they are up.
  const stopSignal = new Promise<string>((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
  // Loaded here, not at the top: --help, --version, init and types never pay for the server's modules.
  const { startServer } = await import('./server/start.js');
  const server = await startServer({
    modelRepository: repos[0]!,
    modelControlMode: mode as 'none' | 'poll' | 'explicit',
    loadModels: loadList,
    httpPort: bool(o['allow-http'] as string | undefined, true) ? port('http-port', o['http-port'] as string | undefined, 8000) : undefined,
    httpAddress: address('http-address', o['http-address'] as string | undefined),
    maxBodyBytes: count('http-max-input-size'),
    httpRequestTimeoutMs: secondsOf('http-request-timeout-secs'),
    httpHeadersTimeoutMs: secondsOf('http-header-timeout-secs'),
    httpKeepAliveTimeoutMs: secondsOf('http-keepalive-timeout-secs'),
    httpMaxConnections: count('http-max-connections'),
    grpcMaxMessageBytes: count('grpc-max-message-bytes'),
    grpcMaxConnections: count('grpc-max-connections'),
    grpcPort: bool(o['allow-grpc'] as string | undefined, true) ? port('grpc-port', o['grpc-port'] as string | undefined, 8001) : undefined,
    grpcAddress: address('grpc-address', o['grpc-address'] as string | undefined),
    grpcTls,
    grpcRestrictedProtocols,
    metricsPort: bool(o['allow-metrics'] as string | undefined, true) ? port('metrics-port', o['metrics-port'] as string | undefined, 8002) : undefined,
    metricsAddress: address('metrics-address', o['metrics-address'] as string | undefined),
    httpRestrictedApis,
    httpHeaderForwardPattern: headerForward,
    stubTimeoutMs: num('stub-timeout-seconds', 1) * 1000,
    arenaMaxBytes: o['shm-max-bytes'] === undefined ? undefined : num('shm-max-bytes', 0),
    allowClientShm: strictBool('allow-client-shm', o['allow-client-shm'] as string | undefined, false),
    clientShmMaxRegions: count('client-shm-max-regions') ?? DEFAULT_CLIENT_SHM_MAX_REGIONS,
    clientShmMaxInflightBytes: count('client-shm-max-inflight-bytes') ?? DEFAULT_CLIENT_SHM_MAX_INFLIGHT_BYTES,
    rateLimit: rateMode as 'off' | 'execution_count',
    rateLimitResources: (o['rate-limit-resource'] as string[] | undefined) ?? [],
    pollIntervalMs: num('repository-poll-secs', 15) * 1000,
    strictReadiness: bool(o['strict-readiness'] as string | undefined, true),
    stubMemoryLimitBytes: o['stub-memory-limit-bytes'] === undefined ? undefined : wholeBytes('stub-memory-limit-bytes', o['stub-memory-limit-bytes'] as string),
    executeWarnMs: num('execute-warn-secs', 60) * 1000,
    unloadGraceMs: num('unload-grace-secs', num('exit-timeout-secs', 30)) * 1000,
    responseCacheBytes: cacheConfig?.sizeBytes,
    logger,
  });
  const devMode = dev ? await (await import('./dev/dev-mode.js')).startDevMode({ repository: server.core.repository, logger }) : undefined;
  const exitTimeoutMs = num('exit-timeout-secs', 30) * 1000;
  logger.info(`${await stopSignal}: shutting down`);
  await devMode?.close();
  // The process is gone within --exit-timeout-secs: the last part of it (up to 1 s) is kept for
  // answering what is still in flight and closing the endpoints.
  const marginMs = Math.min(1000, exitTimeoutMs / 4);
  const forced = setTimeout(() => {
    logger.error(`requests in flight did not finish within --exit-timeout-secs ${exitTimeoutMs / 1000}: failing them and exiting`);
    // Requests still in flight get a 503 "shutting down" answer rather than a connection reset.
    const exit = (): never => process.exit(1);
    setTimeout(exit, marginMs * 0.9).unref();
    void server.closeEndpoints().then(exit, exit);
  }, exitTimeoutMs - marginMs);
  forced.unref();
  await server.close();
  clearTimeout(forced);
  logger.info('stopped');
  return 0;
}
