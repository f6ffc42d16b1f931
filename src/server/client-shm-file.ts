/**
 * One client shared-memory object, held open by file descriptor and accessed with pread/pwrite —
 * never mapped. A mapping faults (SIGBUS, the whole host dies) when the client truncates the file
 * under it; a read or write past the end of a file is only a short count, so here a truncated file
 * fails the one request that touched it. The size is checked (fstat) on every access.
 *
 * What the descriptor sees when the client changes the file after registering:
 * - truncated: requests reaching past the new end fail, naming the sizes;
 * - removed (shm_unlink) and not replaced: the object lives on through our descriptor, as a
 *   mapping does in Triton, so a client that unlinks early but keeps using its own mapping works;
 * - replaced (unlinked and created again under the same key, or renamed over): the descriptor
 *   still names the old object, which the client no longer writes, so requests fail and ask for a
 *   new registration instead of silently reading stale bytes.
 *
 * Opening follows shm_open's rules for the key (one path component in /dev/shm), without
 * following symbolic links, and takes regular files only.
 */
import fs from 'node:fs';
import { StubhostError } from '../errors.js';
import { SHM_PREFIX } from '../ipc/shm-names.js';
import { isOwnShm } from '../ipc/own-shm.js';

const SHM_DIR = '/dev/shm';
// O_NONBLOCK: a FIFO planted under the key must not block the event loop on open.
const OPEN_FLAGS = fs.constants.O_RDWR | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK;
/** Largest single read/write Linux performs (MAX_RW_COUNT); longer transfers loop. */
const MAX_IO = 0x7ffff000;

/** Where a request's bytes lie in a registered region, for messages. */
export interface Access {
  /** The tensor, e.g. "input 'INPUT0'". */
  what: string;
  /** The region's name. */
  region: string;
}

export class ClientShmFile {
  private fd: number | undefined;

  private constructor(readonly key: string, private readonly file: string, fd: number, private readonly ino: bigint) {
    this.fd = fd;
  }

  /**
   * Opens `key` for region `name`. Refuses keys shm_open would refuse, keys with stubhost's
   * reserved prefix (as Triton refuses its own, src/common.cc ValidateSharedMemoryKey), and any
   * file that is one of this server's own shared-memory files under another name.
   */
  static open(name: string, key: string): ClientShmFile {
    const file = fileOfKey(name, key);
    let fd: number;
    try {
      fd = fs.openSync(`${SHM_DIR}/${file}`, OPEN_FLAGS);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      const why = code === 'ENOENT' ? 'no such shared memory object' : code === 'ELOOP' ? 'it is a symbolic link' : code === 'EACCES' ? 'permission denied: the server needs read and write access' : code;
      throw invalidArg(`register '${name}': unable to open shared memory key '${key}' (${why}); create it (shm_open with O_RDWR) before registering`);
    }
    try {
      const st = fs.fstatSync(fd, { bigint: true });
      if (!st.isFile()) throw invalidArg(`register '${name}': shared memory key '${key}' is not a shared memory object (not a regular file)`);
      if (isOwnShm(st.dev, st.ino)) {
        throw invalidArg(`register '${name}': shared memory key '${key}' is one of this server's own shared-memory files; register a region your client created`);
      }
      return new ClientShmFile(key, file, fd, st.ino);
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
  }

  get isOpen(): boolean {
    return this.fd !== undefined;
  }

  /** The object's current size in bytes. */
  size(): number {
    return Number(fs.fstatSync(this.descriptor(), { bigint: true }).size);
  }

  /** Copies `length` bytes at file position `position` into a new, 8-byte-aligned buffer. */
  read(position: number, length: number, at: Access): Uint8Array {
    const fd = this.descriptor();
    this.checkSpan(fd, position, length, at);
    let out: Uint8Array;
    try {
      out = new Uint8Array(Buffer.allocUnsafeSlow(length).buffer, 0, length);
    } catch {
      throw new StubhostError('STUBHOST_RESOURCE_EXHAUSTED', `${at.what}: cannot allocate ${length} bytes to copy out of shared memory region '${at.region}'; send a smaller tensor`);
    }
    let done = 0;
    while (done < length) {
      const n = this.io(() => fs.readSync(fd, out, done, Math.min(length - done, MAX_IO), position + done), at, 'read');
      if (n === 0) throw this.truncated(position, length, at); // shrunk between the check and the read
      done += n;
    }
    return out;
  }

  /** Writes `bytes` at file position `position` (the span was checked against the registration). */
  write(position: number, bytes: Uint8Array, at: Access): void {
    const fd = this.descriptor();
    this.checkSpan(fd, position, bytes.byteLength, at);
    let done = 0;
    while (done < bytes.byteLength) {
      done += this.io(() => fs.writeSync(fd, bytes, done, Math.min(bytes.byteLength - done, MAX_IO), position + done), at, 'write');
    }
  }

  /** Closes the descriptor now (unregister): nothing of the object stays held. Safe to call twice. */
  close(): void {
    if (this.fd === undefined) return;
    const fd = this.fd;
    this.fd = undefined;
    fs.closeSync(fd);
  }

  private descriptor(): number {
    if (this.fd === undefined) throw new StubhostError('STUBHOST_INTERNAL', `shared memory key '${this.key}' is closed`);
    return this.fd;
  }

  private checkSpan(fd: number, position: number, length: number, at: Access): void {
    const st = fs.fstatSync(fd, { bigint: true });
    if (st.nlink === 0n && this.replaced()) {
      throw invalidInput(`${at.what}: shared memory region '${at.region}': key '${this.key}' was removed and created again after the region was registered, so the server no longer sees what the client writes; unregister the region and register it again`);
    }
    if (Number(st.size) < position + length) throw this.truncated(position, length, at, Number(st.size));
  }

  /** After the object lost its name: whether a different object now carries the key. */
  private replaced(): boolean {
    try {
      return fs.lstatSync(`${SHM_DIR}/${this.file}`, { bigint: true }).ino !== this.ino;
    } catch {
      return false; // removed, not replaced: our descriptor still holds the object
    }
  }

  private truncated(position: number, length: number, at: Access, size?: number): StubhostError {
    const now = size === undefined ? '' : ` is now ${size} bytes:`;
    return invalidInput(`${at.what}: shared memory region '${at.region}': key '${this.key}'${now} too small for bytes ${position}..${position + length} of the request (truncated after the region was registered); resize it, or unregister and register it again`);
  }

  private io(op: () => number, at: Access, verb: 'read' | 'write'): number {
    try {
      return op();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      throw invalidInput(`${at.what}: cannot ${verb} shared memory region '${at.region}' (key '${this.key}'): ${code}`);
    }
  }
}

/** The /dev/shm entry a key names, by shm_open's rules (leading slashes dropped, one component). */
function fileOfKey(name: string, key: string): string {
  const file = key.replace(/^\/+/, '');
  if (file === '' || file === '.' || file === '..' || file.includes('/') || file.includes('\0') || Buffer.byteLength(file) > 255) {
    throw invalidArg(`cannot register shared memory region '${name}' - invalid shm key '${key}'; a key is a shm_open name such as "/my_region" (one name, no further '/')`);
  }
  if (file.startsWith(SHM_PREFIX)) {
    throw invalidArg(`cannot register shared memory region '${name}' with key '${key}' as the key contains the reserved prefix '${SHM_PREFIX}'`);
  }
  return file;
}

function invalidArg(message: string): StubhostError {
  return new StubhostError('STUBHOST_INVALID_ARG', message);
}

function invalidInput(message: string): StubhostError {
  return new StubhostError('STUBHOST_INVALID_INPUT', message);
}
