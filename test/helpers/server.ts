/**
 * Integration-test helpers: a real server (real stubs, real sockets) on free ports, plain HTTP
 * calls, and leak checks for processes and /dev/shm.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startServer, type RunningServer, type ServerOptions } from '../../src/server/start.js';
import { createLogger, logSettings } from '../../src/log/logger.js';

export interface TestServer extends RunningServer {
  url: string;
  /** Log lines the server wrote (JSON), for assertions on logging. */
  logs: string[];
}

/** Starts a server on free ports, quiet unless STUBHOST_TEST_LOGS is set. */
export async function startTestServer(opts: Partial<ServerOptions> & { modelRepository: string }): Promise<TestServer> {
  const logs: string[] = [];
  if (!process.env.STUBHOST_TEST_LOGS) {
    logSettings.format = 'json';
    logSettings.sink = (line) => {
      logs.push(line);
    };
  }
  const server = await startServer({ httpPort: 0, grpcPort: undefined, metricsPort: 0, logger: createLogger(), ...opts });
  return { ...server, url: `http://127.0.0.1:${server.ports.http}`, logs };
}

/** POST/GET with a JSON body; resolves with status and parsed JSON (or text). */
export async function http(url: string, method = 'GET', body?: unknown): Promise<{ status: number; json: any; text: string }> {
  const res = await fetch(url, {
    method,
    headers: body === undefined ? undefined : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text };
}

/** shm files of this test process (its stubs' regions and arenas). */
export function shmLeftovers(pid = process.pid): string[] {
  return fs.readdirSync('/dev/shm').filter((n) => n.startsWith(`stubhost-${pid}-`));
}

/** Child processes of this process that are still running. */
export function childPids(pid = process.pid): number[] {
  const out: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === pid && fields[0] !== 'Z') out.push(Number(entry));
    } catch {
      // exited while we looked
    }
  }
  return out;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Polls `check` until it returns true or `timeoutMs` passes. */
export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 5000, stepMs = 20): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  return check();
}

/** A temporary model repository built from `models` (folder name → files), removed by `cleanup`. */
export function tempRepository(models: Record<string, Record<string, string | Uint8Array>>): { root: string; cleanup(): void } {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'stubhost-repo-'));
  for (const [name, files] of Object.entries(models)) {
    for (const [rel, content] of Object.entries(files)) {
      const file = path.join(root, name, rel);
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, content);
    }
  }
  return { root, cleanup: () => fs.rmSync(root, { recursive: true, force: true }) };
}

export interface RepositoryServer extends TestServer {
  /** The temporary repository's folder. */
  root: string;
  /**
   * Closes the server, removes the repository, and resolves with this process's shm files still
   * in /dev/shm (after waiting up to `waitMs` for them to go): a suite expects `[]`.
   */
  stop(waitMs?: number): Promise<string[]>;
}

/**
 * A real server over a temporary repository of `models` (folder name → files). `stop()` is the
 * teardown every suite needs: close, remove the folder, report the stubs' shm files left.
 */
export async function startRepositoryServer(
  models: Record<string, Record<string, string | Uint8Array>>,
  opts: Partial<ServerOptions> = {},
): Promise<RepositoryServer> {
  const repo = tempRepository(models);
  let server: TestServer;
  try {
    server = await startTestServer({ ...opts, modelRepository: repo.root });
  } catch (err) {
    repo.cleanup();
    throw err;
  }
  return {
    ...server,
    root: repo.root,
    async stop(waitMs = 0) {
      await server.close();
      repo.cleanup();
      if (waitMs > 0) await waitFor(() => shmLeftovers().length === 0, waitMs);
      return shmLeftovers();
    },
  };
}
