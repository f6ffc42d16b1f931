/**
 * The stubhost command as a user runs it: `node bin/stubhost.js ...` in a child process.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = path.join(ROOT, 'bin', 'stubhost.js');

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `stubhost ...args` to completion (a one-shot command such as init or types). */
export function stubhost(args: string[], cwd: string, timeoutMs = 120_000): CliResult {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd, encoding: 'utf8', timeout: timeoutMs });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Runs the project's TypeScript compiler. */
export function tsc(args: string[], cwd: string): CliResult {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), ...args], { cwd, encoding: 'utf8', timeout: 180_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

export interface ServeProcess {
  child: ChildProcess;
  url: string;
  logs: string[];
  /** SIGTERM, then resolves with the exit code. */
  stop(): Promise<number | null>;
}

/**
 * `stubhost serve` on free ports, JSON logs; resolves once the server logged that every model
 * is loaded (the line "N model(s) ready, M failed"), with the HTTP URL it logged.
 */
export function serve(args: string[], cwd: string, timeoutMs = 120_000): Promise<ServeProcess> {
  const child = spawn(process.execPath, [BIN, 'serve', '--http-port', '0', '--grpc-port', '0', '--metrics-port', '0', '--log-format', 'json', ...args], {
    cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: string[] = [];
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const stop = async (): Promise<number | null> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    return exited;
  };
  return new Promise((resolve, reject) => {
    let url = '';
    const timer = setTimeout(() => {
      void stop();
      reject(new Error(`stubhost serve did not report its models within ${timeoutMs} ms:\n${logs.join('\n')}`));
    }, timeoutMs);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`stubhost serve exited with ${code}:\n${logs.join('\n')}`));
    });
    const onLine = (line: string) => {
      logs.push(line);
      let entry: { msg?: string; port?: number; service?: string };
      try {
        entry = JSON.parse(line);
      } catch {
        return;
      }
      if (entry.service === 'http' && typeof entry.port === 'number') url = `http://127.0.0.1:${entry.port}`;
      if (/model\(s\) ready/.test(entry.msg ?? '')) {
        clearTimeout(timer);
        resolve({ child, url, logs, stop });
      }
    };
    readline.createInterface({ input: child.stdout! }).on('line', onLine);
    readline.createInterface({ input: child.stderr! }).on('line', onLine);
  });
}
