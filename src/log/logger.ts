/**
 * Structured, quiet-by-default logging: one JSON object per line on stderr (or plain text on a
 * TTY). Levels: error, warn, info, verbose; `--log-verbose N` turns verbose on.
 */
export type Level = 'error' | 'warn' | 'info' | 'verbose';

const ORDER: Record<Level, number> = { error: 0, warn: 1, info: 2, verbose: 3 };

export interface Logger {
  error(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  verbose(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

export interface LogSettings {
  level: Level;
  format: 'json' | 'text';
  /** Where lines go; stderr by default. Tests capture here. */
  sink?: (line: string, level: Level) => void;
}

export const logSettings: LogSettings = {
  level: (process.env.STUBHOST_LOG_LEVEL as Level | undefined) ?? 'info',
  format: process.stderr.isTTY ? 'text' : 'json',
};

export function createLogger(base: Record<string, unknown> = {}): Logger {
  const emit = (level: Level, msg: string, fields?: Record<string, unknown>): void => {
    if (ORDER[level] > ORDER[logSettings.level]) return;
    const record = { time: new Date().toISOString(), level, msg, ...base, ...fields };
    let line: string;
    if (logSettings.format === 'json') line = JSON.stringify(record, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
    else {
      const extra = { ...base, ...fields };
      const tags = Object.entries(extra).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ');
      line = `${record.time} ${level.toUpperCase().padEnd(7)} ${msg}${tags ? `  ${tags}` : ''}`;
    }
    if (logSettings.sink) logSettings.sink(line, level);
    else process.stderr.write(`${line}\n`);
  };
  return {
    error: (m, f) => emit('error', m, f),
    warn: (m, f) => emit('warn', m, f),
    info: (m, f) => emit('info', m, f),
    verbose: (m, f) => emit('verbose', m, f),
    child: (fields) => createLogger({ ...base, ...fields }),
  };
}
