/**
 * The gRPC front-end: Triton's `inference.GRPCInferenceService` on @grpc/grpc-js, serving an
 * InferenceService. It only translates: validation lives in src/core/validate.ts (shared with HTTP),
 * message conversion in ./codec.ts, and every error leaves as the gRPC status of its StubhostError code.
 */
import net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import type { InferenceService } from '../../core/service.js';
import { StubhostError, grpcStatusOf, toStubhostError } from '../../errors.js';
import {
  decodeInferRequest, encodeInferResponse,
  type InferParameterMsg, type ModelInferRequestMsg, type ModelInferResponseMsg,
} from './codec.js';
import { healthServiceDefinition, inferenceServiceDefinition } from './proto.js';
import { withFastInferCodec } from './infer-wire.js';
import { type SharedMemoryRegistry, cudaShmRegisterUnsupported, cudaShmStatus } from '../shm-registry.js';
import { parseModelVersion } from '../../core/validate.js';
import { type CancelListener, CancelSource } from '../../core/cancel-signal.js';
import { grpcRestrictedMessage, headerMatches, type RestrictedCategory, type RestrictedFeatures, type Restriction } from '../restricted-features.js';
import { grpcServerCredentials, type GrpcTls } from './tls.js';
import { type LoadValueReader, loadOptions, unloadOptions } from '../request-options.js';

export interface GrpcLogger {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

export interface GrpcServerOptions {
  port: number;
  /** Default 0.0.0.0. */
  host?: string;
  /**
   * Largest request or response message (RESOURCE_EXHAUSTED beyond it, before it is buffered);
   * default DEFAULT_GRPC_MAX_MESSAGE_BYTES, the HTTP body limit.
   */
  maxMessageBytes?: number;
  /** Open client connections at once; more are closed as they are accepted. Default: unlimited. */
  maxConnections?: number;
  logger?: GrpcLogger;
  /** close() waits this long for calls in flight before cancelling them; default 2000 ms. */
  shutdownGraceMs?: number;
  /**
   * The server's system shared-memory regions (shared with the HTTP front-end). Without it the
   * SystemSharedMemory* RPCs and tensors that name a region answer UNIMPLEMENTED.
   */
  shm?: SharedMemoryRegistry;
  /** Protocol categories open only to calls with a given metadata key (Triton's --grpc-restricted-protocol). */
  restrictedProtocols?: RestrictedFeatures;
  /** TLS (and with `mutual`, client certificates); plaintext without. */
  tls?: GrpcTls;
}

/**
 * The restriction category of every RPC, as Triton's src/grpc/grpc_server.cc registers them
 * (each CommonHandler::Register* with restricted_keys_.Get(...)) and src/grpc/infer_handler.cc /
 * stream_infer_handler.cc for the two inference RPCs. A Record, so a new RPC cannot go unmapped.
 */
export const GRPC_METHOD_CATEGORY = {
  ServerLive: 'health', ServerReady: 'health', ModelReady: 'health',
  ServerMetadata: 'metadata', ModelMetadata: 'metadata',
  ModelInfer: 'inference', ModelStreamInfer: 'inference',
  ModelConfig: 'model-config',
  ModelStatistics: 'statistics',
  RepositoryIndex: 'model-repository', RepositoryModelLoad: 'model-repository', RepositoryModelUnload: 'model-repository',
  SystemSharedMemoryStatus: 'shared-memory', SystemSharedMemoryRegister: 'shared-memory', SystemSharedMemoryUnregister: 'shared-memory',
  CudaSharedMemoryStatus: 'shared-memory', CudaSharedMemoryRegister: 'shared-memory', CudaSharedMemoryUnregister: 'shared-memory',
  TraceSetting: 'trace',
  LogSettings: 'logging',
  // grpc.health.v1.Health/Check, which Triton registers under its health category too.
  Check: 'health',
} as const satisfies Record<string, RestrictedCategory>;

/** Triton's words for a decoupled model on ModelInfer (src/grpc/infer_handler.cc ModelInferHandler::Execute). */
export const GRPC_DECOUPLED_UNSUPPORTED = "ModelInfer RPC doesn't support models with decoupled transaction policy";

type GrpcMethod = keyof typeof GRPC_METHOD_CATEGORY;
type Handler = grpc.handleUnaryCall<any, any> | grpc.handleBidiStreamingCall<any, any>;

type Unary = (call: grpc.ServerUnaryCall<any, any>) => unknown;

interface StreamMsg {
  error_message: string;
  infer_response?: Partial<ModelInferResponseMsg>;
}

interface RepoParamMsg {
  parameter_choice?: 'bool_param' | 'int64_param' | 'string_param' | 'bytes_param';
  bool_param?: boolean;
  int64_param?: string;
  string_param?: string;
  bytes_param?: Uint8Array;
}

interface LogSettingMsg {
  parameter_choice?: 'bool_param' | 'uint32_param' | 'string_param';
  bool_param?: boolean;
  uint32_param?: number;
  string_param?: string;
}

const opt = (s: string): string | undefined => (s === '' ? undefined : s);

/** The HTTP front-end's body limit: one size limit for a request whichever protocol carries it. */
export const DEFAULT_GRPC_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

/** A request's version as the service takes it, read as Triton reads it (src/common.cc GetModelVersionFromString). */
function versionOf(version: string | undefined): string | undefined {
  const n = parseModelVersion(version);
  return n === undefined ? undefined : String(n);
}

function cancelledError(): StubhostError {
  return new StubhostError('STUBHOST_CANCELLED', 'the client cancelled the request');
}

export class GrpcServer {
  readonly #service: InferenceService;
  readonly #opts: GrpcServerOptions;
  #server: grpc.Server | undefined;
  /** With a connection cap: the listening socket grpc-js is fed from. */
  #listener: net.Server | undefined;
  #closing: Promise<void> | undefined;

  constructor(service: InferenceService, opts: GrpcServerOptions) {
    this.#service = service;
    this.#opts = opts;
  }

  /** Binds and serves; resolves with the bound port (useful with port 0). */
  async start(): Promise<number> {
    if (this.#server) throw new StubhostError('STUBHOST_INTERNAL', 'GrpcServer.start() called twice');
    const max = this.#opts.maxMessageBytes ?? DEFAULT_GRPC_MAX_MESSAGE_BYTES;
    const server = new grpc.Server({
      'grpc.max_receive_message_length': max,
      'grpc.max_send_message_length': max,
      interceptors: [explainSizeLimit(max)],
    });
    const { Check, ...inference } = this.#restricted(this.#handlers());
    server.addService(withFastInferCodec(inferenceServiceDefinition()), inference);
    server.addService(healthServiceDefinition(), { Check: Check! });
    this.#server = server;
    const host = this.#opts.host ?? '0.0.0.0';
    // An IPv6 literal is bracketed in a gRPC address.
    const address = `${host.includes(':') && !host.startsWith('[') ? `[${host}]` : host}:${this.#opts.port}`;
    const credentials = grpcServerCredentials(this.#opts.tls);
    const cap = this.#opts.maxConnections;
    if (cap !== undefined && cap > 0) return this.#listenCapped(server, credentials, host, cap);
    return new Promise<number>((resolve, reject) => {
      server.bindAsync(address, credentials, (err, port) => {
        if (err) {
          reject(new StubhostError('STUBHOST_UNAVAILABLE', `gRPC server could not bind ${address}: ${err.message}`, { cause: err }));
          return;
        }
        this.#opts.logger?.info(`gRPC server listening on ${host}:${port}${this.#tlsNote()}`);
        resolve(port);
      });
    });
  }

  #tlsNote(): string {
    return this.#opts.tls ? (this.#opts.tls.mutual ? ' (mutual TLS)' : ' (TLS)') : '';
  }

  /**
   * Listens on a net.Server of our own, which closes connections over `cap` as it accepts them,
   * and hands the others to grpc-js (its connection injector). grpc-js itself has no such cap.
   */
  #listenCapped(server: grpc.Server, credentials: grpc.ServerCredentials, host: string, cap: number): Promise<number> {
    const injector = server.createConnectionInjector(credentials);
    const listener = net.createServer((socket) => injector.injectConnection(socket));
    listener.maxConnections = cap;
    let lastWarned = 0;
    let dropped = 0;
    listener.on('drop', () => {
      dropped++;
      const now = Date.now();
      if (now - lastWarned < 10_000) return;
      lastWarned = now;
      this.#opts.logger?.warn(`gRPC connection cap reached: ${dropped} connection(s) over --grpc-max-connections ${cap} were closed`);
      dropped = 0;
    });
    this.#listener = listener;
    return new Promise<number>((resolve, reject) => {
      listener.once('error', (err) => reject(new StubhostError('STUBHOST_UNAVAILABLE', `gRPC server could not bind ${host}:${this.#opts.port}: ${err.message}`, { cause: err })));
      listener.listen(this.#opts.port, host, () => {
        const port = (listener.address() as net.AddressInfo).port;
        this.#opts.logger?.info(`gRPC server listening on ${host}:${port}${this.#tlsNote()}`);
        resolve(port);
      });
    });
  }

  /**
   * Stops accepting calls, lets calls in flight finish for `shutdownGraceMs`, then cancels the
   * rest (their requests see an aborted signal). Safe to call twice.
   */
  close(): Promise<void> {
    const server = this.#server;
    if (!server) return Promise.resolve();
    this.#listener?.close();
    this.#closing ??= new Promise<void>((resolve) => {
      // Streams stay open as long as the client wants, so a graceful shutdown alone may never end.
      const timer = setTimeout(() => {
        server.forceShutdown();
        resolve();
      }, this.#opts.shutdownGraceMs ?? 2000);
      server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    return this.#closing;
  }

  #serviceError(err: unknown): Partial<grpc.StatusObject> {
    if (!(err instanceof StubhostError)) {
      this.#opts.logger?.error(`gRPC handler failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
    }
    const e = toStubhostError(err);
    return { code: grpcStatusOf(e), details: e.message };
  }

  #unary(fn: Unary): grpc.handleUnaryCall<any, any> {
    return (call, callback) => {
      Promise.resolve()
        .then(() => fn(call))
        .then((res) => callback(null, res), (err) => callback(this.#serviceError(err)));
    };
  }

  /**
   * Wraps the handler of every restricted RPC in the header check, once at start. A call without
   * the header (or with another value) gets Triton's UNAVAILABLE "This protocol is restricted,
   * expecting header '...'" before its request is looked at; a stream is ended with it at once.
   */
  #restricted(handlers: Record<GrpcMethod, Handler>): grpc.UntypedServiceImplementation {
    const restrictions = this.#opts.restrictedProtocols;
    if (restrictions === undefined || restrictions.size === 0) return handlers;
    const out: grpc.UntypedServiceImplementation = {};
    for (const method of Object.keys(handlers) as GrpcMethod[]) {
      const handler = handlers[method];
      const restriction = restrictions.get(GRPC_METHOD_CATEGORY[method]);
      if (restriction === undefined) {
        out[method] = handler;
      } else if (method === 'ModelStreamInfer') {
        const stream = handler as grpc.handleBidiStreamingCall<any, any>;
        out[method] = (call: grpc.ServerDuplexStream<any, any>) => {
          if (allowed(restriction, call.metadata)) stream(call);
          else call.emit('error', refusal(restriction));
        };
      } else {
        const unary = handler as grpc.handleUnaryCall<any, any>;
        out[method] = (call: grpc.ServerUnaryCall<any, any>, callback: grpc.sendUnaryData<any>) => {
          if (allowed(restriction, call.metadata)) unary(call, callback);
          else callback(refusal(restriction));
        };
      }
    }
    return out;
  }

  #handlers(): Record<GrpcMethod, Handler> {
    const svc = this.#service;
    const unimplemented = (what: string): grpc.handleUnaryCall<any, any> =>
      this.#unary(() => { throw new StubhostError('STUBHOST_UNSUPPORTED', `${what} is not supported by stubhost's gRPC front-end`); });

    return {
      ServerLive: this.#unary(() => ({ live: svc.isLive() })),
      ServerReady: this.#unary(async () => ({ ready: await svc.isReady() })),
      ModelReady: this.#unary(async (call) => ({ ready: await svc.modelReady(call.request.name, versionOf(call.request.version)) })),
      ServerMetadata: this.#unary(() => svc.serverMetadata()),
      ModelMetadata: this.#unary((call) => svc.modelMetadata(call.request.name, versionOf(call.request.version))),
      ModelConfig: this.#unary((call) => ({ config: svc.modelConfig(call.request.name, versionOf(call.request.version)) })),
      ModelStatistics: this.#unary((call) => ({
        model_stats: svc.modelStatistics(opt(call.request.name), versionOf(call.request.version)),
      })),
      // As Triton's CommonHandler::RegisterHealthCheck (src/grpc/grpc_server.cc): whatever service
      // is named, SERVING while the server is ready, NOT_SERVING otherwise.
      Check: this.#unary(() => ({ status: svc.isReady() ? 'SERVING' : 'NOT_SERVING' })),
      RepositoryIndex: this.#unary((call) => ({ models: svc.repositoryIndex(call.request.ready) })),
      RepositoryModelLoad: this.#unary(async (call) => {
        await svc.loadModel(call.request.model_name, loadOptions(call.request.parameters ?? {}, GRPC_LOAD_VALUES));
        return {};
      }),
      RepositoryModelUnload: this.#unary(async (call) => {
        await svc.unloadModel(call.request.model_name, unloadOptions((call.request.parameters ?? {}) as Record<string, RepoParamMsg>, repoBool));
        return {};
      }),
      LogSettings: this.#unary((call) => {
        const entries = Object.entries((call.request.settings ?? {}) as Record<string, LogSettingMsg>);
        const update: Record<string, unknown> = {};
        for (const [k, v] of entries) update[k] = v.parameter_choice ? v[v.parameter_choice] : undefined;
        const current = svc.logSettings(entries.length > 0 ? update : undefined, 'grpc');
        return { settings: encodeLogSettings(current) };
      }),
      // Not through #unary: the hot path, answered with one promise and no extra microtasks.
      ModelInfer: (call: grpc.ServerUnaryCall<ModelInferRequestMsg, ModelInferResponseMsg>, callback: grpc.sendUnaryData<ModelInferResponseMsg>) =>
        void this.#modelInfer(call, callback),
      ModelStreamInfer: (call: grpc.ServerDuplexStream<ModelInferRequestMsg, StreamMsg>) => this.#modelStreamInfer(call),
      SystemSharedMemoryStatus: this.#unary((call) => {
        const regions: Record<string, unknown> = {};
        for (const r of this.#shm().status(opt(call.request.name))) regions[r.name] = r;
        return { regions };
      }),
      SystemSharedMemoryRegister: this.#unary((call) => {
        const { name, key, offset, byte_size } = call.request;
        this.#shm().register(name, key, Number(offset), Number(byte_size));
        return {};
      }),
      SystemSharedMemoryUnregister: this.#unary((call) => {
        this.#shm().unregister(opt(call.request.name));
        return {};
      }),
      // CUDA shared memory as Triton built without GPUs answers it (src/grpc/grpc_server.cc): status
      // lists no region; register fails (without GPUs Triton does not look at the client-shm flag
      // there); unregister is refused while client shared memory is off, and succeeds otherwise.
      CudaSharedMemoryStatus: this.#unary((call) => {
        cudaShmStatus(this.#opts.shm, opt(call.request.name));
        return { regions: {} };
      }),
      CudaSharedMemoryRegister: this.#unary((call) => { throw cudaShmRegisterUnsupported(call.request.name); }),
      CudaSharedMemoryUnregister: this.#unary(() => {
        this.#shm().assertAllowed();
        return {};
      }),
      TraceSetting: unimplemented('tracing'),
    };
  }

  #shm(): SharedMemoryRegistry {
    if (this.#opts.shm === undefined) throw new StubhostError('STUBHOST_UNSUPPORTED', 'system shared memory is not enabled on this server');
    return this.#opts.shm;
  }

  /**
   * Answers through `callback` itself, once the request's resources are released (and outside
   * the try, so a callback that throws cannot answer twice).
   */
  async #modelInfer(
    call: grpc.ServerUnaryCall<ModelInferRequestMsg, ModelInferResponseMsg>, callback: grpc.sendUnaryData<ModelInferResponseMsg>,
  ): Promise<void> {
    let response: ModelInferResponseMsg | undefined;
    let error: Partial<grpc.StatusObject> | undefined;
    let signal: CallSignal | undefined;
    const shm = this.#opts.shm?.session();
    try {
      const msg = call.request;
      // As Triton's ModelInferHandler::Execute: the version, then the model's transaction policy,
      // before the request is built or anything runs.
      // One lookup: the contract validated against is the version's that runs the request.
      const model = this.#service.resolve(msg.model_name, versionOf(msg.model_version));
      const contract = model.contract;
      if (contract.decoupled) throw new StubhostError('STUBHOST_NOT_IMPLEMENTED', GRPC_DECOUPLED_UNSUPPORTED);
      const { request } = decodeInferRequest(msg, contract, shm);
      signal = new CallSignal(call);
      request.signal = signal;
      response = encodeInferResponse(await model.infer(request), request, shm);
    } catch (err) {
      error = this.#serviceError(err);
    } finally {
      signal?.answered();
      shm?.release();
    }
    if (response !== undefined) callback(null, response);
    else callback(error!);
  }

  /**
   * Requests on one stream run concurrently, each written back as its responses arrive; an error
   * fails that request only (error_message) and the stream stays open. The stream ends after the
   * client half-closes and every request in flight has finished.
   */
  #modelStreamInfer(call: grpc.ServerDuplexStream<ModelInferRequestMsg, StreamMsg>): void {
    const stream = new OpenStream(call);
    call.on('data', (msg: ModelInferRequestMsg) => void this.#streamRequest(stream, msg));
    call.on('end', () => {
      stream.clientDone = true;
      stream.endIfDone();
    });
    call.on('cancelled', () => {
      // One reason for all: a stream may hold tens of thousands of queued requests.
      const reason = cancelledError();
      for (const source of stream.inflight) source.abort(reason);
    });
    call.on('error', (err) => this.#opts.logger?.warn(`ModelStreamInfer stream error: ${err.message}`));
  }

  async #streamRequest(stream: OpenStream, msg: ModelInferRequestMsg): Promise<void> {
    const { call, inflight } = stream;
    const cancel = new CancelSource();
    inflight.add(cancel);
    const shm = this.#opts.shm?.session();
    try {
      const model = this.#service.resolve(msg.model_name, versionOf(msg.model_version));
      const contract = model.contract;
      const { request, enableEmptyFinalResponse } = decodeInferRequest(msg, contract, shm);
      request.signal = cancel;
      let sentFinal = false;
      for await (const result of model.inferStream(request)) {
        if (call.cancelled) break;
        const resp = encodeInferResponse(result, request, shm);
        // A non-decoupled model's one response is its last; a decoupled model's response is final
        // when the model sent its final flag with it. A flag sent alone is reported by the empty
        // final response, if the client asked for it (as Triton does).
        const final = !contract.decoupled || result.final === true;
        sentFinal ||= final;
        resp.parameters.triton_final_response = { bool_param: final };
        await writeStream(call, { error_message: '', infer_response: resp });
      }
      if (contract.decoupled && enableEmptyFinalResponse && !sentFinal && !call.cancelled) {
        const final: Record<string, InferParameterMsg> = { triton_final_response: { bool_param: true } };
        await writeStream(call, { error_message: '', infer_response: { ...responseHeader(msg, contract.version), parameters: final } });
      }
    } catch (err) {
      if (call.cancelled) return;
      const e = toStubhostError(err);
      if (!(err instanceof StubhostError)) this.#serviceError(err);
      await writeStream(call, { error_message: e.message, infer_response: responseHeader(msg, msg.model_version) });
    } finally {
      inflight.delete(cancel);
      shm?.release();
      stream.endIfDone();
    }
  }
}

/**
 * A ModelInfer call's cancellation (the request's signal): aborted when the client cancels or its
 * deadline passes. It listens to the call only once something listens to it: a request answered
 * before anything waits on it (refused, or answered without a stub) costs no listener.
 */
export class CallSignal extends CancelSource {
  /** The call, until the request is answered. */
  #call: grpc.ServerUnaryCall<ModelInferRequestMsg, ModelInferResponseMsg> | undefined;
  #listening = false;

  constructor(call: grpc.ServerUnaryCall<ModelInferRequestMsg, ModelInferResponseMsg>) {
    super();
    this.#call = call;
    if (call.cancelled) this.abort(cancelledError());
  }

  override addEventListener(type: 'abort', listener: CancelListener, options?: { once?: boolean }): void {
    super.addEventListener(type, listener, options);
    const call = this.#call;
    if (this.#listening || call === undefined || this.aborted) return;
    this.#listening = true;
    // 'cancelled' also fires when the client's deadline passes, and at the end of every call,
    // answered or not: #call tells those apart.
    call.on('cancelled', () => {
      if (this.#call !== undefined) this.abort(cancelledError());
    });
    // Cancelled since it was made: aborted on a later tick, as grpc-js reports it, not inside the
    // listener's registration (the caller may not be ready for it yet).
    if (call.cancelled) {
      process.nextTick(() => {
        if (this.#call !== undefined) this.abort(cancelledError());
      });
    }
  }

  /**
   * The request is answered: the call's end no longer cancels it. The listener is left on the
   * call (dropped with it) rather than taken off: it only returns.
   */
  answered(): void {
    this.#call = undefined;
  }
}

/** A ModelStreamInfer call: its requests in flight (their cancel sources), and whether the client has half-closed. */
class OpenStream {
  readonly call: grpc.ServerDuplexStream<ModelInferRequestMsg, StreamMsg>;
  readonly inflight = new Set<CancelSource>();
  clientDone = false;

  constructor(call: grpc.ServerDuplexStream<ModelInferRequestMsg, StreamMsg>) {
    this.call = call;
  }

  /** The stream ends after the client half-closes and every request in flight has finished. */
  endIfDone(): void {
    const call = this.call;
    if (this.clientDone && this.inflight.size === 0 && !call.cancelled && !call.writableEnded) call.end();
  }
}

/** The fields of a stream response that carries no outputs (an error, or the empty final response). */
function responseHeader(msg: ModelInferRequestMsg, version: string): Partial<ModelInferResponseMsg> {
  return { model_name: msg.model_name, model_version: version, id: msg.id };
}

function allowed(restriction: Restriction, metadata: grpc.Metadata): boolean {
  const sent = metadata.get(restriction.header)[0];
  return headerMatches(restriction, typeof sent === 'string' ? sent : undefined);
}

function refusal(restriction: Restriction): Partial<grpc.StatusObject> {
  return { code: grpc.status.UNAVAILABLE, details: grpcRestrictedMessage(restriction) };
}

/**
 * Names the limit and the flag in grpc-js's "Received message larger than max (N vs M)". grpc-js
 * sends that status from the innermost call object (the one the first interceptor is handed)
 * when a message's length prefix exceeds the limit, before buffering it, and no interceptor
 * sees it: so the interceptor wraps that object's sendStatus. Other statuses pass unchanged.
 */
function explainSizeLimit(max: number): grpc.ServerInterceptor {
  const explained = (status: CallStatus): CallStatus => {
    if (status.code === grpc.status.RESOURCE_EXHAUSTED && /^Received message (larger than max|that decompresses)/.test(status.details ?? '')) {
      return { ...status, details: `request message exceeds the gRPC message size limit of ${max} bytes (--grpc-max-message-bytes): ${status.details}; send a smaller request or raise the limit` };
    }
    return status;
  };
  // One function for every call, not a closure and a bound method per call: it calls the
  // sendStatus of the call's class, taken from the first call.
  let callClass: object | undefined;
  let classSend: SendStatus | undefined;
  function sendStatus(this: grpc.ServerInterceptingCallInterface, status: CallStatus): void {
    classSend!.call(this, explained(status));
  }
  return (_method, call) => {
    const proto: object | null = Object.getPrototypeOf(call);
    if (callClass === undefined && proto !== null && Object.hasOwn(proto, 'sendStatus')) {
      callClass = proto;
      classSend = (proto as { sendStatus: SendStatus }).sendStatus;
    }
    if (proto === callClass && !Object.hasOwn(call, 'sendStatus')) {
      call.sendStatus = sendStatus;
    } else {
      // Not the call class this was written against: wrapped on its own.
      const send = call.sendStatus.bind(call);
      call.sendStatus = (status) => send(explained(status));
    }
    return call as grpc.ServerInterceptingCall; // the same object, as grpc-js chains them
  };
}

type CallStatus = Parameters<grpc.ServerInterceptingCallInterface['sendStatus']>[0];
type SendStatus = (this: grpc.ServerInterceptingCallInterface, status: CallStatus) => void;

/** Writes one message, waiting for 'drain' when grpc-js's buffer is full (or the call goes away). */
function writeStream(call: grpc.ServerDuplexStream<unknown, StreamMsg>, msg: StreamMsg): Promise<void> {
  if (call.cancelled || call.writableEnded) return Promise.resolve();
  if (call.write(msg)) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      call.off('drain', done);
      call.off('cancelled', done);
      call.off('close', done);
      resolve();
    };
    call.on('drain', done);
    call.on('cancelled', done);
    call.on('close', done);
  });
}

/** RepositoryModelLoad's typed parameters (../request-options.ts decides what they mean). */
const GRPC_LOAD_VALUES: LoadValueReader<RepoParamMsg> = {
  config(p) {
    if (p.parameter_choice !== 'string_param') {
      throw new StubhostError('STUBHOST_INVALID_ARG', `'config' parameter must be a string_param holding the JSON config`);
    }
    return p.string_param ?? '';
  },
  file(key, p) {
    if (p.parameter_choice !== 'bytes_param') {
      throw new StubhostError('STUBHOST_INVALID_ARG', `'${key}' parameter must be a bytes_param holding the file's content`);
    }
    return p.bytes_param ?? new Uint8Array();
  },
};

function repoBool(name: string, p: RepoParamMsg): boolean {
  if (p.parameter_choice !== 'bool_param') throw new StubhostError('STUBHOST_INVALID_ARG', `'${name}' parameter must be a bool_param`);
  return p.bool_param ?? false;
}

function encodeLogSettings(settings: Record<string, unknown>): Record<string, LogSettingMsg> {
  const out: Record<string, LogSettingMsg> = {};
  for (const [k, v] of Object.entries(settings)) {
    if (typeof v === 'boolean') out[k] = { bool_param: v };
    else if (typeof v === 'number' && Number.isInteger(v) && v >= 0) out[k] = { uint32_param: v };
    else if (v !== undefined && v !== null) out[k] = { string_param: String(v) };
  }
  return out;
}
