/**
 * `npm start` runs the server with `exec`, so the shell npm starts the script in is replaced by
 * node: the SIGTERM npm forwards reaches the server, which drains and exits, instead of killing
 * the shell and leaving the server running orphaned (npm -> sh -> node).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isAlive, waitFor } from './helpers/server.js';

const ROOT = path.resolve(import.meta.dirname, '..');
/** Every process npm started, however deep: killed at the end even when an assertion failed first. */
const started: number[] = [];
afterAll(() => {
  for (const pid of started) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
});

function childrenOf(pid: number): number[] {
  try {
    return fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}
const descendants = (pid: number): number[] => childrenOf(pid).flatMap((c) => [c, ...descendants(c)]);

describe('npm start', () => {
  it('a SIGTERM to npm reaches the server, which drains and exits', async () => {
    const npm = spawn('npm', ['start', '--silent', '--', '--http-port', '0', '--grpc-port', '0', '--metrics-port', '0',
      '--model-control-mode', 'explicit', '--load-model', 'add_sub', '--log-format', 'json'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    npm.stdout!.on('data', (d) => (out += d));
    npm.stderr!.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((resolve) => npm.once('exit', (code) => resolve(code)));
    try {
      expect(await waitFor(() => /1 model\(s\) ready/.test(out), 30_000), out).toBe(true);
      started.push(...descendants(npm.pid!));
      // npm's child is node itself: the script's shell exec'd it.
      const children = childrenOf(npm.pid!);
      expect(children).toHaveLength(1);
      const serverPid = children[0]!;
      const cmdline = fs.readFileSync(`/proc/${serverPid}/cmdline`, 'utf8').split('\0');
      expect(path.basename(cmdline[0]!)).toBe('node');
      expect(cmdline[1]).toBe('bin/stubhost.js');
      npm.kill('SIGTERM');
      await exited;
      expect(await waitFor(() => !isAlive(serverPid), 15_000), 'the server exited').toBe(true);
      expect(out).toMatch(/SIGTERM: shutting down/);
      expect(out).toMatch(/"msg":"stopped"/);
    } finally {
      if (npm.exitCode === null) npm.kill('SIGKILL');
    }
  }, 60_000);
});
