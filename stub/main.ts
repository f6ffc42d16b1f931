/**
 * The stub: one child process per model instance. Usage (the host spawns it):
 *   STUBHOST_REGION=<regionName> node dist/stub/main.js   (compiled; tsx is registered only to load a model.ts)
 * (the name comes by environment: argv is readable by every user in /proc, and the name is
 * meant to be known to the host and this stub only).
 * It attaches to the region, starts the health thread, says hello, and serves the host's
 * messages until `fin` or until the host disappears.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { packageRoot } from '../src/core/package-root.js';
import { native } from '../src/ipc/native.js';
import { Region } from '../src/ipc/region.js';
import { Channel } from '../src/ipc/channel.js';
import { kHealth } from '../src/ipc/layout.js';
import type { HostMessage, StubMessage } from '../src/ipc/protocol.js';
import { StubServer } from './server.js';
import { registerTypeScript } from './typescript-loader.js';

const regionName = process.env.STUBHOST_REGION;
if (!regionName) {
  console.error('usage: STUBHOST_REGION=<regionName> node dist/stub/main.js');
  process.exit(2);
}
// A model.ts stub starts registering tsx (hundreds of ms) now, while the health thread boots and
// the host's init arrives; initialize awaits the same registration (its error included).
if (process.env.STUBHOST_PRELOAD_TYPESCRIPT === '1') registerTypeScript().catch(() => {});
const hostPid = Number(process.env.STUBHOST_HOST_PID ?? process.ppid);
// Die with the host even when it is SIGKILLed; then make sure it did not die before the prctl.
native.setParentDeathSignal(9);
if (process.ppid !== hostPid) process.exit(70);

// Under memory pressure the kernel's OOM killer should pick a stub (which restarts), not the
// host that serves every model. Raising one's own score needs no privilege.
try {
  fs.writeFileSync('/proc/self/oom_score_adj', '500');
} catch {
  // not Linux, or /proc is read-only: nothing to adjust
}

const region = Region.attach(regionName, { spinMicros: Number(process.env.STUBHOST_SPIN_US ?? 50) });
// The arena cap (--shm-max-bytes, or the model parameter shm_max_bytes) applies to both sides.
const arenaMaxBytes = Number(process.env.STUBHOST_SHM_MAX_BYTES ?? 0) || undefined;
const channel = new Channel<StubMessage, HostMessage>(region, 'stub', { arena: { maxBytes: arenaMaxBytes } });
channel.setRef(true);

// The worker is plain JavaScript kept in stub/ (tsc does not copy it to dist/). execArgv []: it
// inherits none of the stub's node flags (STUBHOST_STUB_NODE_ARGS), which only slow its boot.
const health = new Worker(path.join(packageRoot(), 'stub', 'health-worker.mjs'), {
  execArgv: [],
  workerData: {
    buffer: region.buffer,
    healthIndex: kHealth >> 2,
    hostPid,
    intervalMs: Number(process.env.STUBHOST_HEALTH_INTERVAL_MS ?? 300),
    regionFile: regionName.slice(1),
  },
});
health.on('error', (err) => {
  process.stderr.write(`stub health thread failed: ${err.stack ?? err.message}\n`);
  process.exit(1);
});

// Serve (say hello, accept init) only once the health thread beats: the host's stub timeout
// starts when initialize finishes, and a fast initialize used to beat a health thread that was
// still booting, so a busy machine saw healthy new stubs declared dead ("no health signal").
const server = new StubServer(channel);
health.once('message', () => {
  health.unref();
  server.start();
});
