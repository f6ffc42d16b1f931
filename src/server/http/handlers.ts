/**
 * The HTTP control-plane routes: health, metadata, config, statistics, the repository API,
 * logging, shared memory and trace. Each answers from the InferenceService; the words of their
 * refusals are Triton's (server src/http_server.cc, the Handle* function named at each).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { StubhostError } from '../../errors.js';
import type { RepositoryIndexEntry } from '../../core/service.js';
import { parseModelVersion } from '../../core/validate.js';
import { type SharedMemoryRegistry, cudaShmRegisterUnsupported, cudaShmStatus } from '../shm-registry.js';
import { JSON_LOAD_VALUES, jsonBool, loadOptions, unloadOptions } from '../request-options.js';
import { readDecodedBody, readJsonObject } from './body.js';
import type { HttpContext, RouteParams } from './context.js';
import { sendEmpty, sendJson } from './respond.js';

type Req = IncomingMessage;
type Res = ServerResponse;

/** The path's version as the service takes it, read as Triton reads it (refused before the model is looked up). */
function versionOf(version: string | undefined): string | undefined {
  const n = parseModelVersion(version);
  return n === undefined ? undefined : String(n);
}

// Not live / not ready is 400, as Triton answers (evhtp's BADREQ), not 503.
export function live(ctx: HttpContext, _req: Req, res: Res): void {
  sendEmpty(res, ctx.service.isLive() ? 200 : 400);
}

export async function ready(ctx: HttpContext, _req: Req, res: Res): Promise<void> {
  sendEmpty(res, (await ctx.service.isReady()) ? 200 : 400);
}

export function serverMetadata(ctx: HttpContext, _req: Req, res: Res): void {
  sendJson(res, 200, JSON.stringify(ctx.service.serverMetadata()));
}

export function modelMetadata(ctx: HttpContext, _req: Req, res: Res, p: RouteParams): void {
  sendJson(res, 200, JSON.stringify(ctx.service.modelMetadata(p.model!, versionOf(p.version))));
}

export async function modelReady(ctx: HttpContext, _req: Req, res: Res, p: RouteParams): Promise<void> {
  sendEmpty(res, (await ctx.service.modelReady(p.model!, versionOf(p.version))) ? 200 : 400);
}

export function modelConfig(ctx: HttpContext, _req: Req, res: Res, p: RouteParams): void {
  sendJson(res, 200, JSON.stringify(ctx.service.modelConfig(p.model!, versionOf(p.version))));
}

/** Every model's statistics (no model in the path) or one model's. */
export function statistics(ctx: HttpContext, _req: Req, res: Res, p: RouteParams): void {
  sendJson(res, 200, JSON.stringify({ model_stats: ctx.service.modelStatistics(p.model, versionOf(p.version)) }));
}

export async function repositoryIndex(ctx: HttpContext, req: Req, res: Res): Promise<void> {
  const body = await readJsonObject(req, ctx.maxBody);
  const readyOnly = body?.ready;
  if (readyOnly !== undefined && typeof readyOnly !== 'boolean') throw new StubhostError('STUBHOST_INVALID_ARG', `'ready' must be true or false`);
  sendJson(res, 200, JSON.stringify(ctx.service.repositoryIndex(readyOnly).map(indexEntryJson)));
}

export async function load(ctx: HttpContext, req: Req, res: Res, p: RouteParams): Promise<void> {
  const params = parametersOf(await readJsonObject(req, ctx.maxBody));
  await ctx.service.loadModel(p.model!, loadOptions(params, JSON_LOAD_VALUES) ?? {});
  sendEmpty(res, 200);
}

export async function unload(ctx: HttpContext, req: Req, res: Res, p: RouteParams): Promise<void> {
  const params = parametersOf(await readJsonObject(req, ctx.maxBody));
  await ctx.service.unloadModel(p.model!, unloadOptions(params, jsonBool));
  sendEmpty(res, 200);
}

export async function logging(ctx: HttpContext, req: Req, res: Res): Promise<void> {
  const update = req.method === 'POST' ? await readJsonObject(req, ctx.maxBody) : undefined;
  sendJson(res, 200, JSON.stringify(ctx.service.logSettings(update)));
}

function shm(ctx: HttpContext): SharedMemoryRegistry {
  if (ctx.opts.shm === undefined) {
    throw new StubhostError('STUBHOST_UNSUPPORTED', 'system shared memory is not enabled on this server');
  }
  return ctx.opts.shm;
}

export function shmStatus(ctx: HttpContext, _req: Req, res: Res, p: RouteParams): void {
  sendJson(res, 200, JSON.stringify(shm(ctx).status(p.region)));
}

export async function shmRegister(ctx: HttpContext, req: Req, res: Res, p: RouteParams): Promise<void> {
  if (!shm(ctx).allowed) {
    // As Triton's HandleSystemSharedMemory (src/http_server.cc): refused before the body is looked at.
    await readDecodedBody(req, ctx.maxBody, 0);
    shm(ctx).assertAllowed();
  }
  const body = await readJsonObject(req, ctx.maxBody);
  if (body === undefined) throw new StubhostError('STUBHOST_INVALID_ARG', `register '${p.region}': the body must be {"key": ..., "offset": ..., "byte_size": ...}`);
  shm(ctx).register(p.region!, body.key, body.offset ?? 0, body.byte_size);
  sendEmpty(res, 200);
}

export async function shmUnregister(ctx: HttpContext, req: Req, res: Res, p: RouteParams): Promise<void> {
  await readDecodedBody(req, ctx.maxBody, 0); // Triton's clients send an empty body; drain it
  shm(ctx).unregister(p.region);
  sendEmpty(res, 200);
}

/** No GPU: no CUDA region is ever registered (a system region of that name is named so). */
export function cudaShmStatusRoute(ctx: HttpContext, _req: Req, res: Res, p: RouteParams): void {
  sendJson(res, 200, JSON.stringify(cudaShmStatus(ctx.opts.shm, p.region)));
}

/**
 * As Triton's HandleCudaSharedMemory built without GPUs (src/http_server.cc): "disabled" first,
 * then the region name, then GPUs not supported.
 */
export async function cudaShmRegister(ctx: HttpContext, req: Req, _res: Res, p: RouteParams): Promise<void> {
  await readDecodedBody(req, ctx.maxBody, 0);
  shm(ctx).assertAllowed();
  throw cudaShmRegisterUnsupported(p.region!);
}

/** Nothing to unregister without GPUs: success, once client shared memory is allowed. */
export async function cudaShmUnregister(ctx: HttpContext, req: Req, res: Res): Promise<void> {
  await readDecodedBody(req, ctx.maxBody, 0);
  shm(ctx).assertAllowed();
  sendEmpty(res, 200);
}

/** Triton's answer when it is built without tracing (src/http_server.cc HandleTrace). */
export function trace(): never {
  throw new StubhostError('STUBHOST_UNAVAILABLE', 'the server does not support tracing');
}

/**
 * A repository index entry as Triton writes it (core src/tritonserver.cc
 * TRITONSERVER_ServerModelIndex): a model never loaded is only its name; `version` and `reason`
 * appear only when there is one.
 */
function indexEntryJson(e: RepositoryIndexEntry): Record<string, string> {
  if (e.state === undefined) return { name: e.name };
  const out: Record<string, string> = { name: e.name };
  if (e.version !== undefined) out.version = e.version;
  out.state = e.state;
  if (e.reason) out.reason = e.reason;
  return out;
}

function parametersOf(body: Record<string, unknown> | undefined): Record<string, unknown> {
  const params = body?.parameters;
  if (params === undefined) return {};
  if (typeof params !== 'object' || params === null || Array.isArray(params)) {
    throw new StubhostError('STUBHOST_INVALID_ARG', `'parameters' must be an object`);
  }
  return params as Record<string, unknown>;
}
