/**
 * setTimeout for delays of any length. Node clamps a delay above 2^31-1 ms (about 24.8 days) to
 * 1 ms, so a client's `parameters.timeout` of a few months would fire at once: longer delays are
 * chained in steps of at most that bound, and Infinity never fires.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export interface LongTimer {
  clear(): void;
  /** Does not keep the process alive (as Timeout.unref). */
  unref(): LongTimer;
}

class ChainedTimer implements LongTimer {
  #timer: NodeJS.Timeout | undefined;
  #unref = false;
  readonly #at: number;
  readonly #fn: () => void;

  constructor(fn: () => void, ms: number) {
    this.#fn = fn;
    this.#at = performance.now() + ms;
    this.#arm(ms);
  }

  #arm(ms: number): void {
    const step = Math.min(ms, MAX_TIMER_MS);
    this.#timer = setTimeout(() => {
      const left = this.#at - performance.now();
      if (left > 0) this.#arm(left);
      else {
        this.#timer = undefined;
        this.#fn();
      }
    }, step);
    if (this.#unref) this.#timer.unref();
  }

  clear(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  unref(): LongTimer {
    this.#unref = true;
    this.#timer?.unref();
    return this;
  }
}

const NEVER: LongTimer = { clear() {}, unref() { return NEVER; } };

/** Calls `fn` once after `ms` milliseconds, however large (Infinity or NaN: never). */
export function setLongTimeout(fn: () => void, ms: number): LongTimer {
  if (!(ms < Infinity)) return NEVER;
  return new ChainedTimer(fn, Math.max(0, ms));
}
