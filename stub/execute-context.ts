/**
 * The requests a stub is running and the execute calls they arrived in: what the message loop
 * tracks and the BLS client reads (a call made during an execute belongs to its requests).
 */
import type { Handle } from '../src/ipc/arena.js';

export interface LiveRequest {
  cancelled: { value: boolean };
  /** Decoupled: the final flag has not been sent yet. */
  open: boolean;
  /** The execute call this request arrived in. */
  batch?: ExecuteContext;
  /** The outputs the client asked for (empty: all): a decoupled model's responses are filtered too. */
  outs?: string[];
}

/**
 * One execute call, as the async context of everything it starts (also a decoupled model's
 * sends after execute returned): BLS calls made in it belong to its requests, and are cancelled
 * once every one of those requests is cancelled — the parent-cancel link.
 */
export interface ExecuteContext {
  requests: LiveRequest[];
  /** Its open BLS calls (made at the first one: most executes make none). */
  calls?: Set<number>;
  /**
   * Host-arena blocks of BLS outputs handed to the model as views during this execute: valid,
   * like the inputs, until the execute call returns (non-decoupled models), then released.
   */
  lent: Handle[];
  /** The execute call has returned: BLS results arriving now are copied, not lent. */
  done: boolean;
}

export function allCancelled(context: ExecuteContext): boolean {
  return context.requests.length > 0 && context.requests.every((r) => r.cancelled.value);
}
