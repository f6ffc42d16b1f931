/**
 * Implicit state's `initial_state`: the tensor a sequence's state input starts from, instead of
 * zeros. Read and checked once at load, as Triton's core does
 * (src/sequence_batch_scheduler/sequence_batch_scheduler.cc, GenerateInitialStateData, whose
 * messages these are): at most one per state, a name, the state's data type, as many dimensions
 * as the state, none variable, each equal to the state's where that one is fixed. `zero_data`
 * gives zeros; `data_file` the file's bytes (row-major; TYPE_STRING as 4-byte length-prefixed
 * elements) from the model's `initial_state/` folder, which it must not leave.
 */
import fs from 'node:fs';
import path from 'node:path';
import { StubhostError } from '../errors.js';
import { elementCount, elementSize, fromConfigType, typedArrayFor, viewAs, type DataType } from '../core/dtypes.js';
import type { TensorValue } from '../core/types.js';
import type { ModelConfig } from '../config/schema.js';
import { confinedPath } from '../config/model-paths.js';
import { tensorFromBytes } from '../core/tensor-bytes.js';

/** Triton's folder for initial state files (core src/constants.h, kInitialStateFolder). */
export const INITIAL_STATE_FOLDER = 'initial_state';

/** Initial state tensors by state input name (batch dimension of 1 included for batching models). */
export type InitialStates = ReadonlyMap<string, TensorValue>;

export function readInitialStates(modelDir: string, config: ModelConfig, where: string): InitialStates {
  const out = new Map<string, TensorValue>();
  const states = config.sequence_batching?.state ?? [];
  const batched = config.max_batch_size > 0;
  states.forEach((state, i) => {
    if (state.initial_state.length === 0) return;
    const field = `${where}: sequence_batching.state[${i}].initial_state`;
    const fail = (message: string): never => {
      throw new StubhostError('STUBHOST_CONFIG', `${field}: ${message}`);
    };
    const input = state.input_name;
    if (state.initial_state.length > 1) {
      fail(`initial_state field for state input '${input}' must contain exactly one or zero element. Found '${state.initial_state.length}' elements.`);
    }
    const init = state.initial_state[0]!;
    if (init.data_type !== state.data_type) fail(`The data type used for 'initial_state' field of state '${input}' does not match the state data type.`);
    if (init.name === '') fail(`Field 'name' must be set when using initial_state for state input '${input}'.`);
    if (out.has(input)) fail(`State input name '${input}' specified more than once.`);
    if (init.dims.length !== state.dims.length) {
      fail(`Number of dimensions in 'initial_state' doesn't match the size of 'state' dimensions for state input '${input}'. ${init.dims.length} != ${state.dims.length}`);
    }
    init.dims.forEach((d, j) => {
      if (d === -1) fail(`'initial_state' field for state input name '${input}' contains variable dimensions.`);
      const s = state.dims[j]!;
      if (s !== -1 && d !== s) fail(`'initial_state' dim for input name '${input}' doesn't match 'state' dim description. ${d} != ${s}`);
    });
    const datatype: DataType = fromConfigType(init.data_type!)!;
    const shape = batched ? [1, ...init.dims] : [...init.dims];
    const count = elementCount(shape);
    let data: TensorValue['data'];
    if (init.data_file === undefined) {
      data = datatype === 'BYTES' ? Array.from({ length: count }, () => new Uint8Array(0)) : new (typedArrayFor(datatype))(count);
    } else {
      const folder = path.join(modelDir, INITIAL_STATE_FOLDER);
      const file = confinedPath(folder, folder, init.data_file, `${field}.data_file`, "the model's initial_state/ folder");
      let bytes: Uint8Array;
      try {
        bytes = new Uint8Array(fs.readFileSync(file));
      } catch (err) {
        return fail(`data_file ${JSON.stringify(init.data_file)} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); put it in the model's initial_state/ folder`);
      }
      if (datatype === 'BYTES') {
        try {
          data = tensorFromBytes({ name: input, datatype, shape }, bytes, `initial state file ${init.data_file}`).data;
        } catch (err) {
          return fail((err as Error).message);
        }
      } else {
        const need = count * elementSize(datatype);
        // Triton's words, its missing space included; extra bytes are ignored, as Triton does.
        if (bytes.byteLength < need) fail(`initial_state setting expects ${need} bytes, but the data provided from ${init.data_file}only has ${bytes.byteLength} bytes.`);
        const copy = new Uint8Array(need);
        copy.set(bytes.subarray(0, need));
        data = viewAs(datatype, copy.buffer, 0, need);
      }
    }
    out.set(input, { name: input, datatype, shape, data });
  });
  return out;
}
