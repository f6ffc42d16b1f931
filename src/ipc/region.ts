/**
 * A stub's shared-memory region: the control block and the two message queues.
 * The host `create()`s it, the stub `attach()`es to it (and unlinks the file: from then on
 * nothing of it is left in /dev/shm whatever happens to either process).
 */
import { native } from './native.js';
import { trackOwnShm, untrackOwnShm } from './own-shm.js';
import {
  CONTROL_BLOCK_SIZE, DEFAULT_SLOT_COUNT, DEFAULT_SLOT_SIZE, H2S_QUEUE_OFFSET, LAYOUT_VERSION, REGION_MAGIC, RegionState,
  S2H_QUEUE_OFFSET, SLOT_HEADER_SIZE, kHealth, kHostCpu, kHostPid, kLayoutVersion, kMagic, kRegionSize, kSlotCount, kSlotSize,
  kHostDoorbell, kState, kStubCpu, kStubPid, kTaken, regionSize, slotsOffset,
} from './layout.js';
import { DoorbellListener, DoorbellRinger } from './doorbell.js';
import { MessageQueue } from './message-queue.js';
import { localCpuOnly, pinnedCpu } from './spin-gate.js';
import { StubhostError } from '../errors.js';

export interface RegionOptions {
  slotCount?: number;
  slotSize?: number;
  /** Consumer spin before sleeping, in microseconds. */
  spinMicros?: number;
  /**
   * Host: wait for the stub on a doorbell (an eventfd on the event loop) instead of watcher
   * threads; the stub must then be given `doorbellFd` (see attach).
   */
  doorbell?: boolean;
}

export interface AttachOptions {
  spinMicros?: number;
  /** Stub: our copy of the host's doorbell (adoptDoorbell); required when the host listens on one. */
  doorbellFd?: number;
}

/** One side's doorbell: the host listens, the stub rings. */
type Bell = { listen: DoorbellListener; ring?: undefined } | { ring: DoorbellRinger; listen?: undefined };

export class Region {
  readonly words: Int32Array;
  /** host → stub (`parent_to_stub` in Triton's terms). */
  readonly hostToStub: MessageQueue;
  /** stub → host. */
  readonly stubToHost: MessageQueue;

  private readonly bell?: Bell;

  private constructor(readonly name: string, readonly buffer: SharedArrayBuffer, slotCount: number, slotSize: number, spinMicros?: number, bell?: Bell) {
    this.words = new Int32Array(buffer, 0, CONTROL_BLOCK_SIZE / 4);
    this.bell = bell;
    // The host waits on stub→host `filled` and host→stub `free`: those two use the doorbell.
    // While both share one CPU, a burst of messages wakes the peer once, at the end of the turn.
    const sharesOneCpu = () => this.sharesOneCpu();
    // Each direction's consumer watches the other direction's `taken`: the peer working
    // through what this side sent it.
    this.hostToStub = new MessageQueue(buffer, {
      headerOffset: H2S_QUEUE_OFFSET, slotsOffset: slotsOffset('h2s', slotCount, slotSize), slotCount, slotSize, spinMicros,
      sharesOneCpu, peerProgressOffset: S2H_QUEUE_OFFSET + kTaken, peerWaking: () => this.stubToHost.peerWaking(), freeBell: bell, coalesceWakes: sharesOneCpu,
    });
    this.stubToHost = new MessageQueue(buffer, {
      headerOffset: S2H_QUEUE_OFFSET, slotsOffset: slotsOffset('s2h', slotCount, slotSize), slotCount, slotSize, spinMicros,
      sharesOneCpu, peerProgressOffset: H2S_QUEUE_OFFSET + kTaken, peerWaking: () => this.hostToStub.peerWaking(), filledBell: bell, coalesceWakes: sharesOneCpu,
    });
  }

  /**
   * Both sides pinned to the same single CPU (as published at create/attach): neither can run
   * while the other spins. Until both are known, whether this process may use one CPU only.
   */
  sharesOneCpu(): boolean {
    const host = Atomics.load(this.words, kHostCpu >> 2);
    const stub = Atomics.load(this.words, kStubCpu >> 2);
    if (host > 0 && stub > 0) return host === stub;
    if (host < 0 || stub < 0) return false; // one side may run on any of several CPUs
    return localCpuOnly();
  }

  /** Records the CPU this process is pinned to (if any) for the peer; again after re-pinning. */
  publishCpu(side: 'host' | 'stub'): void {
    const cpu = pinnedCpu();
    Atomics.store(this.words, (side === 'host' ? kHostCpu : kStubCpu) >> 2, cpu < 0 ? -1 : cpu + 1);
  }

  /** Host side: a new region file (mode 0600) with empty queues. */
  static create(name: string, options: RegionOptions = {}): Region {
    const slotCount = options.slotCount ?? DEFAULT_SLOT_COUNT;
    const slotSize = options.slotSize ?? DEFAULT_SLOT_SIZE;
    if (slotSize <= SLOT_HEADER_SIZE || slotSize % 8 !== 0) throw new Error(`Region: slot size ${slotSize} must be a multiple of 8 above ${SLOT_HEADER_SIZE}`);
    const size = regionSize(slotCount, slotSize);
    const buffer = native.shmCreate(name, size);
    trackOwnShm(name);
    let bell: Bell | undefined;
    try {
      if (options.doorbell) bell = { listen: DoorbellListener.create() };
    } catch (err) {
      untrackOwnShm(name);
      native.shmUnlink(name);
      throw err;
    }
    const region = new Region(name, buffer, slotCount, slotSize, options.spinMicros, bell);
    const w = region.words;
    Atomics.store(w, kRegionSize >> 2, size);
    Atomics.store(w, kSlotCount >> 2, slotCount);
    Atomics.store(w, kSlotSize >> 2, slotSize);
    Atomics.store(w, kHostPid >> 2, process.pid);
    Atomics.store(w, kStubPid >> 2, 0);
    Atomics.store(w, kStubCpu >> 2, 0);
    region.publishCpu('host');
    Atomics.store(w, kHealth >> 2, 0);
    Atomics.store(w, kState >> 2, RegionState.Created);
    Atomics.store(w, kHostDoorbell >> 2, bell ? 1 : 0);
    region.hostToStub.init();
    region.stubToHost.init();
    Atomics.store(w, kLayoutVersion >> 2, LAYOUT_VERSION);
    // Magic last: a peer that sees it sees a fully initialised region.
    Atomics.store(w, kMagic >> 2, REGION_MAGIC);
    return region;
  }

  /** Stub side: maps the region, checks it, records our pid and removes the file name. */
  static attach(name: string, options: AttachOptions = {}): Region {
    let buffer: SharedArrayBuffer;
    try {
      buffer = native.shmOpen(name);
    } catch (err) {
      throw new StubhostError('STUBHOST_PROTOCOL', `cannot open the stub's shared-memory region ${name}: ${(err as Error).message}`);
    }
    try {
      const region = Region.check(name, buffer, options);
      Atomics.store(region.words, kStubPid >> 2, process.pid);
      region.publishCpu('stub');
      Atomics.store(region.words, kState >> 2, RegionState.Attached);
      return region;
    } finally {
      try {
        native.shmUnlink(name);
      } catch {
        // The host may have unlinked it already.
      }
    }
  }

  private static check(name: string, buffer: SharedArrayBuffer, options: AttachOptions): Region {
    if (buffer.byteLength < CONTROL_BLOCK_SIZE) throw new StubhostError('STUBHOST_PROTOCOL', `region ${name} is truncated: ${buffer.byteLength} bytes`);
    const w = new Int32Array(buffer, 0, CONTROL_BLOCK_SIZE / 4);
    const magic = Atomics.load(w, kMagic >> 2) >>> 0;
    if (magic !== REGION_MAGIC) throw new StubhostError('STUBHOST_PROTOCOL', `region ${name} has wrong magic 0x${magic.toString(16)} (expected 0x${REGION_MAGIC.toString(16)}): not a stubhost region`);
    const version = Atomics.load(w, kLayoutVersion >> 2);
    if (version !== LAYOUT_VERSION) throw new StubhostError('STUBHOST_PROTOCOL', `region ${name} has layout version ${version}, this stub speaks ${LAYOUT_VERSION}: host and stub come from different stubhost versions`);
    const slotCount = Atomics.load(w, kSlotCount >> 2);
    const slotSize = Atomics.load(w, kSlotSize >> 2);
    const size = Atomics.load(w, kRegionSize >> 2);
    if (slotCount <= 0 || slotSize <= SLOT_HEADER_SIZE || size !== regionSize(slotCount, slotSize) || size > buffer.byteLength) {
      throw new StubhostError('STUBHOST_PROTOCOL', `region ${name} has an inconsistent layout (slots ${slotCount} × ${slotSize}, size ${size}, mapped ${buffer.byteLength})`);
    }
    const hostListens = Atomics.load(w, kHostDoorbell >> 2) === 1;
    if (hostListens && options.doorbellFd === undefined) {
      throw new StubhostError('STUBHOST_PROTOCOL', `region ${name}: the host waits on a doorbell and this stub was started without its fd`);
    }
    // A doorbell the host does not listen on is not ours to keep.
    if (!hostListens && options.doorbellFd !== undefined) native.bellClose(options.doorbellFd);
    const bell: Bell | undefined = hostListens ? { ring: new DoorbellRinger(options.doorbellFd!) } : undefined;
    return new Region(name, buffer, slotCount, slotSize, options.spinMicros, bell);
  }

  /** Host: the fd of the doorbell the stub must ring (see RegionOptions.doorbell), if any. */
  get doorbellFd(): number | undefined {
    return this.bell?.listen?.fd;
  }

  get hostPid(): number {
    return Atomics.load(this.words, kHostPid >> 2);
  }

  get stubPid(): number {
    return Atomics.load(this.words, kStubPid >> 2);
  }

  get state(): number {
    return Atomics.load(this.words, kState >> 2);
  }

  set state(value: number) {
    Atomics.store(this.words, kState >> 2, value);
  }

  /** Stub: "I am alive". */
  setHealthy(): void {
    Atomics.store(this.words, kHealth >> 2, 1);
  }

  /** Host: reads the health word and clears it; true if the stub set it since the last call. */
  takeHealth(): boolean {
    return Atomics.exchange(this.words, kHealth >> 2, 0) === 1;
  }

  /** Removes the file name if still there (host side, e.g. when the stub never attached). */
  unlink(): void {
    try {
      native.shmUnlink(this.name);
    } catch {
      // Already unlinked by the stub.
    }
  }

  /** Stops both queues' waiting threads and closes our end of the doorbell. Safe to call twice. */
  close(): void {
    this.hostToStub.close();
    this.stubToHost.close();
    this.bell?.listen?.close();
    this.bell?.ring?.close();
    untrackOwnShm(this.name);
  }
}
