/**
 * Reading HTTP request bodies: into one buffer sized from Content-Length and placed so the first
 * binary input is 8-byte aligned (typed arrays then view tensor bytes in place), with the body
 * limit enforced as bytes arrive, and Content-Encoding gzip / deflate undone.
 */
import type { IncomingMessage } from 'node:http';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { StubhostError } from '../../errors.js';
import { checkJsonNesting } from '../../core/json-nesting.js';

export function bodyTooLarge(limit: number): StubhostError {
  return new StubhostError('STUBHOST_BODY_TOO_LARGE', `request body exceeds the limit of ${limit} bytes (--http-max-input-size); send a smaller request or raise the limit`);
}

export function declaredLength(req: IncomingMessage): number | undefined {
  const cl = req.headers['content-length'];
  return cl === undefined ? undefined : Number(cl);
}

/**
 * Reads the whole body into one buffer placed so that byte `alignAt` sits on an 8-byte boundary.
 * Rejects with STUBHOST_BODY_TOO_LARGE as soon as the body is known to exceed `limit`, and then
 * stops reading: the rest is never buffered.
 */
export function readBody(req: IncomingMessage, limit: number, alignAt: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = declaredLength(req);
    if (declared !== undefined && declared > limit) {
      reject(bodyTooLarge(limit));
      return;
    }
    new BodyReader(req, limit, (8 - (alignAt % 8)) % 8, declared, resolve, reject);
  });
}

/**
 * The body, when all of it is in already; undefined when it is not (then read it with
 * readDecodedBody). Node's parser hands a request to its handler at the end of the headers and
 * pushes each piece of body to `req` later in the same parse, with the microtasks run after each
 * piece: by the first microtask after the handler started, a body that arrived with the headers
 * (the usual small request) is buffered in `req`, and taking it with read() costs none of the
 * 'data'/'end' listeners readBody sets up. The end of the message may still be to come then (so
 * `req` may never emit 'end': nothing is left to read); a Content-Length body is whole when that
 * many bytes are in, a chunked one only once the message is complete. Same placement and limit as
 * readBody; a compressed body is left to readDecodedBody.
 */
export function receivedBody(req: IncomingMessage, limit: number, alignAt: number): Buffer | undefined {
  if (req.destroyed || req.headers['content-encoding'] !== undefined) return undefined;
  const length = req.readableLength;
  if (!req.complete && length !== declaredLength(req)) return undefined;
  // Content-Length was not checked before; a chunked body's size is known only now.
  if (length > limit) throw bodyTooLarge(limit);
  const shift = (8 - (alignAt % 8)) % 8;
  if (length === 0) return alignedBuffer(0, shift);
  // All of it, in one buffer: the chunk itself when there is one, else a concatenation.
  const chunk = req.read() as Buffer;
  if (chunk.byteOffset % 8 === shift) return chunk;
  const buf = alignedBuffer(chunk.length, shift);
  chunk.copy(buf);
  return buf;
}

/**
 * readBody's listeners. A class whose four listeners are assigned in the constructor rather than
 * closures declared per request: tsx's keepNames wraps each of those in __name (a
 * defineProperty), and this runs for every request.
 */
class BodyReader {
  readonly #req: IncomingMessage;
  readonly #limit: number;
  readonly #shift: number;
  /** Content-Length; undefined for a chunked upload. */
  readonly #declared: number | undefined;
  readonly #resolve: (body: Buffer) => void;
  readonly #reject: (err: unknown) => void;
  #buf: Buffer | undefined;
  readonly #chunks: Buffer[] = [];
  #received = 0;
  #done = false;
  readonly #onData: (chunk: Buffer) => void;
  readonly #onEnd: () => void;
  readonly #onError: (err: unknown) => void;
  readonly #onClose: () => void;

  constructor(req: IncomingMessage, limit: number, shift: number, declared: number | undefined, resolve: (body: Buffer) => void, reject: (err: unknown) => void) {
    this.#req = req;
    this.#limit = limit;
    this.#shift = shift;
    this.#resolve = resolve;
    this.#reject = reject;
    this.#declared = declared;
    this.#onData = (chunk) => this.#data(chunk);
    this.#onEnd = () => this.#finish();
    // The socket failed or was closed mid-body (the client left, or the request timeout ended
    // it): the client's loss, not a server error.
    this.#onError = (err) => this.#finish(new StubhostError('STUBHOST_CANCELLED', `the request body was not received in full (${(err as Error).message})`));
    this.#onClose = () => this.#finish(new StubhostError('STUBHOST_CANCELLED', 'client closed the connection before sending the whole body'));
    req.on('data', this.#onData);
    req.on('end', this.#onEnd);
    req.on('error', this.#onError);
    req.on('close', this.#onClose);
  }

  #finish(err?: unknown): void {
    if (this.#done) return;
    this.#done = true;
    const req = this.#req;
    req.off('data', this.#onData);
    req.off('end', this.#onEnd);
    req.off('error', this.#onError);
    req.off('close', this.#onClose);
    if (err !== undefined) {
      req.pause();
      this.#reject(err);
      return;
    }
    let buf = this.#buf;
    if (buf === undefined) {
      // Chunked upload (or no body): one copy into an aligned buffer, now that the size is known.
      buf = alignedBuffer(this.#received, this.#shift);
      let pos = 0;
      for (const c of this.#chunks) {
        c.copy(buf, pos);
        pos += c.length;
      }
    } else if (this.#received !== buf.length) {
      buf = buf.subarray(0, this.#received);
    }
    this.#resolve(buf);
  }

  #data(chunk: Buffer): void {
    const received = this.#received;
    if (received + chunk.length > this.#limit) {
      this.#finish(bodyTooLarge(this.#limit));
      return;
    }
    let buf = this.#buf;
    const declared = this.#declared;
    if (buf === undefined && declared !== undefined) {
      // The first chunk. The usual small body is all in it, a buffer of its own (Node's parser
      // copies each chunk out of the socket's): kept as it is when it is placed as asked.
      if (chunk.length === declared && chunk.byteOffset % 8 === this.#shift) {
        this.#buf = chunk;
        this.#received = declared;
        return;
      }
      buf = this.#buf = alignedBuffer(declared, this.#shift);
    }
    if (buf !== undefined) {
      if (received + chunk.length > buf.length) {
        this.#finish(new StubhostError('STUBHOST_INVALID_ARG', 'request body is longer than its Content-Length'));
        return;
      }
      chunk.copy(buf, received);
    } else {
      this.#chunks.push(chunk);
    }
    this.#received = received + chunk.length;
  }
}

/**
 * `length` bytes at `shift` past an 8-byte boundary of their ArrayBuffer. Small ones come from
 * Node's buffer pool, whose slices start on 8-byte boundaries: no ArrayBuffer of its own for
 * the usual small JSON body.
 */
function alignedBuffer(length: number, shift: number): Buffer {
  return Buffer.allocUnsafe(length + shift).subarray(shift);
}

const gunzip = promisify(zlib.gunzip);
const inflate = promisify(zlib.inflate);

/**
 * readBody, then undoes `Content-Encoding: gzip | deflate` (tritonclient's request compression)
 * on the thread pool, with the same limit on the decompressed size.
 */
export function readDecodedBody(req: IncomingMessage, limit: number, alignAt: number): Promise<Buffer> {
  const header = req.headers['content-encoding'];
  // Not async: an uncompressed body is readBody's own promise, without one more wrapped around it.
  if (header === undefined) return readBody(req, limit, alignAt);
  const encoding = header.trim().toLowerCase();
  if (encoding === '' || encoding === 'identity') return readBody(req, limit, alignAt);
  return readCompressedBody(req, limit, alignAt, encoding);
}

async function readCompressedBody(req: IncomingMessage, limit: number, alignAt: number, encoding: string): Promise<Buffer> {
  if (encoding !== 'gzip' && encoding !== 'deflate') {
    throw new StubhostError('STUBHOST_UNSUPPORTED', `Content-Encoding '${encoding}' is not supported; send gzip, deflate or an uncompressed body`);
  }
  const raw = await readBody(req, limit, 0);
  let out: Buffer;
  try {
    out = await (encoding === 'gzip' ? gunzip : inflate)(raw, { maxOutputLength: limit });
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') throw bodyTooLarge(limit);
    throw new StubhostError('STUBHOST_INVALID_ARG', `cannot decompress the ${encoding} request body: ${(err as Error).message}`);
  }
  const shift = (8 - (alignAt % 8)) % 8;
  if (shift === 0 && out.byteOffset % 8 === 0) return out;
  const aligned = alignedBuffer(out.length, shift);
  out.copy(aligned);
  return aligned;
}

/** A JSON object body; undefined for an empty body (the control routes take optional bodies). */
export async function readJsonObject(req: IncomingMessage, limit: number): Promise<Record<string, unknown> | undefined> {
  const body = await readDecodedBody(req, limit, 0);
  if (body.length === 0) return undefined;
  checkJsonNesting(body, 'the request body');
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new StubhostError('STUBHOST_INVALID_ARG', `malformed JSON in the request body: ${(err as Error).message}`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    throw new StubhostError('STUBHOST_INVALID_ARG', 'the request body must be a JSON object');
  }
  return doc as Record<string, unknown>;
}

