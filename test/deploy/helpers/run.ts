/**
 * Commands the deploy suites run (podman, helm, npm, apt-get), and the cache they keep between
 * runs: npm tarballs, the helm binary, the validator packages. Images are cached in podman's own
 * store under localhost/stubhost-test/*.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const REPO_ROOT = path.resolve(import.meta.dirname, '../../..');

/** STUBHOST_DEPLOY_CACHE, else ~/.cache/stubhost-deploy. */
export const CACHE_DIR = process.env.STUBHOST_DEPLOY_CACHE ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'stubhost-deploy');

export interface RunResult { code: number; stdout: string; stderr: string }

/** Runs a command to its end; never throws (the caller reads the code). */
export function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number; input?: string } = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, timeout: opts.timeoutMs ?? 600_000, maxBuffer: 256 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as NodeJS.ErrnoException).code === 'number' ? Number((err as NodeJS.ErrnoException).code) : (err as { code?: unknown }).code === 'ENOENT' ? 127 : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) + (err && code === 127 ? `${cmd}: not found` : '') });
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** Runs a command and returns its stdout; a failure throws with the command and its output's tail. */
export async function must(cmd: string, args: string[], opts: Parameters<typeof run>[2] = {}): Promise<string> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) {
    const tail = (r.stderr + '\n' + r.stdout).trim().split('\n').slice(-40).join('\n');
    throw new Error(`${cmd} ${args.join(' ')} exited with ${r.code}:\n${tail}`);
  }
  return r.stdout;
}

/** The tarball of an npm package version, packed once into the cache with `npm pack`. */
export async function npmPack(name: string, version: string): Promise<string> {
  const dir = path.join(CACHE_DIR, 'npm');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name.replace(/^@/, '').replace('/', '-')}-${version}.tgz`);
  if (!fs.existsSync(file)) {
    const out = await must('npm', ['pack', '--silent', '--pack-destination', dir, `${name}@${version}`], { cwd: dir });
    const packed = path.join(dir, out.trim().split('\n').pop()!);
    if (packed !== file) fs.renameSync(packed, file);
  }
  return file;
}
