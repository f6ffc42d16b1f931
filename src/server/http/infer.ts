/**
 * The HTTP inference routes: infer (JSON and binary tensors) and Triton's generate extension,
 * with its Server-Sent Events stream. Each resolves the model version once (the contract the body
 * is checked against belongs to the version that runs it).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { StubhostError } from '../../errors.js';
import type { ResolvedModel } from '../../core/service.js';
import type { InferRequest, InferResult } from '../../core/types.js';
import { parseModelVersion } from '../../core/validate.js';
import { oneResponse } from '../../inference/one-response.js';
import { forwardHeaders } from '../header-forward.js';
import type { ShmAccess } from '../shm-registry.js';
import { readDecodedBody, receivedBody } from './body.js';
import { type DecodedInferRequest, type EncodedInferResponse, decodeInferRequest, encodeInferResponse, parseHeaderLength } from './codec.js';
import { ClientAbort, type HttpContext, type RouteParams } from './context.js';
import { decodeGenerateRequest, encodeGenerateResponse } from './generate.js';
import { sendError, sendJson } from './respond.js';
import { endEventStream, startEventStream, writeEvent } from './sse.js';

/** Triton's words for a decoupled model on the HTTP infer endpoint (src/http_server.cc CheckTransactionPolicy). */
export const HTTP_DECOUPLED_UNSUPPORTED = "HTTP end point doesn't support models with decoupled transaction policy";

/** Triton's answer when non-streaming generate gets other than one response (src/http_server.cc SendChunkResponse). */
export const GENERATE_NOT_ONE_RESPONSE = 'generate expects model to produce exactly 1 response, use generate stream for model that generates various number of responses';

/**
 * Answers its own errors (sendError), so the dispatcher is handed no promise to watch: no
 * rejection handler and no settling job per request for an infer that succeeded.
 */
export function handleInfer(ctx: HttpContext, req: IncomingMessage, res: ServerResponse, params: RouteParams): void {
  void infer(ctx, req, res, params);
}

async function infer(ctx: HttpContext, req: IncomingMessage, res: ServerResponse, params: RouteParams): Promise<void> {
  try {
    const headerLength = parseHeaderLength(req.headers['inference-header-content-length']);
    // One microtask: the parse of the packet that brought the headers goes on first (see receivedBody).
    await undefined;
    const body = receivedBody(req, ctx.maxBody, headerLength ?? 0) ?? (await readDecodedBody(req, ctx.maxBody, headerLength ?? 0));
    const started = startInfer(ctx, req, res, params, headerLength, body);
    if (started === undefined) return;
    const { resolved, request } = started;
    // The reply is written from the gateway's callback as the batch's outcome is read (no promise
    // per request); a resolved model without it (test doubles) answers through infer().
    if (resolved.inferThen) {
      resolved.inferThen(request, (failure, result) => {
        try {
          if (failure !== undefined) throw failure;
          replyInfer(res, started, result!);
        } catch (e) {
          sendError(res, e, ctx.opts.logger);
        }
      });
      return;
    }
    replyInfer(res, started, await resolved.infer(request));
  } catch (err) {
    sendError(res, err, ctx.opts.logger);
  }
}

function replyInfer(res: ServerResponse, started: StartedInfer, result: InferResult): void {
  if (res.headersSent || res.destroyed) return; // closed meanwhile, or failed by close()
  sendInferResult(res, encodeInferResponse(result, { requested: started.request.outputs, binaryDefault: started.binaryOutputDefault, shm: started.shm }));
}

interface StartedInfer {
  resolved: ResolvedModel;
  request: InferRequest;
  binaryOutputDefault: boolean;
  shm: ShmAccess | undefined;
}

/**
 * The synchronous part of an infer once its body is in: the model resolved, the body decoded and
 * checked, the request registered for cancellation. Undefined when the client has left.
 */
function startInfer(ctx: HttpContext, req: IncomingMessage, res: ServerResponse, params: RouteParams, headerLength: number | undefined, body: Buffer): StartedInfer | undefined {
  const model = params.model!;
  // As Triton's HandleInfer (src/http_server.cc): the version, then the model's transaction
  // policy, before the body is parsed or anything runs.
  const modelVersion = parseModelVersion(params.version);
  const resolved = ctx.service.resolve(model, modelVersion === undefined ? undefined : String(modelVersion));
  const contract = resolved.contract;
  if (contract.decoupled) throw new StubhostError('STUBHOST_NOT_IMPLEMENTED', HTTP_DECOUPLED_UNSUPPORTED);
  if (res.destroyed) return undefined; // the client left while the body was read
  const shm = ctx.opts.shm?.session();
  let decoded: DecodedInferRequest;
  try {
    decoded = decodeInferRequest(body, headerLength, contract, { modelName: model, modelVersion }, shm);
  } finally {
    // Copies out of client shared memory count until the answer is sent or the client is gone;
    // only a request that made some (decoding reads the inputs) listens for that.
    if (shm?.holding) res.once('close', () => shm.release());
  }
  const { request, binaryOutputDefault } = decoded;
  // As Triton's HandleInfer: infer only (not generate), after the body's own parameters.
  if (ctx.opts.headerForwardPattern) forwardHeaders(ctx.opts.headerForwardPattern, req.rawHeaders, request.parameters);
  const abort = new ClientAbort(model);
  ctx.track(res, abort);
  request.signal = abort;
  return { resolved, request, binaryOutputDefault, shm };
}

/** An encoded infer response, headers as a flat array (writeHead takes it as it is; an object is walked key by key). */
function sendInferResult(res: ServerResponse, enc: EncodedInferResponse): void {
  if (enc.binary.length === 0) {
    res.writeHead(200, ['Content-Type', 'application/json', 'Content-Length', enc.byteLength]);
    res.end(enc.json);
    return;
  }
  res.writeHead(200, [
    'Content-Type', 'application/octet-stream',
    'Inference-Header-Content-Length', enc.jsonByteLength,
    'Content-Length', enc.byteLength,
  ]);
  // Cork so the header, the JSON and every tensor leave in one writev.
  res.cork();
  res.write(enc.json);
  for (const chunk of enc.binary) res.write(chunk);
  res.end();
  res.uncork();
}

export function handleGenerate(ctx: HttpContext, req: IncomingMessage, res: ServerResponse, params: RouteParams): Promise<void> {
  return generate(ctx, req, res, params, false);
}

export function handleGenerateStream(ctx: HttpContext, req: IncomingMessage, res: ServerResponse, params: RouteParams): Promise<void> {
  return generate(ctx, req, res, params, true);
}

/**
 * Triton's generate extension: flat JSON in and out; `stream` answers with Server-Sent Events,
 * one event per response (decoupled models send 0..n), and errors as `data: {"error": ...}`.
 */
async function generate(ctx: HttpContext, req: IncomingMessage, res: ServerResponse, params: RouteParams, stream: boolean): Promise<void> {
  const model = params.model!;
  const body = await readDecodedBody(req, ctx.maxBody, 0);
  const modelVersion = parseModelVersion(params.version);
  const resolved = ctx.service.resolve(model, modelVersion === undefined ? undefined : String(modelVersion));
  const contract = resolved.contract;
  const request = decodeGenerateRequest(body, contract, { modelName: model, modelVersion });
  if (res.destroyed) return;
  const abort = new ClientAbort(model);
  ctx.track(res, abort);
  request.signal = abort;
  if (!stream) {
    if (!contract.decoupled) {
      const result = await resolved.infer(request);
      if (res.headersSent || res.destroyed) return;
      return sendJson(res, 200, JSON.stringify(encodeGenerateResponse(result)));
    }
    // Triton runs a decoupled model here too, and answers with the status of its first response
    // (200 when it succeeded, or when there was none) and this error unless it sent exactly one.
    const result = await oneResponse(resolved.inferStream(request), () => abort.abort(new StubhostError('STUBHOST_CANCELLED', 'second response of a decoupled model to non-streaming generate')));
    if (res.headersSent || res.destroyed) return;
    return sendJson(res, 200, JSON.stringify(result === undefined ? { error: GENERATE_NOT_ONE_RESPONSE } : encodeGenerateResponse(result)));
  }
  startEventStream(res);
  try {
    for await (const result of resolved.inferStream(request)) {
      if (res.destroyed) break;
      writeEvent(res, encodeGenerateResponse(result));
    }
  } catch (err) {
    writeEvent(res, { error: err instanceof Error ? err.message : String(err) });
  }
  endEventStream(res);
}
