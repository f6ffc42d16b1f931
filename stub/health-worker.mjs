// The stub's health thread (a worker_thread, so a long synchronous execute on the main thread
// does not look like death): sets the health word every interval and, when the host is gone,
// removes the region's shared-memory files and kills this process. A thread stub's health thread
// (watchHost false) only beats: its process is the host.
import { parentPort, workerData } from 'node:worker_threads';
import fs from 'node:fs';

const { buffer, healthIndex, hostPid, watchHost, intervalMs, regionFile } = workerData;
// This region's files only: the region itself and its segments `<region>-h<n>` / `<region>-s<n>`
// (whole names, as src/ipc/shm-names.ts belongsToRegion; this worker is plain JavaScript).
const segmentSuffix = /^-[hs]\d+$/;
const ours = (name) => name === regionFile || (name.startsWith(regionFile) && segmentSuffix.test(name.slice(regionFile.length)));
const words = new Int32Array(buffer);

function hostAlive() {
  try {
    process.kill(hostPid, 0);
    return process.ppid === hostPid;
  } catch (err) {
    return err.code === 'EPERM';
  }
}

function die() {
  try {
    for (const name of fs.readdirSync('/dev/shm')) {
      if (ours(name)) fs.rmSync(`/dev/shm/${name}`, { force: true });
    }
  } finally {
    process.kill(process.pid, 'SIGKILL');
  }
}

Atomics.store(words, healthIndex, 1);
// Tells the main thread the health word is being kept: it starts serving only then.
parentPort.postMessage('beating');
setInterval(() => {
  if (watchHost && !hostAlive()) die();
  Atomics.store(words, healthIndex, 1);
}, intervalMs);
