/**
 * `stubhost serve --model-repository <dir> ...`: Triton's flag names where Triton has them.
 */
import { parseArgs } from 'node:util';
import { startServer } from './server/start.js';
import { createLogger, logSettings } from './log/logger.js';
import { AUTHORING_COMMANDS, AUTHORING_HELP } from './authoring/help.js';
import { packageVersion } from './tools/package-info.js';

export const HELP = `stubhost: a Triton-style inference server for TypeScript models

Usage:
  stubhost serve --model-repository <dir> [options]
${AUTHORING_HELP}  stubhost --version
  stubhost --help

Options:
  --model-repository <dir>       Model repository to serve (required). Each model is a folder
                                 with config.pbtxt or config.json and version folders (1/model.ts,
                                 1/model.onnx).
  --http-port <n>                KServe v2 HTTP port (default 8000; 0 picks a free port).
  --http-address <addr>          Address the HTTP server binds (default 0.0.0.0).
  --grpc-port <n>                KServe v2 gRPC port (default 8001; 0 picks a free port).
  --metrics-port <n>             Prometheus metrics port (default 8002; 0 picks a free port).
  --allow-http <bool>            Serve HTTP (default true).
  --allow-grpc <bool>            Serve gRPC (default true).
  --allow-metrics <bool>         Serve metrics (default true).
  --model-control-mode <mode>    none: load every model at start;
                                 poll: also watch the repository and load, reload and unload
                                 models as their folders change;
                                 explicit: load only --load-model models at start
                                 (default none). In every mode the repository API
                                 (/v2/repository/models/{m}/load|unload) works too.
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
  --strict-readiness <bool>      Ready only when every model is ready (default true).
  --log-verbose <n>              Verbose logging when > 0 (default 0).
  --log-format <fmt>             json | text (default: text on a terminal, else json).
  --exit-timeout-secs <n>        On SIGINT/SIGTERM, how long models get to finish (default 30).
  -h, --help                     Show this help.
  -v, --version                  Print the version of stubhost.
`;

const bool = (v: string | undefined, dflt: boolean): boolean => (v === undefined ? dflt : !['false', '0', 'no', 'off'].includes(v.toLowerCase()));

function port(name: string, v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new CliError(`--${name} ${JSON.stringify(v)}: expected a port number 0..65535`);
  return n;
}

class CliError extends Error {}

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
        'grpc-port': { type: 'string' },
        'metrics-port': { type: 'string' },
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
        'strict-readiness': { type: 'string' },
        'log-verbose': { type: 'string' },
        'log-format': { type: 'string' },
        'exit-timeout-secs': { type: 'string' },
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
  if (args.positionals[0] !== 'serve') {
    process.stderr.write(`stubhost: unknown command ${JSON.stringify(args.positionals[0])}; the commands are serve, ${AUTHORING_COMMANDS.join(', ')}\n`);
    return 2;
  }
  try {
    return await serve(o);
  } catch (err) {
    process.stderr.write(`stubhost: ${(err as Error).message}\n`);
    return err instanceof CliError ? 2 : 1;
  }
}

async function serve(o: Record<string, string | string[] | boolean | undefined>): Promise<number> {
  const repos = (o['model-repository'] as string[] | undefined) ?? [];
  if (repos.length !== 1) throw new CliError(repos.length === 0 ? '--model-repository <dir> is required' : 'give one --model-repository');
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
  const verbose = num('log-verbose', 0);
  if (verbose > 0) logSettings.level = 'verbose';
  const fmt = o['log-format'] as string | undefined;
  if (fmt === 'json' || fmt === 'text') logSettings.format = fmt;
  else if (fmt !== undefined) throw new CliError(`--log-format ${JSON.stringify(fmt)}: expected json or text`);

  const logger = createLogger();
  const loadList = (o['load-model'] as string[] | undefined) ?? [];
  if (loadList.length > 0 && mode !== 'explicit') {
    // As Triton: in none and poll modes every model loads, so a --load-model list would be ignored.
    throw new CliError(`--load-model needs --model-control-mode explicit (the mode is ${mode}, which loads every model of the repository)`);
  }
  const server = await startServer({
    modelRepository: repos[0]!,
    modelControlMode: mode as 'none' | 'poll' | 'explicit',
    loadModels: loadList,
    httpPort: bool(o['allow-http'] as string | undefined, true) ? port('http-port', o['http-port'] as string | undefined, 8000) : undefined,
    httpAddress: o['http-address'] as string | undefined,
    grpcPort: bool(o['allow-grpc'] as string | undefined, true) ? port('grpc-port', o['grpc-port'] as string | undefined, 8001) : undefined,
    metricsPort: bool(o['allow-metrics'] as string | undefined, true) ? port('metrics-port', o['metrics-port'] as string | undefined, 8002) : undefined,
    stubTimeoutMs: num('stub-timeout-seconds', 1) * 1000,
    arenaMaxBytes: o['shm-max-bytes'] === undefined ? undefined : num('shm-max-bytes', 0),
    rateLimit: rateMode as 'off' | 'execution_count',
    rateLimitResources: (o['rate-limit-resource'] as string[] | undefined) ?? [],
    pollIntervalMs: num('repository-poll-secs', 15) * 1000,
    strictReadiness: bool(o['strict-readiness'] as string | undefined, true),
    logger,
  });
  const exitTimeoutMs = num('exit-timeout-secs', 30) * 1000;
  await new Promise<void>((resolve) => {
    const stop = (signal: string): void => {
      logger.info(`${signal}: shutting down`);
      resolve();
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  const forced = setTimeout(() => {
    logger.error(`requests in flight did not finish within --exit-timeout-secs ${exitTimeoutMs / 1000}: failing them and exiting`);
    // Requests still in flight get a 503 "shutting down" answer rather than a connection reset.
    const exit = (): never => process.exit(1);
    setTimeout(exit, 1000).unref();
    void server.closeEndpoints().then(exit, exit);
  }, exitTimeoutMs);
  forced.unref();
  await server.close();
  clearTimeout(forced);
  logger.info('stopped');
  return 0;
}
