/**
 * A doorbell: how the stub wakes the host's event loop. The host makes an eventfd and watches it
 * with uv_poll on its own loop; the stub gets a copy of the fd (an inherited fd of the child
 * process, or the same fd in-process for a thread stub) and writes it when a post finds the
 * host parked on it (see Semaphore, sleeper state BELL). No thread wakes up in between and
 * nothing is armed per wait: a ring is one write(2) in the stub and one epoll wake plus one
 * read(2) (the native side clears the counter before calling back) in the host.
 *
 * One doorbell serves every semaphore the host waits on asynchronously for one stub: a ring
 * calls each listener, and each re-checks its own count (a ring meant for another is spurious).
 */
import { native, type NativeDoorbell } from './native.js';

/** The listening side (the host): owns the eventfd. */
export class DoorbellListener {
  private readonly poll: NativeDoorbell;
  private readonly listeners = new Set<() => void>();
  private closed = false;

  private constructor(readonly fd: number) {
    this.poll = new native.Doorbell(fd, () => {
      for (const listener of this.listeners) listener();
    });
  }

  static create(): DoorbellListener {
    return new DoorbellListener(native.eventfdCreate());
  }

  /** Calls `listener` at every ring (on the event loop); returns the unsubscribe. */
  listen(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Whether watching keeps the process alive (default: it does not). */
  setRef(ref: boolean): void {
    if (this.closed) return;
    if (ref) this.poll.ref();
    else this.poll.unref();
  }

  /** Stops watching and closes the fd. Safe twice. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.listeners.clear();
    this.poll.close();
  }
}

/** The ringing side (the stub): its own copy of the listener's eventfd. */
export class DoorbellRinger {
  private fd: number;

  /** `fd` is ours (from adoptDoorbell): close() closes it. */
  constructor(fd: number) {
    this.fd = fd;
  }

  ring(): void {
    if (this.fd >= 0) native.bellRing(this.fd);
  }

  close(): void {
    if (this.fd < 0) return;
    native.bellClose(this.fd);
    this.fd = -1;
  }
}

/**
 * Takes the doorbell fd the host passed: a close-on-exec copy of it (so no process the stub
 * starts inherits it), checked to be an eventfd. A child process closes the inherited number;
 * a thread stub shares the host's fd table and leaves the host's fd alone.
 */
export function adoptDoorbell(fd: number, closeOriginal: boolean): number {
  return native.bellAdopt(fd, closeOriginal);
}
