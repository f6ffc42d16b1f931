/**
 * Whether spinning for the peer's next post can pay, asked before and during every spin.
 *
 * A spin pays only if the peer runs on another CPU while we poll. It cannot when both processes
 * are pinned to the same single CPU (each side publishes its pinned CPU in the region), and it
 * does not when the peer is descheduled, asleep or busy with something long: then its progress
 * word (how many slots it has taken from us) stops moving and the spin gives up early instead
 * of stealing the CPU the peer may need. Measured on 2 cores with both processes on one CPU,
 * spinning took the round trip from ~5 to 14.5 µs.
 */
import fs from 'node:fs';
import os from 'node:os';

/** A spin ends once the peer's progress word has not moved for this long (see SpinGate). */
export const DEFAULT_STALL_MICROS = 20;

export interface SpinGateOptions {
  /** True while the peer cannot run at the same time as us. */
  sharesOneCpu?: () => boolean;
  /** A word of `words` the peer moves whenever it makes progress (takes a slot we wrote). */
  peerProgress?: { words: Int32Array; index: number };
  /**
   * True while the peer is waking up because we woke it and it has taken nothing since: it is
   * not stalled, just late, so a spin gives it its whole budget before judging it.
   */
  peerWaking?: () => boolean;
  stallMicros?: number;
}

export class SpinGate {
  private readonly sharesOneCpu: () => boolean;
  private readonly progressWords?: Int32Array;
  private readonly progressIndex: number;
  private readonly waking?: () => boolean;
  readonly stallMs: number;

  constructor(options: SpinGateOptions = {}) {
    this.sharesOneCpu = options.sharesOneCpu ?? localCpuOnly;
    this.progressWords = options.peerProgress?.words;
    this.progressIndex = options.peerProgress?.index ?? 0;
    this.waking = options.peerWaking;
    this.stallMs = (options.stallMicros ?? DEFAULT_STALL_MICROS) / 1000;
  }

  canSpin(): boolean {
    return !this.sharesOneCpu();
  }

  /** Whether peerProgress() means anything (no: a spin then only ends on its budget). */
  get tracksProgress(): boolean {
    return this.progressWords !== undefined;
  }

  peerWaking(): boolean {
    return this.waking?.() ?? false;
  }

  peerProgress(): number {
    return this.progressWords ? Atomics.load(this.progressWords, this.progressIndex) : 0;
  }
}

let localParallelism: number | undefined;
/** Without the peer's pinned CPU: when we may run on one CPU only, assume the peer shares it. */
export function localCpuOnly(): boolean {
  localParallelism ??= os.availableParallelism();
  return localParallelism <= 1;
}

/**
 * The CPU this process is pinned to (its main thread's affinity allows exactly one), or -1.
 * Read from /proc (Linux); anywhere else, or if it cannot be read, -1.
 */
export function pinnedCpu(): number {
  let status: string;
  try {
    status = fs.readFileSync('/proc/self/status', 'utf8');
  } catch {
    return -1;
  }
  const list = /^Cpus_allowed_list:\s*(\S+)\s*$/m.exec(status)?.[1];
  if (list === undefined || !/^\d+$/.test(list)) return -1;
  return Number(list);
}
