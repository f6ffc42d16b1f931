/**
 * The `stubhost` command as a user runs it: help, flag errors (exit 2), `serve` reporting which
 * models loaded and which failed and why, readiness turning 400 → 200 while a model initializes,
 * and a clean SIGTERM shutdown (finalize ran, no stub left, nothing left in /dev/shm).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { childPids, isAlive, shmLeftovers, tempRepository, waitFor } from './helpers/server.js';
import { freePort } from './helpers/blackbox.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const BIN = path.join(ROOT, 'bin/stubhost.js');

function run(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 90_000 }, (err, stdout, stderr) => {
      resolve({ status: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr });
    });
  });
}



describe('flags', () => {
  it('--help documents every flag of the issue', async () => {
    const r = await run(['--help']);
    expect(r.status).toBe(0);
    for (const flag of ['serve', '--model-repository', '--http-port', '--metrics-port', '--model-control-mode', '--load-model',
      '--repository-poll-secs', '--stub-timeout-seconds', '--log-verbose', '--grpc-port', '--help']) {
      expect(r.stdout).toContain(flag);
    }
    expect(r.stdout).toMatch(/none.*\n?.*poll.*\n?.*explicit/s);
  }, 120_000);

  it('bad flags and values exit 2 with a message', async () => {
    const cases: [string[], RegExp][] = [
    [['serve', '--model-repository', 'models', '--bogus'], /Unknown option '--bogus'/],
    [['serve'], /--model-repository <dir> is required/],
    [['serve', '--model-repository', 'models', '--http-port', 'eighty'], /--http-port "eighty": expected a port number/],
    [['serve', '--model-repository', 'models', '--http-port', '70000'], /--http-port "70000"/],
    [['serve', '--model-repository', 'models', '--model-control-mode', 'sometimes'], /--model-control-mode "sometimes": expected none, poll or explicit/],
    [['serve', '--model-repository', 'models', '--repository-poll-secs=-1'], /--repository-poll-secs "-1"/],
    [['serve', '--model-repository', 'models', '--stub-timeout-seconds', 'soon'], /--stub-timeout-seconds "soon"/],
    [['serve', '--model-repository', 'models', '--log-verbose', 'x'], /--log-verbose "x"/],
    [['serve', '--model-repository', 'models', '--stub-memory-limit-bytes', '1.5e9x'], /--stub-memory-limit-bytes "1.5e9x": expected a whole number of bytes/],
    [['serve', '--model-repository', 'models', '--execute-warn-secs', 'soon'], /--execute-warn-secs "soon"/],
    [['serve', '--model-repository', 'models', '--unload-grace-secs=-2'], /--unload-grace-secs "-2"/],
    [['serve', '--model-repository', 'models', '--http-max-connections', '0'], /--http-max-connections "0": expected a positive whole number/],
    [['serve', '--model-repository', 'models', '--grpc-max-message-bytes', 'lots'], /--grpc-max-message-bytes "lots": expected a positive whole number/],
    [['serve', '--model-repository', 'models', '--http-request-timeout-secs', 'never'], /--http-request-timeout-secs "never"/],
    [['launch'], /unknown command "launch"/],
    ];
    const results = await Promise.all(cases.map(([args]) => run(args)));
    results.forEach((r, i) => {
      expect(r.status, cases[i]![0].join(' ')).toBe(2);
      expect(r.stderr).toMatch(cases[i]![1]);
    });
  }, 120_000);
});

describe('serve', () => {
  let child: ChildProcess | undefined;
  const repo = tempRepository({});
  afterAll(() => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    repo.cleanup();
  });

  it('reports loaded and failed models, turns ready, and shuts down cleanly on SIGTERM', async () => {
    fs.cpSync(path.join(ROOT, 'models/add_sub'), path.join(repo.root, 'add_sub'), { recursive: true });
    for (const [from, name] of [['slow/slow_init', 'slow_init'], ['broken/bad_field', 'bad_field']]) {
      fs.cpSync(path.join(ROOT, 'test/fixtures/repos', from!), path.join(repo.root, name!), { recursive: true });
    }
    const [httpPort, metricsPort] = [await freePort(), await freePort()];
    child = spawn(process.execPath, [BIN, 'serve', '--model-repository', repo.root, '--http-port', String(httpPort),
      '--metrics-port', String(metricsPort), '--allow-grpc', 'false', '--log-format', 'text', '--strict-readiness', 'false'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
    const exited = new Promise<number | null>((resolve) => child!.once('exit', (code) => resolve(code)));

    const url = `http://127.0.0.1:${httpPort}`;
    const ready = async (): Promise<number> => {
      try {
        return (await fetch(`${url}/v2/health/ready`)).status;
      } catch {
        return 0;
      }
    };
    // Live first; ready only once slow_init (1.5 s initialize) is done (not strict: bad_field's failure does not hold it).
    expect(await waitFor(async () => (await ready()) !== 0, 15_000, 50)).toBe(true);
    const statuses = new Set<number>();
    expect(await waitFor(async () => {
      const s = await ready();
      statuses.add(s);
      return s === 200;
    }, 15_000, 50)).toBe(true);
    expect(statuses.has(400)).toBe(true);
    expect((await fetch(`${url}/v2/health/live`)).status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).status).toBe(200);

    expect(output).toMatch(/model 'add_sub' is ready/);
    expect(output).toMatch(/model 'slow_init' is ready/);
    expect(output).toMatch(/model 'bad_field' failed to load: .*bad_field\/config\.pbtxt: max_batch_size/);
    expect(output).toMatch(/2 model\(s\) ready, 1 failed/);

    const pid = child.pid!;
    const stubs = childPids(pid);
    expect(stubs.length).toBeGreaterThanOrEqual(2);
    // (Regions are unlinked once both sides have mapped them, so none show while serving either.)

    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(output).toMatch(/SIGTERM: shutting down/);
    expect(output).toMatch(/finalized after 0 executions/);
    expect(output).toMatch(/stopped/);
    expect(shmLeftovers(pid)).toEqual([]);
    expect(await waitFor(() => stubs.every((p) => !isAlive(p)), 3000)).toBe(true);
  }, 45_000);
});
