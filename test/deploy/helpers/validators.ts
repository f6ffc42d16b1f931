/**
 * Offline validation of rendered manifests: the npm packages kubernetes-models (precompiled
 * validators of the Kubernetes OpenAPI schemas) and @kubernetes-models/prometheus-operator
 * (ServiceMonitor), at pinned versions, installed once into the cache rather than into the
 * project, and `yaml` to read multi-document output.
 */
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { CACHE_DIR, must } from './run.js';

export const VALIDATOR_PACKAGES = {
  'kubernetes-models': '5.1.0',
  '@kubernetes-models/prometheus-operator': '6.0.0',
  yaml: '2.9.1',
} as const;

const DIR = path.join(CACHE_DIR, `validators-${Object.values(VALIDATOR_PACKAGES).join('-')}`);

/** Installs the pinned packages into the cache (once; about 30 MB). */
export async function ensureValidators(): Promise<void> {
  if (fs.existsSync(path.join(DIR, 'installed.json'))) return;
  // Installed beside the final folder and renamed into place, so suites starting together do not collide.
  fs.mkdirSync(CACHE_DIR, { recursive: true });
  const tmp = fs.mkdtempSync(`${DIR}.tmp-`);
  try {
    fs.writeFileSync(path.join(tmp, 'package.json'), JSON.stringify({ private: true, type: 'module' }));
    const specs = Object.entries(VALIDATOR_PACKAGES).map(([n, v]) => `${n}@${v}`);
    await must('npm', ['install', '--no-audit', '--no-fund', '--ignore-scripts', ...specs], { cwd: tmp });
    fs.writeFileSync(path.join(tmp, 'installed.json'), JSON.stringify(VALIDATOR_PACKAGES));
    try {
      fs.renameSync(tmp, DIR);
    } catch (err) {
      if (!fs.existsSync(path.join(DIR, 'installed.json'))) throw err;
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

function load(spec: string): Promise<any> {
  // Resolved inside the cache folder, not the project's node_modules.
  const [pkg, ...rest] = spec.startsWith('@') ? [spec.split('/').slice(0, 2).join('/'), ...spec.split('/').slice(2)] : spec.split('/');
  const pkgJson = JSON.parse(fs.readFileSync(path.join(DIR, 'node_modules', pkg!, 'package.json'), 'utf8'));
  const sub = rest.length ? `./${rest.join('/')}` : '.';
  const target = resolveExport(pkgJson.exports, sub) ?? (rest.length ? `./${rest.join('/')}.js` : pkgJson.module ?? pkgJson.main);
  return import(pathToFileURL(path.join(DIR, 'node_modules', pkg!, target)).href);
}

function resolveExport(exports: any, sub: string): string | undefined {
  if (!exports) return undefined;
  const entry = typeof exports === 'string' ? (sub === '.' ? exports : undefined) : exports[sub] ?? wildcard(exports, sub);
  if (entry === undefined) return undefined;
  if (typeof entry === 'string') return entry;
  return entry.import?.default ?? entry.import ?? entry.node ?? entry.default;
}

function wildcard(exports: Record<string, any>, sub: string): any {
  for (const [k, v] of Object.entries(exports)) {
    if (!k.includes('*')) continue;
    const [pre, post] = k.split('*') as [string, string];
    if (sub.startsWith(pre) && sub.endsWith(post)) {
      const mid = sub.slice(pre.length, sub.length - post.length);
      const sv = typeof v === 'string' ? v : v.import?.default ?? v.import ?? v.node ?? v.default;
      return typeof sv === 'string' ? sv.replace('*', mid) : undefined;
    }
  }
  return undefined;
}

let yamlModule: any;
/** Every non-empty document of a multi-document YAML text, as plain objects. */
export function parseAllDocuments(text: string): unknown[] {
  if (!yamlModule) throw new Error('call ensureValidators() first');
  return yamlModule.parseAllDocuments(text).map((d: any) => {
    if (d.errors.length) throw new Error(`YAML error: ${d.errors[0].message}`);
    return d.toJS();
  }).filter((o: unknown) => o !== null && o !== undefined);
}

export async function loadYaml(): Promise<void> {
  await ensureValidators();
  yamlModule ??= await load('yaml');
}

/**
 * Validates one manifest against the schema of its apiVersion and kind; throws naming the kind,
 * the object and the first schema error. Kinds neither package knows are an error too.
 */
export async function validateManifest(doc: any): Promise<void> {
  const where = `${doc?.kind ?? '?'} ${doc?.metadata?.name ?? '?'}`;
  if (typeof doc?.apiVersion !== 'string' || typeof doc?.kind !== 'string') throw new Error(`${where}: no apiVersion/kind`);
  const mod = doc.apiVersion.startsWith('monitoring.coreos.com/')
    ? await load(`@kubernetes-models/prometheus-operator/${doc.apiVersion}/${doc.kind}`)
    : await load(`kubernetes-models/${doc.apiVersion}`).catch(() => undefined);
  const Model = mod?.[doc.kind];
  if (!Model) throw new Error(`${where}: no schema for ${doc.apiVersion} ${doc.kind} in ${Object.keys(VALIDATOR_PACKAGES).join(', ')}`);
  try {
    new Model(doc).validate();
  } catch (err) {
    throw new Error(`${where} (${doc.apiVersion}): ${(err as Error).message}`);
  }
}

/** The core/v1 model classes (Container, Volume, ...) and ObjectMeta, for checking the Kubernetes pieces of other kinds. */
export async function k8sClasses(): Promise<Record<string, new (o: unknown) => { validate(): void }>> {
  const { ObjectMeta } = await load('@kubernetes-models/apimachinery/apis/meta/v1/ObjectMeta');
  return { ...(await load('kubernetes-models/v1')), ObjectMeta };
}
