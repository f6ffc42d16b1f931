/**
 * Triton's generate extension (`POST /v2/models/{m}[/versions/{v}]/generate` and
 * `/generate_stream`): a flat JSON object whose keys name input tensors, answered by a flat JSON
 * object whose keys name output tensors — the shape of request LLM-style clients send. The stream
 * variant answers with Server-Sent Events, one `data: {...}` per response of a decoupled model.
 *
 * Mapping, as Triton's: a scalar becomes a one-element tensor, an array a tensor of its length
 * (nested arrays keep their shape); the model's batch dimension, when it has one, is added as 1.
 * An output of one element comes back as that element, others as flat arrays. BYTES are strings.
 */
import type { ModelIOContract } from '../../core/service.js';
import type { InferRequest, InferResult, Parameters, TensorValue } from '../../core/types.js';
import { elementCount } from '../../core/dtypes.js';
import { invalidInput, validateInferInputs } from '../../core/validate.js';
import { JSON_VALUES, applyRequestParameter, defaultAnswerOptions } from '../request-options.js';
import { fromJson } from './codec.js';
import { checkJsonNesting } from '../../core/json-nesting.js';

const RESERVED = new Set(['id', 'parameters']);
const utf8 = new TextDecoder('utf-8', { fatal: false });

/** The inference request a generate body stands for (validated against the contract). */
export function decodeGenerateRequest(
  body: Uint8Array,
  contract: ModelIOContract,
  target: { modelName: string; modelVersion?: number },
): InferRequest {
  let doc: unknown;
  checkJsonNesting(body, 'the generate request');
  try {
    doc = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8'));
  } catch (err) {
    throw invalidInput(`malformed JSON in the generate request: ${(err as Error).message}`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    throw invalidInput('the generate request must be a JSON object whose keys name the model\'s inputs, e.g. {"text_input": "..."}');
  }
  const fields = doc as Record<string, unknown>;
  const request: InferRequest = {
    id: typeof fields.id === 'string' ? fields.id : '',
    modelName: target.modelName,
    modelVersion: target.modelVersion,
    inputs: [],
    parameters: {},
    priority: 0,
    timeoutUs: 0,
  };
  if (fields.parameters !== undefined) {
    if (typeof fields.parameters !== 'object' || fields.parameters === null || Array.isArray(fields.parameters)) {
      throw invalidInput("'parameters' must be an object");
    }
    // The request options as the infer endpoint reads them (../request-options.ts).
    const answer = defaultAnswerOptions();
    const params = fields.parameters as Record<string, unknown>;
    for (const k in params) {
      const v = params[k];
      if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') throw invalidInput(`parameter '${k}' must be a string, number or boolean`);
      if (!applyRequestParameter(request, answer, k, v, JSON_VALUES)) (request.parameters as Parameters)[k] = v;
    }
  }
  const batched = contract.maxBatchSize > 0;
  for (const [name, value] of Object.entries(fields)) {
    if (RESERVED.has(name)) continue;
    const spec = contract.inputs.find((s) => s.name === name);
    if (!spec) {
      throw invalidInput(`generate request field '${name}' is not an input of model '${contract.name}'; its inputs are: ${contract.inputs.map((s) => s.name).join(', ') || '(none)'}`);
    }
    const data = Array.isArray(value) ? value : [value];
    const inner = shapeOf(data);
    const shape = batched ? [1, ...inner] : inner;
    const tensor: TensorValue = { name, datatype: spec.datatype, shape, data: fromJson(name, spec.datatype, shape, elementCount(shape), data) };
    request.inputs.push(tensor);
  }
  for (const spec of contract.inputs) {
    if (!spec.optional && !request.inputs.some((t) => t.name === spec.name)) {
      throw invalidInput(`generate request is missing input '${spec.name}' of model '${contract.name}' (${spec.datatype}); add "${spec.name}": <value> to the JSON body`);
    }
  }
  // Shapes against the config's dims, as for any infer request.
  validateInferInputs(contract, request.inputs, request.id);
  return request;
}

/** The flat JSON object a generate response is. */
export function encodeGenerateResponse(result: InferResult): Record<string, unknown> {
  const out: Record<string, unknown> = { model_name: result.modelName, model_version: result.modelVersion };
  if (result.id) out.id = result.id;
  for (const t of result.outputs) {
    const values = t.datatype === 'BYTES'
      ? (t.data as Uint8Array[]).map((b) => utf8.decode(b))
      : t.datatype === 'BOOL'
        ? Array.from(t.data as Uint8Array, (v) => v !== 0)
        : Array.from(t.data as ArrayLike<number | bigint>, (v) => (typeof v === 'bigint' ? Number(v) : v));
    out[t.name] = values.length === 1 ? values[0] : values;
  }
  return out;
}

/** The shape of nested JSON arrays (a scalar is [1]). */
function shapeOf(data: unknown[]): number[] {
  const shape = [data.length];
  let level: unknown = data[0];
  while (Array.isArray(level)) {
    shape.push(level.length);
    level = level[0];
  }
  return shape;
}
