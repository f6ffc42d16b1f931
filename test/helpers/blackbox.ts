/**
 * Black-box helpers: the `stubhost serve` CLI as a child process (cwd outside the repository,
 * model repositories in temp folders), talked to only over its sockets, and the leak check an
 * outside tester can make (no /dev/shm `stubhost-<pid>-*` files once it exited).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export const BIN = path.resolve(import.meta.dirname, '../../bin/stubhost.js');

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** A model repository in a temp folder: `files` maps relative paths to contents. */
export function makeRepository(files: Record<string, string | Uint8Array>): { root: string; write(rel: string, content: string | Uint8Array): void; cleanup(): void } {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'stubhost-bb-'));
  const write = (rel: string, content: string | Uint8Array): void => {
    const p = path.join(root, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, content);
  };
  for (const [rel, content] of Object.entries(files)) write(rel, content);
  return { root, write, cleanup: () => fs.rmSync(root, { recursive: true, force: true }) };
}

export interface CliServer {
  child: ChildProcess;
  pid: number;
  http: string;
  grpcPort: number;
  metrics: string;
  /** Everything the server wrote to stdout and stderr so far. */
  output(): string;
  /** Resolves with [exit code, signal] once the process exited. */
  exited: Promise<[number | null, NodeJS.Signals | null]>;
  /** SIGTERM (or `signal`), wait for the exit (SIGKILL after `ms`). */
  stop(signal?: NodeJS.Signals, ms?: number): Promise<[number | null, NodeJS.Signals | null]>;
}

/**
 * Spawns `node bin/stubhost.js serve (or opts.command) --model-repository <root> --http-port … --grpc-port …
 * --metrics-port … <extra>` from `os.tmpdir()` and waits until it listens on HTTP (and, unless
 * `waitReady` is false, until /v2/health/ready answers 200).
 */
export async function startCli(root: string, extra: string[] = [], opts: { waitReady?: boolean; env?: Record<string, string>; timeoutMs?: number; command?: 'serve' | 'dev' } = {}): Promise<CliServer> {
  const [h, g, m] = [await freePort(), await freePort(), await freePort()];
  const child = spawn(process.execPath, [BIN, opts.command ?? 'serve', '--model-repository', root, '--http-port', String(h), '--grpc-port', String(g), '--metrics-port', String(m), '--log-format', 'json', ...extra], {
    cwd: os.tmpdir(),
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.once('exit', (c, s) => resolve([c, s])));
  const http = `http://127.0.0.1:${h}`;
  const server: CliServer = {
    child, pid: child.pid!, http, grpcPort: g, metrics: `http://127.0.0.1:${m}`,
    output: () => out,
    exited,
    async stop(signal = 'SIGTERM', ms = 15_000) {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const t = setTimeout(() => child.kill('SIGKILL'), ms);
      const r = await exited;
      clearTimeout(t);
      return r;
    },
  };
  const deadline = Date.now() + (opts.timeoutMs ?? 20_000);
  const want = opts.waitReady === false ? '/v2/health/live' : '/v2/health/ready';
  for (;;) {
    if (child.exitCode !== null) throw new Error(`stubhost exited early (${child.exitCode}):\n${out}`);
    try {
      if ((await fetch(http + want)).status === 200) return server;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`stubhost did not answer 200 on ${want} in time:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** /dev/shm files a stubhost host process with this pid created and left behind. */
export function shmFilesOf(pid: number): string[] {
  try {
    return fs.readdirSync('/dev/shm').filter((f) => f.startsWith(`stubhost-${pid}-`));
  } catch {
    return [];
  }
}

export async function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: any; text: string }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await res.text();
  let json: any;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text };
}

/** The add_sub model of Triton's python-backend example, as model.ts. */
export const ADD_SUB_TS = `import { InferenceRequest, InferenceResponse, Tensor } from 'stubhost';
export default class AddSub {
  async execute(requests: InferenceRequest[]) {
    return requests.map((r) => {
      const a = r.input('INPUT0')!.data as Float32Array;
      const b = r.input('INPUT1')!.data as Float32Array;
      return new InferenceResponse({ outputs: [
        new Tensor('OUTPUT0', a.map((x, i) => x + b[i]!), r.input('INPUT0')!.shape),
        new Tensor('OUTPUT1', a.map((x, i) => x - b[i]!), r.input('INPUT0')!.shape),
      ] });
    });
  }
}
`;
