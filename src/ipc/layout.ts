/**
 * The shared-memory layout of a stub's region, as named offsets (bytes). One module owns it so
 * the host and the stub cannot disagree; LAYOUT_VERSION changes whenever anything here does.
 *
 *   [control block | host→stub queue header | stub→host queue header | h2s slots | s2h slots]
 */

export const REGION_MAGIC = 0x53544248; // 'STBH'
export const LAYOUT_VERSION = 3;

/** Control block words (Int32 each). */
export const kMagic = 0;
export const kLayoutVersion = 4;
export const kHostPid = 8;
export const kStubPid = 12;
/** The stub sets it to 1 every 300 ms; the host clears it and expects it set again. */
export const kHealth = 16;
/** RegionState below; written by either side, only ever moves forward. */
export const kState = 20;
export const kRegionSize = 24;
export const kSlotCount = 28;
export const kSlotSize = 32;
/**
 * The CPU each side is pinned to, plus one; -1: it may run on several; 0: not known yet. Both
 * pinned to the same CPU: spinning for the other cannot pay (see spin-gate.ts).
 */
export const kHostCpu = 36;
export const kStubCpu = 40;
/**
 * 1: the host waits for the stub's messages (and free slots) on a doorbell (doorbell.ts), which
 * the stub must ring, so a stub started without the doorbell's fd refuses the region.
 */
export const kHostDoorbell = 44;

export const RegionState = {
  Created: 0,
  Attached: 1,
  Closing: 2,
} as const;

export const CONTROL_BLOCK_SIZE = 64;

/**
 * A queue header: two counting semaphores (filled, free), each a count word and a sleeper-flag
 * word (see semaphore.ts), on separate cache lines so producer and consumer do not bounce one
 * line between cores. `taken` counts the slots the consumer has taken, ever (wrapping): the
 * producer side's spins watch it to tell a working peer from one that does not run.
 */
export const kFilledCount = 0;
export const kFilledSleeper = 4;
export const kTaken = 8;
export const kFreeCount = 64;
export const kFreeSleeper = 68;
export const QUEUE_HEADER_SIZE = 128;

export const H2S_QUEUE_OFFSET = CONTROL_BLOCK_SIZE;
export const S2H_QUEUE_OFFSET = H2S_QUEUE_OFFSET + QUEUE_HEADER_SIZE;
export const SLOTS_OFFSET = S2H_QUEUE_OFFSET + QUEUE_HEADER_SIZE;

/** A slot: [u32 byteLength][u32 flags][payload]. A message longer than one slot spans several. */
export const SLOT_HEADER_SIZE = 8;
export const SLOT_FLAG_MORE = 1;

export const DEFAULT_SLOT_COUNT = 256;
export const DEFAULT_SLOT_SIZE = 1024;

export function regionSize(slotCount: number, slotSize: number): number {
  return SLOTS_OFFSET + 2 * slotCount * slotSize;
}

export function slotsOffset(direction: 'h2s' | 's2h', slotCount: number, slotSize: number): number {
  return direction === 'h2s' ? SLOTS_OFFSET : SLOTS_OFFSET + slotCount * slotSize;
}
