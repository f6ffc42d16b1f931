/**
 * The stub: one per model instance, a child process of the host (`isolation: "process"`, the
 * default) or a worker thread of it (`"thread"`). Usage (the host starts it):
 *   STUBHOST_REGION=<regionName> node dist/stub/main.js   (compiled; tsx is registered only to load a model.ts)
 * (the name comes by environment: argv is readable by every user in /proc, and the name is
 * meant to be known to the host and this stub only; a worker thread gets its own environment).
 * It attaches to the region, starts the health thread, says hello, and serves the host's
 * messages until `fin` or until the host disappears. What differs between a process and a
 * thread is in launch.ts.
 */
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { packageRoot } from '../src/core/package-root.js';
import { Region } from '../src/ipc/region.js';
import { Channel } from '../src/ipc/channel.js';
import { kHealth } from '../src/ipc/layout.js';
import type { HostMessage, StubMessage } from '../src/ipc/protocol.js';
import { StubLoop } from './stub-loop.js';
import { stubLaunch } from './launch.js';
import { registerTypeScript } from './typescript-loader.js';

const launch = stubLaunch();
if (typeof launch === 'string') {
  console.error(launch);
  process.exit(2);
}
const { settings } = launch;
launch.bindToHost();
// A model.ts stub starts registering tsx (hundreds of ms) now, while the health thread boots and
// the host's init arrives; initialize awaits the same registration (its error included).
if (process.env.STUBHOST_PRELOAD_TYPESCRIPT === '1') registerTypeScript().catch(() => {});

const region = Region.attach(settings.regionName, { spinMicros: settings.spinMicros, doorbellFd: settings.doorbellFd });
const channel = new Channel<StubMessage, HostMessage>(region, 'stub', { arena: { maxBytes: settings.arenaMaxBytes } });
channel.setRef(true);

// The health thread is a worker of the stub in both isolations, so a long synchronous execute
// is not taken for death. The worker is plain JavaScript kept in stub/ (tsc does not copy it to
// dist/). execArgv []: it inherits none of the stub's node flags (STUBHOST_STUB_NODE_ARGS),
// which only slow its boot.
const health = new Worker(path.join(packageRoot(), 'stub', 'health-worker.mjs'), {
  execArgv: [],
  workerData: {
    buffer: region.buffer,
    healthIndex: kHealth >> 2,
    hostPid: settings.hostPid,
    watchHost: launch.watchHost,
    intervalMs: settings.healthIntervalMs,
    regionFile: settings.regionName.slice(1),
  },
});
health.on('error', (err) => {
  process.stderr.write(`stub health thread failed: ${err.stack ?? err.message}\n`);
  launch.exit(1);
});

// Serve (say hello, accept init) only once the health thread beats: the host's stub timeout
// starts when initialize finishes, and a fast initialize used to beat a health thread that was
// still booting, so a busy machine saw healthy new stubs declared dead ("no health signal").
const loop = new StubLoop(channel, { exit: launch.exit });
launch.guardModelCode((cause) => loop.reportFatal(cause));
health.once('message', () => {
  health.unref();
  loop.start();
});
