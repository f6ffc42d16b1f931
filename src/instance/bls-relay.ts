/**
 * The calls model code in one stub makes into the server — BLS requests and model control —
 * relayed to the BlsGateway, and their answers back. A BLS callee's outputs are placed straight
 * into this host arena (the request's OutputPlacement) and handed to the calling stub as those
 * blocks: one copy host-side, callee arena to caller arena, as Triton python_backend's BLS
 * response allocator writes outputs into the stub's shared memory (src/request_executor.cc).
 */
import type { Channel } from '../ipc/channel.js';
import type { Block, Handle } from '../ipc/arena.js';
import type { BlsRequest, HostMessage, ModelControl, StubMessage } from '../ipc/protocol.js';
import { errorResponse } from '../ipc/wire-request.js';
import { StubhostError } from '../errors.js';
import type { InferRequest, OutputPlacement, TensorValue } from '../core/types.js';
import type { StreamSink } from '../execution/contract.js';
import type { BlsGateway } from '../execution/bls-gateway.js';
import { readBlsRequest, readFiles, writeOutcome } from './wire-outcome.js';

/** One BLS call in flight. */
interface RelayCall {
  cancel?: () => void;
  /** Blocks placed for the callee's outputs and not handed to the stub yet: freed when the call ends. */
  placed: Block[];
  ended: boolean;
}

export class BlsRelay {
  private readonly calls = new Map<number, RelayCall>();

  constructor(
    private readonly channel: Channel<HostMessage, StubMessage>,
    private readonly gateway: BlsGateway | undefined,
    /** The model whose stub this is (model control names it as the caller). */
    private readonly modelName: string,
    /** False once the stub exited: nothing more is sent or placed. */
    private readonly open: () => boolean,
  ) {}

  /** BLS calls in flight (for the stub's leak checks). */
  get size(): number {
    return this.calls.size;
  }

  call(msg: BlsRequest): void {
    const gateway = this.gateway;
    if (!gateway) {
      this.reply({ k: 'bls-res', c: msg.c, err: { code: 'STUBHOST_UNSUPPORTED', message: 'BLS is not available here' }, final: true });
      return;
    }
    let request: InferRequest;
    try {
      request = readBlsRequest(this.channel.peer, msg.req);
    } catch (err) {
      this.reply({ k: 'bls-res', c: msg.c, err: { code: 'STUBHOST_INVALID_INPUT', message: (err as Error).message }, final: true });
      return;
    }
    const call: RelayCall = { placed: [], ended: false };
    request.outputPlacement = this.placementFor(call);
    const sink: StreamSink = {
      response: (outcome) => {
        if (call.ended || !this.open()) return;
        const blocks: Handle[] = [];
        try {
          const r = writeOutcome(this.channel.arena, outcome, blocks, (t) => takePlaced(call, t));
          this.reply({ k: 'bls-res', c: msg.c, r, final: false });
        } catch (err) {
          for (const h of blocks) this.channel.arena.free(h);
          this.reply({ k: 'bls-res', c: msg.c, r: errorResponse({ code: 'STUBHOST_ARENA_FULL', message: (err as Error).message }), final: false });
        }
      },
      end: (error) => {
        this.end(msg.c, call);
        this.reply(error ? { k: 'bls-res', c: msg.c, err: error.toBody(), final: true } : { k: 'bls-res', c: msg.c, final: true });
      },
    };
    this.calls.set(msg.c, call);
    // The gateway may end the call before it returns (unknown model, invalid inputs): then there
    // is nothing left to cancel.
    const cancel = gateway.infer(request, sink);
    if (!call.ended) call.cancel = cancel;
  }

  /** The stub gave up on a call (the model stopped iterating, a timeout, its request cancelled). */
  cancel(c: number): void {
    const call = this.calls.get(c);
    if (!call) return;
    this.end(c, call);
    call.cancel?.();
  }

  /** Model control from model code: the files are read out of the stub's arena (copied), the answer sent back. */
  control(msg: ModelControl): void {
    const gateway = this.gateway;
    if (!gateway) {
      this.reply({ k: 'ctl-ok', c: msg.c, err: { code: 'STUBHOST_UNSUPPORTED', message: 'model control is not available here' } });
      return;
    }
    let files: Record<string, Uint8Array> | undefined;
    try {
      if (msg.files) files = readFiles(this.channel.peer, msg.files);
    } catch (err) {
      this.reply({ k: 'ctl-ok', c: msg.c, err: { code: 'STUBHOST_PROTOCOL', message: (err as Error).message } });
      return;
    }
    gateway.control({ op: msg.op, name: msg.name, version: msg.version, config: msg.config, files, unloadDependents: msg.unloadDependents, caller: this.modelName }).then(
      (r) => this.reply({ k: 'ctl-ok', c: msg.c, ...(r.ready !== undefined ? { ready: r.ready } : {}) }),
      (err: unknown) => this.reply({ k: 'ctl-ok', c: msg.c, err: err instanceof StubhostError ? err.toBody() : { code: 'STUBHOST_INTERNAL', message: (err as Error).message } }),
    );
  }

  /** The stub exited: every call in flight is cancelled (its arena went with it). */
  close(): void {
    for (const [c, call] of [...this.calls]) {
      this.end(c, call);
      call.cancel?.();
    }
  }

  /** Blocks of this host arena for the callee's outputs, while the call is open and the arena has room. */
  private placementFor(call: RelayCall): OutputPlacement {
    return {
      place: (byteLength) => {
        if (call.ended || !this.open()) return undefined;
        try {
          const block = this.channel.arena.alloc(byteLength);
          call.placed.push(block);
          return block.bytes;
        } catch {
          // Arena full: the output goes to private memory, and its write for the stub reports it.
          return undefined;
        }
      },
    };
  }

  private end(c: number, call: RelayCall): void {
    if (call.ended) return;
    call.ended = true;
    this.calls.delete(c);
    if (this.open()) for (const b of call.placed) this.channel.arena.free(b.handle);
    call.placed = [];
  }

  private reply(m: HostMessage): void {
    if (this.open()) this.channel.send(m);
  }
}

/** The placed block `t`'s bytes are (the same view: a reshape keeps it, a copy does not), taken out of the call's list. */
function takePlaced(call: RelayCall, t: TensorValue): Handle | undefined {
  if (Array.isArray(t.data)) return undefined;
  const data = t.data;
  const i = call.placed.findIndex((b) => b.bytes.buffer === data.buffer && b.bytes.byteOffset === data.byteOffset && b.bytes.byteLength === data.byteLength);
  if (i < 0) return undefined;
  return call.placed.splice(i, 1)[0]!.handle;
}
