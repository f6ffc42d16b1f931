/**
 * File-descriptor headroom. Every client connection holds a descriptor, and so do a stub's
 * pipes and the shared-memory files it maps while it starts: a flood of idle connections must
 * never leave a crashed stub unable to restart (`spawn EMFILE`). At start the host raises its
 * soft RLIMIT_NOFILE to the hard limit, then keeps the client connections of all endpoints
 * under it with a reserve for everything else.
 */
import { native } from '../ipc/native.js';

export interface FdBudget {
  /** The soft limit in force after raising it. */
  limit: number;
  /** Descriptors kept out of reach of client connections (stubs, files, logs, metrics). */
  reserve: number;
  /** The most client connections (HTTP and gRPC together) the limit allows. */
  maxConnections: number;
}

/** Raises the soft RLIMIT_NOFILE to the hard limit; returns the limit now in force. */
export function raiseFdLimit(): number {
  const { soft, hard } = native.getNofileLimit();
  if (soft >= hard) return soft;
  try {
    return native.setNofileSoftLimit(hard);
  } catch {
    return soft; // not allowed here (a sandbox): live with the soft limit
  }
}

/**
 * The connection budget under `limit`: a quarter of the descriptors, at least 128 and at most
 * 4096, stay reserved; the rest may be client connections.
 */
export function fdBudget(limit: number): FdBudget {
  if (!Number.isFinite(limit)) limit = 1 << 20;
  const reserve = Math.min(4096, Math.max(128, Math.floor(limit / 4)));
  const maxConnections = Math.max(1, limit > 2 * reserve ? limit - reserve : Math.floor(limit / 2));
  return { limit, reserve: limit - maxConnections, maxConnections };
}
