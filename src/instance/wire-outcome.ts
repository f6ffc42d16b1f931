/**
 * Wire conversion for one stub: a batch's requests into the host's arena, a response out of the
 * stub's arena into an ExecOutcome, an outcome relayed to a calling stub into the host's arena,
 * model-control files out of the stub's arena. No state: the callers own the blocks.
 */
import type { Arena, Handle, PeerArena } from '../ipc/arena.js';
import { readTensor, readTensorOut, writeTensor, type TensorDesc } from '../ipc/tensor-codec.js';
import { decodeInferRequest, decodeResponse, encodeInferRequest, encodeResponse, type WireRequest, type WireResponse } from '../ipc/wire-request.js';
import { StubhostError } from '../errors.js';
import type { InferRequest, OutputPlacement, TensorValue } from '../core/types.js';
import type { ExecOutcome } from '../execution/contract.js';

/** A batch's requests on the wire, their tensors written into `arena` (blocks appended to `blocks`). */
export function writeRequests(arena: Arena, requests: InferRequest[], rids: number[], modelVersion: number, blocks: Handle[]): WireRequest[] {
  const into: ArenaBlocks = { arena, blocks };
  const n = requests.length;
  const wire: WireRequest[] = new Array(n);
  for (let i = 0; i < n; i++) wire[i] = encodeInferRequest(requests[i]!, rids[i]!, modelVersion, writeInto, into);
  return wire;
}

/** Where a batch's tensors go: one per batch, so the tensor writer is one shared function. */
interface ArenaBlocks {
  arena: Arena;
  blocks: Handle[];
}

function writeInto(t: TensorValue, into: ArenaBlocks): TensorDesc {
  return writeTensor(into.arena, t, into.blocks);
}

/** Where a response's outputs are read from, and where they go. */
interface ReadFrom {
  peer: PeerArena;
  place?: (byteLength: number) => Uint8Array | undefined;
}

function readFrom(d: TensorDesc, from: ReadFrom): TensorValue {
  return readTensorOut(from.peer, d, from.place);
}

/** The read context of a response without placement: one, reused (decodeResponse reads it synchronously). */
const plainRead: ReadFrom = { peer: undefined as unknown as PeerArena };

/**
 * A response read out of the stub's arena: outputs copied once, into `placement` when the
 * request has one (a BLS caller's arena), else private memory. The caller gives the blocks back.
 * `labelOf` names the stub in errors: called only when there is one (not per response).
 */
export function readOutcome(peer: PeerArena, r: WireResponse, labelOf: () => string, placement?: OutputPlacement): ExecOutcome {
  try {
    let from: ReadFrom;
    if (placement) from = { peer, place: (n: number) => placement.place(n) };
    else {
      from = plainRead;
      from.peer = peer;
    }
    let f;
    try {
      f = decodeResponse(r, readFrom, from);
    } finally {
      // The shared context holds no stub's arena past the call.
      plainRead.peer = undefined as unknown as PeerArena;
    }
    if (f.error) return { error: StubhostError.fromBody(f.error) };
    return { outputs: f.outputs, parameters: f.parameters, sites: f.sites };
  } catch (err) {
    return { error: new StubhostError('STUBHOST_PROTOCOL', `${labelOf()}: ${(err as Error).message}`) };
  }
}

/**
 * An outcome for the stub on the wire: an output whose bytes are already a block of `arena`
 * (placed there by the callee's read, see OutputPlacement) is handed over as it is, the others
 * are written. Blocks the stub will release are appended to `blocks`.
 */
export function writeOutcome(arena: Arena, outcome: ExecOutcome, blocks: Handle[], placedBlockOf: (t: TensorValue) => Handle | undefined): WireResponse {
  return encodeResponse({ outputs: outcome.outputs ?? [], parameters: outcome.parameters, error: outcome.error?.toBody() }, (t): TensorDesc => {
    const h = placedBlockOf(t);
    if (!h) return writeTensor(arena, t, blocks);
    blocks.push(h);
    return { n: t.name, t: t.datatype, s: t.shape, h };
  });
}

/** A BLS request from the stub: its tensors stay views of the stub's arena until the call ends. */
export function readBlsRequest(peer: PeerArena, w: WireRequest): InferRequest {
  return decodeInferRequest(w, (d) => readTensor(peer, d));
}

/** Model-control files (loadModel's files), copied out of the stub's arena. */
export function readFiles(peer: PeerArena, descs: TensorDesc[]): Record<string, Uint8Array> {
  const files: Record<string, Uint8Array> = {};
  for (const d of descs) {
    const t = readTensor(peer, d);
    if (t.datatype !== 'UINT8' || !(t.data instanceof Uint8Array)) throw new Error(`file '${t.name}' is not bytes`);
    files[t.name] = t.data.slice();
  }
  return files;
}
