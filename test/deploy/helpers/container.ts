/**
 * One running container of the app image: ports published on 127.0.0.1 through slirp4netns (the
 * host's networking is left alone), the example repository mounted read-only, and the calls the
 * suites make to it.
 */
import path from 'node:path';
import { APP_IMAGE, podman, podmanRun } from './podman.js';
import { REPO_ROOT } from './run.js';

export const MODELS_DIR = path.join(REPO_ROOT, 'models');

export interface Container {
  name: string;
  /** http://127.0.0.1:<host port> for a container port. */
  url(containerPort: number): string;
  logs(): Promise<string>;
  inspect(format: string): Promise<string>;
  exec(cmd: string[]): Promise<string>;
  /** `podman stop --time graceSecs`: how long until it exited, and its exit code (137: SIGKILLed). */
  stop(graceSecs: number): Promise<{ seconds: number; exitCode: number }>;
}

let seq = 0;
const started: string[] = [];

/** `podman run -d` the app image with `args` replacing its CMD (none: the image's own); `podmanArgs` go before the image. */
export async function runContainer(opts: { args?: string[]; ports: number[]; mountAt?: string; shmSize?: string; podmanArgs?: string[] }): Promise<Container> {
  const name = `stubhost-deploy-${process.pid}-${++seq}`;
  started.push(name);
  const publish = opts.ports.flatMap((p) => ['-p', `127.0.0.1::${p}`]);
  await podman(['run', '-d', '--name', name, '--network=slirp4netns', ...publish, '--shm-size', opts.shmSize ?? '256m',
    '-v', `${MODELS_DIR}:${opts.mountAt ?? '/models'}:ro`, ...(opts.podmanArgs ?? []), APP_IMAGE, ...(opts.args ?? [])]);
  const hostPorts = new Map<number, number>();
  for (const p of opts.ports) {
    const out = (await podman(['port', name, `${p}/tcp`])).trim();
    hostPorts.set(p, Number(out.slice(out.lastIndexOf(':') + 1)));
  }
  return {
    name,
    url: (p) => `http://127.0.0.1:${hostPorts.get(p)}`,
    logs: async () => {
      const r = await podmanRun(['logs', name]);
      return r.stdout + r.stderr;
    },
    inspect: async (format) => (await podman(['inspect', '--format', format, name])).trim(),
    stop: async (graceSecs) => {
      const t0 = Date.now();
      // SIGTERM, then SIGKILL once the grace period is over, as the kubelet does.
      const r = await podmanRun(['stop', '--time', String(graceSecs), name], (graceSecs + 30) * 1000);
      if (r.code !== 0) throw new Error(`podman stop ${name}: ${r.stderr}`);
      return { seconds: (Date.now() - t0) / 1000, exitCode: Number(await podman(['inspect', '--format', '{{.State.ExitCode}}', name])) };
    },
    exec: (cmd) => podman(['exec', name, ...cmd]),
  };
}

/** Removes every container this process started. */
export async function removeContainers(): Promise<void> {
  for (const name of started.splice(0)) await podmanRun(['rm', '-f', '-t', '0', name]);
}

/** Waits until `url` answers 200, failing early with the logs when the container stopped. */
export async function waitReady(c: Container, url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; ; i++) {
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(2000) });
      if (r.status === 200) return;
    } catch { /* not listening yet (slirp4netns accepts, then resets) */ }
    if (i % 10 === 9 && (await c.inspect('{{.State.Running}}')) !== 'true') {
      throw new Error(`container ${c.name} stopped before ${url} was ready:\n${await c.logs()}`);
    }
    if (Date.now() > deadline) throw new Error(`${url} not ready within ${timeoutMs} ms:\n${await c.logs()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export async function postJson(url: string, body: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await res.text();
  let json: unknown;
  try { json = JSON.parse(text); } catch { json = text; }
  return { status: res.status, json };
}

export interface EventStream {
  /** Resolves with the first Server-Sent Event: the request was accepted and is running. */
  first: Promise<unknown>;
  /** Resolves with every event once the stream ended (or with the error that broke it). */
  done: Promise<{ status: number; events: any[]; error?: string }>;
}

/** POST to a generate_stream endpoint, reading `data:` events as they arrive. */
export function openEventStream(url: string, body: unknown): EventStream {
  let firstResolve!: (e: unknown) => void;
  let firstReject!: (e: Error) => void;
  const first = new Promise<unknown>((res, rej) => { firstResolve = res; firstReject = rej; });
  const done = (async () => {
    const events: any[] = [];
    let status = 0;
    try {
      const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      status = res.status;
      const decoder = new TextDecoder();
      let buf = '';
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buf += decoder.decode(chunk, { stream: true });
        let end;
        while ((end = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, end);
          buf = buf.slice(end + 2);
          const data = block.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trim()).join('\n');
          if (!data) continue;
          const event = JSON.parse(data);
          events.push(event);
          if (events.length === 1) firstResolve(event);
        }
      }
      if (events.length === 0) firstReject(new Error(`stream ended with no event (HTTP ${status})`));
      return { status, events };
    } catch (err) {
      const error = String((err as Error & { cause?: { code?: string } }).cause?.code ?? (err as Error).message);
      firstReject(new Error(error));
      return { status, events, error };
    }
  })();
  first.catch(() => {});
  return { first, done };
}
