/**
 * The protocol adapter (src/server/request-options.ts): one reading of the request options and
 * of the load / unload parameters, whichever protocol typed the values; and the HTTP route table
 * (src/server/http/routes.ts).
 */
import { describe, expect, it } from 'vitest';
import {
  JSON_LOAD_VALUES, JSON_VALUES, RESERVED_REQUEST_PARAMETERS, applyRequestParameter, defaultAnswerOptions, jsonBool, loadOptions, unloadOptions,
} from '../src/server/request-options.js';
import { decodeInferRequest as decodeGrpc, type InferParameterMsg } from '../src/server/grpc/codec.js';
import { decodeInferRequest as decodeHttp } from '../src/server/http/codec.js';
import { decodeGenerateRequest } from '../src/server/http/generate.js';
import { ROUTES, matchRoute } from '../src/server/http/routes.js';
import type { ModelIOContract } from '../src/core/service.js';
import type { InferRequest } from '../src/core/types.js';

const contract: ModelIOContract = {
  name: 'm', version: '1', maxBatchSize: 0, decoupled: false,
  inputs: [{ name: 'X', datatype: 'INT32', dims: [1] }], outputs: [{ name: 'Y', datatype: 'INT32', dims: [1] }],
};
const blank = (): InferRequest => ({ id: '', modelName: 'm', inputs: [], parameters: {}, priority: 0, timeoutUs: 0 });

/** The same options, sent by each protocol. */
function viaHttp(params: Record<string, unknown>): InferRequest {
  const body = Buffer.from(JSON.stringify({ parameters: params, inputs: [{ name: 'X', datatype: 'INT32', shape: [1], data: [1] }] }));
  return decodeHttp(body, undefined, contract, { modelName: 'm' }).request;
}
function viaGenerate(params: Record<string, unknown>): InferRequest {
  return decodeGenerateRequest(Buffer.from(JSON.stringify({ X: 1, parameters: params })), contract, { modelName: 'm' });
}
function viaGrpc(params: Record<string, InferParameterMsg>): InferRequest {
  return decodeGrpc({
    model_name: 'm', model_version: '', id: '', parameters: params,
    inputs: [{ name: 'X', datatype: 'INT32', shape: ['1'], contents: { int_contents: [1] } }],
  }, contract).request;
}

describe('request options', () => {
  it('HTTP infer, generate and gRPC read the same options into the same fields; other parameters reach the model', () => {
    const want = { priority: 3, timeoutUs: 500, correlationId: 42n, sequenceStart: true, sequenceEnd: false, parameters: { custom: 'x' } };
    const json = { priority: 3, timeout: 500, sequence_id: 42, sequence_start: true, sequence_end: false, custom: 'x' };
    for (const r of [viaHttp(json), viaGenerate(json)]) expect(r).toMatchObject(want);
    const grpc = viaGrpc({
      priority: { parameter_choice: 'uint64_param', uint64_param: '3' }, timeout: { parameter_choice: 'int64_param', int64_param: '500' },
      sequence_id: { parameter_choice: 'int64_param', int64_param: '42' }, sequence_start: { parameter_choice: 'bool_param', bool_param: true },
      sequence_end: { parameter_choice: 'bool_param', bool_param: false }, custom: { parameter_choice: 'string_param', string_param: 'x' },
    });
    expect(grpc).toMatchObject(want);
  });

  it('sequence_id: 0 and "" mean no sequence; a string id is kept as a string', () => {
    expect(viaHttp({ sequence_id: 0 }).correlationId).toBeUndefined();
    expect(viaHttp({ sequence_id: '' }).correlationId).toBeUndefined();
    expect(viaGenerate({ sequence_id: 'abc' }).correlationId).toBe('abc');
    expect(viaGrpc({ sequence_id: { parameter_choice: 'int64_param', int64_param: '0' } }).correlationId).toBeUndefined();
    expect(viaGrpc({ sequence_id: { parameter_choice: 'string_param', string_param: 'abc' } }).correlationId).toBe('abc');
  });

  it('wrong types are refused with each protocol\'s words, in generate as in infer', () => {
    expect(() => viaHttp({ priority: -1 })).toThrow("parameter 'priority' must be a non-negative integer, got -1");
    expect(() => viaGenerate({ priority: 1.5 })).toThrow("parameter 'priority' must be a non-negative integer, got 1.5");
    expect(() => viaGenerate({ timeout: 'soon' })).toThrow(`parameter 'timeout' must be a non-negative integer (microseconds), got "soon"`);
    expect(() => viaHttp({ sequence_start: 1 })).toThrow("parameter 'sequence_start' must be true or false, got 1");
    expect(() => viaHttp({ sequence_id: -3 })).toThrow("parameter 'sequence_id' must be a non-negative integer or a string, got -3");
    expect(() => viaGrpc({ priority: { parameter_choice: 'string_param', string_param: '1' } })).toThrow("invalid value type for 'priority' parameter, expected int64_param or uint64_param");
    expect(() => viaGrpc({ timeout: { parameter_choice: 'int64_param', int64_param: '-1' } })).toThrow("'timeout' parameter must not be negative, got -1");
    expect(() => viaGrpc({ sequence_end: { parameter_choice: 'int64_param', int64_param: '1' } })).toThrow("invalid value type for 'sequence_end' parameter, expected bool_param");
  });

  it('the answer options are read, not passed on; one reserved list', () => {
    const answer = defaultAnswerOptions();
    const r = blank();
    expect(applyRequestParameter(r, answer, 'binary_data_output', true, JSON_VALUES)).toBe(true);
    expect(applyRequestParameter(r, answer, 'triton_enable_empty_final_response', true, JSON_VALUES)).toBe(true);
    expect(applyRequestParameter(r, answer, 'mine', 1, JSON_VALUES)).toBe(false);
    expect(answer).toEqual({ binaryDataOutput: true, emptyFinalResponse: true });
    for (const name of RESERVED_REQUEST_PARAMETERS) {
      expect(applyRequestParameter(blank(), defaultAnswerOptions(), name, name.startsWith('sequence_id') ? 1 : name === 'priority' || name === 'timeout' ? 1 : true, JSON_VALUES)).toBe(true);
    }
  });
});

describe('load / unload parameters', () => {
  it('config and file:<path>; other names ignored; none: a plain load', () => {
    expect(loadOptions({}, JSON_LOAD_VALUES)).toBeUndefined();
    expect(loadOptions({ other: 1 }, JSON_LOAD_VALUES)).toBeUndefined();
    expect(loadOptions({ config: { max_batch_size: 2 } }, JSON_LOAD_VALUES)).toEqual({ config: '{"max_batch_size":2}' });
    const withFile = loadOptions({ config: '{}', 'file:1/model.ts': Buffer.from('abc').toString('base64') }, JSON_LOAD_VALUES);
    expect(Buffer.from(withFile!.files!['1/model.ts']!).toString()).toBe('abc');
  });
  it('refusals: files without a config (both protocols), wrong types', () => {
    expect(() => loadOptions({ 'file:1/m.ts': '' }, JSON_LOAD_VALUES)).toThrow("'file:' parameters need a 'config' parameter as well");
    expect(() => loadOptions({ config: 3 }, JSON_LOAD_VALUES)).toThrow("parameter 'config' must be the model config as a JSON string");
    expect(() => loadOptions({ config: '{}', 'file:x': 3 }, JSON_LOAD_VALUES)).toThrow("parameter 'file:x' must be the file content in base64");
    expect(unloadOptions({}, jsonBool)).toBeUndefined();
    expect(unloadOptions({ unload_dependents: true }, jsonBool)).toEqual({ unloadDependents: true });
    expect(() => unloadOptions({ unload_dependents: 'yes' }, jsonBool)).toThrow("parameter 'unload_dependents' must be true or false");
  });
});

describe('the HTTP route table', () => {
  const route = (path: string) => {
    const m = matchRoute(path);
    return m && { path: m.route.path, methods: m.route.methods, category: m.route.category, model: m.params.model, version: m.params.version, region: m.params.region };
  };
  it('matches captures, versions and regions, percent-decoded', () => {
    expect(route('/v2')).toMatchObject({ path: '/v2', category: 'metadata' });
    expect(route('/v2/models/a%20b/versions/3/infer')).toMatchObject({ model: 'a b', version: '3', category: 'inference', methods: ['POST'] });
    expect(route('/v2/models/m/generate_stream')).toMatchObject({ model: 'm', version: undefined, category: 'inference' });
    expect(route('/v2/systemsharedmemory/region/r1/register')).toMatchObject({ region: 'r1', category: 'shared-memory' });
    expect(route('/v2/cudasharedmemory/status')).toMatchObject({ region: undefined, methods: ['GET'] });
    expect(route('/v2/repository/models/m/unload')).toMatchObject({ model: 'm', category: 'model-repository' });
    expect(route('/v2/logging')).toMatchObject({ methods: ['GET', 'POST'], category: 'logging' });
  });
  it('/v2/models/stats is every model\'s statistics; a model named stats still has its routes', () => {
    expect(route('/v2/models/stats')).toMatchObject({ path: '/v2/models/stats', model: undefined, category: 'statistics' });
    expect(route('/v2/models/stats/ready')).toMatchObject({ model: 'stats', category: 'health' });
  });
  it('the model trace route takes no version; empty segments and unknown paths have no route', () => {
    expect(route('/v2/models/m/trace/setting')).toMatchObject({ model: 'm', category: 'trace' });
    expect(route('/v2/models/m/versions/1/trace/setting')).toBeUndefined();
    expect(route('/v2/models/m/versions/1')).toMatchObject({ model: 'm', version: '1', category: 'metadata' });
    for (const p of ['/', '/v2/', '/v2/models/', '/v2/models//infer', '/v2/models/m/versions/', '/v2/systemsharedmemory/register', '/v2/models/m/nope', '/v3']) {
      expect(route(p), p).toBeUndefined();
    }
    expect(() => matchRoute('/v2/models/%E0%A4%A/infer')).toThrow();
  });
  it('every route has a path of /v2 and a category', () => {
    for (const r of ROUTES) {
      expect(r.path.startsWith('/v2')).toBe(true);
      expect(r.category).toBeTruthy();
    }
  });
});
