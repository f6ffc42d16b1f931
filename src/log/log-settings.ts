/**
 * Triton's logging extension (`/v2/logging`, gRPC LogSettings) over the logger's settings, with
 * Triton's checks, order and words: server src/http_server.cc (HandleLogging) and
 * src/grpc/grpc_server.cc (RegisterLogging). Settings apply in Triton's order (log_file, log_info,
 * log_warning, log_error, log_verbose_level, log_format); one that is refused stops the update
 * there, the ones before it stay applied, as in Triton.
 *
 * log_file cannot be changed over the network (Triton refuses it: a client could make the server
 * write any file); it is set with --log-file and reported here. log_format takes Triton's
 * "default" and "ISO8601", and stubhost's "json" (one JSON object per line).
 */
import { StubhostError } from '../errors.js';
import { logFilePath, logSettings, type LogFormat } from './logger.js';

export type LogProtocol = 'http' | 'grpc';

/** The settings as Triton reports them. */
export function currentLogSettings(): Record<string, unknown> {
  return {
    log_file: logFilePath(),
    log_info: logSettings.info,
    log_warning: logSettings.warning,
    log_error: logSettings.error,
    log_verbose_level: logSettings.verboseLevel,
    log_format: logSettings.format,
  };
}

/**
 * Applies `update` (HTTP: the JSON body's values, null meaning "leave it"; gRPC: each setting's
 * bool_param / uint32_param / string_param value) and returns the settings after it.
 */
export function updateLogSettings(update: Record<string, unknown>, protocol: LogProtocol): Record<string, unknown> {
  const given = (key: string): boolean => key in update && (protocol === 'grpc' || update[key] !== null);
  // HTTP's type errors are TritonJson's (INTERNAL); gRPC's are the handler's own (INVALID_ARG).
  const wrongType = (key: string, json: string, grpc: string): StubhostError => protocol === 'http'
    ? new StubhostError('STUBHOST_INTERNAL', `attempt to access JSON non-${json} as ${json}`)
    : new StubhostError('STUBHOST_INVALID_ARG', `expect ${grpc} for '${key}'`);

  if (given('log_file')) throw new StubhostError('STUBHOST_SERVER_UNSUPPORTED', 'log file location can not be updated through network protocol');
  for (const [key, field] of [['log_info', 'info'], ['log_warning', 'warning'], ['log_error', 'error']] as const) {
    if (!given(key)) continue;
    const v = update[key];
    if (typeof v !== 'boolean') throw wrongType(key, 'boolean', 'boolean');
    logSettings[field] = v;
  }
  if (given('log_verbose_level')) {
    const v = update.log_verbose_level;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
      throw protocol === 'http'
        ? new StubhostError('STUBHOST_INTERNAL', 'attempt to access JSON non-unsigned-integer as unsigned-integer')
        : new StubhostError('STUBHOST_INVALID_ARG', `expect int32 for 'log_verbose_level'`);
    }
    logSettings.verboseLevel = Math.min(v, 2 ** 31 - 1); // Triton keeps it as an int32
  }
  if (given('log_format')) {
    const v = update.log_format;
    if (typeof v !== 'string') throw wrongType('log_format', 'string', 'string');
    if (v !== 'default' && v !== 'ISO8601' && v !== 'json') {
      // Triton's codes differ by protocol: UNAVAILABLE over HTTP, INVALID_ARG over gRPC.
      throw protocol === 'http'
        ? new StubhostError('STUBHOST_UNAVAILABLE', `invalid argument for --log_format, got: ${v}`)
        : new StubhostError('STUBHOST_INVALID_ARG', `invalid argument for log_format, got: ${v}`);
    }
    logSettings.format = v as LogFormat;
  }
  return currentLogSettings();
}
