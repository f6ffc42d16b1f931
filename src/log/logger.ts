/**
 * Structured, quiet-by-default logging on stderr (or the --log-file), with Triton's settings
 * (common src/logging.cc, include/triton/common/logging.h): error, warning and info each on or off,
 * a verbose level (a verbose line carries a level and shows when the level is at least that), and
 * the line format:
 * - `default` (Triton's): `I0520 12:34:56.789012 <pid> stubhost] message  key=value ...`
 * - `ISO8601` (Triton's): `2024-05-20T12:34:56Z I <pid> stubhost] message  key=value ...`
 * - `json` (stubhost's): one JSON object per line, `{"time","level","msg",...fields}`.
 * `--log-format text` is another name for `default`. Verbose lines are info lines, as in Triton.
 */
import fs from 'node:fs';

export type Level = 'error' | 'warn' | 'info' | 'verbose';
export type LogFormat = 'default' | 'ISO8601' | 'json';

export interface Logger {
  error(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  /** Shown when the verbose level is at least `level` (default 1), as Triton's LOG_VERBOSE(level). */
  verbose(msg: string, fields?: Record<string, unknown>, level?: number): void;
  child(fields: Record<string, unknown>): Logger;
}

export interface LogSettings {
  error: boolean;
  warning: boolean;
  info: boolean;
  /** 0: no verbose lines; n: verbose lines of level <= n. */
  verboseLevel: number;
  format: LogFormat;
  /**
   * One-word view of the settings: the most detailed level shown. Setting it turns that level and
   * the ones above it on and the ones below off ('verbose' sets verbose level 1 when it was 0).
   */
  level: Level;
  /** Where lines go (tests capture here); else the log file, else stderr. */
  sink?: (line: string, level: Level) => void;
}

function envLevel(): Level {
  const v = process.env.STUBHOST_LOG_LEVEL;
  return v === 'error' || v === 'warn' || v === 'verbose' ? v : 'info';
}

const state = {
  error: true, warning: true, info: true, verboseLevel: 0,
  format: (process.stderr.isTTY ? 'default' : 'json') as LogFormat,
};

export const logSettings: LogSettings = {
  get error() { return state.error; },
  set error(v: boolean) { state.error = v; },
  get warning() { return state.warning; },
  set warning(v: boolean) { state.warning = v; },
  get info() { return state.info; },
  set info(v: boolean) { state.info = v; },
  get verboseLevel() { return state.verboseLevel; },
  set verboseLevel(v: number) { state.verboseLevel = Math.max(0, Math.floor(v)); },
  get format() { return state.format; },
  set format(v: LogFormat) { state.format = v; },
  get level(): Level {
    if (state.verboseLevel > 0) return 'verbose';
    if (state.info) return 'info';
    if (state.warning) return 'warn';
    return 'error';
  },
  set level(l: Level) {
    state.error = true;
    state.warning = l !== 'error';
    state.info = l === 'info' || l === 'verbose';
    state.verboseLevel = l === 'verbose' ? Math.max(1, state.verboseLevel) : 0;
  },
};
logSettings.level = envLevel();

// ---- the log file (--log-file) ----

let logFile: { path: string; fd: number } | undefined;

/** The log file lines go to ('' when none: stderr). */
export function logFilePath(): string {
  return logFile?.path ?? '';
}

/**
 * Sends log lines to `file` (appended; '' = back to stderr). An unwritable path throws Triton's
 * words (common logging.h SetLogFile: "Failed to open log file: <strerror>") with the path, and
 * the previous destination stays.
 */
export function setLogFile(file: string): void {
  if (file === '') {
    if (logFile) fs.closeSync(logFile.fd);
    logFile = undefined;
    return;
  }
  let fd: number;
  try {
    fd = fs.openSync(file, 'a', 0o640);
  } catch (err) {
    throw new Error(`Failed to open log file: ${strerror(err)} (${file})`);
  }
  if (logFile) fs.closeSync(logFile.fd);
  logFile = { path: file, fd };
}

/** C's strerror text for the usual codes (Node gives only the code). */
function strerror(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  const text: Record<string, string> = {
    ENOENT: 'No such file or directory', EACCES: 'Permission denied', EISDIR: 'Is a directory',
    ENOTDIR: 'Not a directory', EROFS: 'Read-only file system', ENOSPC: 'No space left on device',
  };
  return (code && text[code]) ?? (err as Error).message;
}

// ---- lines ----

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

function tags(fields: Record<string, unknown>): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(fields)) parts.push(`${k}=${typeof v === 'string' ? v : JSON.stringify(v, bigintsAsText)}`);
  return parts.length > 0 ? `  ${parts.join(' ')}` : '';
}

function bigintsAsText(_k: string, v: unknown): unknown {
  return typeof v === 'bigint' ? v.toString() : v;
}

/** Triton's preamble (common src/logging.cc, LogPreamble / LogTimestamp), UTC as there. */
function preamble(format: 'default' | 'ISO8601', letter: string, now: Date, micros: number): string {
  const date = `${pad(now.getUTCMonth() + 1)}${pad(now.getUTCDate())}`;
  const time = `${pad(now.getUTCHours())}:${pad(now.getUTCMinutes())}:${pad(now.getUTCSeconds())}`;
  if (format === 'default') return `${letter}${date} ${time}.${pad(micros, 6)} ${process.pid} stubhost] `;
  return `${now.getUTCFullYear()}-${pad(now.getUTCMonth() + 1)}-${pad(now.getUTCDate())}T${time}Z ${letter} ${process.pid} stubhost] `;
}

const LETTER: Record<Level, string> = { error: 'E', warn: 'W', info: 'I', verbose: 'I' };

function format(level: Level, msg: string, fields: Record<string, unknown>): string {
  const now = new Date();
  if (state.format === 'json') return JSON.stringify({ time: now.toISOString(), level, msg, ...fields }, bigintsAsText);
  return `${preamble(state.format, LETTER[level], now, now.getUTCMilliseconds() * 1000)}${msg}${tags(fields)}`;
}

function enabled(level: Level, verboseLevel: number): boolean {
  switch (level) {
    case 'error': return state.error;
    case 'warn': return state.warning;
    case 'info': return state.info;
    default: return state.verboseLevel >= verboseLevel;
  }
}

export function createLogger(base: Record<string, unknown> = {}): Logger {
  const emit = (level: Level, msg: string, fields?: Record<string, unknown>, verboseLevel = 1): void => {
    if (!enabled(level, verboseLevel)) return;
    const line = format(level, msg, { ...base, ...fields });
    if (logSettings.sink) logSettings.sink(line, level);
    else if (logFile) {
      try {
        fs.writeSync(logFile.fd, `${line}\n`);
      } catch {
        process.stderr.write(`${line}\n`); // a full disk must not lose the line nor crash the server
      }
    } else process.stderr.write(`${line}\n`);
  };
  return {
    error: (m, f) => emit('error', m, f),
    warn: (m, f) => emit('warn', m, f),
    info: (m, f) => emit('info', m, f),
    verbose: (m, f, l) => emit('verbose', m, f, l ?? 1),
    child: (fields) => createLogger({ ...base, ...fields }),
  };
}
