/**
 * A graph input or output as the backend uses it: name, stubhost dtype, onnxruntime-node type and
 * the dims the file declares.
 */
import type { DataType } from '../../../src/core/dtypes.js';
import type { GraphValue } from './graph-io.js';
import { dtypeOfOnnx, onnxTypeName, ortTypeOf, type OrtType } from './types.js';

export interface IOSpec {
  name: string;
  dtype: DataType;
  ortType: OrtType;
  /** Full dims as the graph declares them, batch dim included; -1 dynamic; [] a scalar; undefined = unknown rank. */
  dims?: number[];
}

export function ioSpec(v: GraphValue, kind: string, file: string): IOSpec {
  const dtype = dtypeOfOnnx(v.elemType);
  const ortType = dtype ? ortTypeOf(dtype) : undefined;
  if (!dtype || !ortType) {
    throw new Error(`${file}: ${kind} '${v.name}' is ${onnxTypeName(v.elemType)}, which onnxruntime-node cannot exchange with stubhost`);
  }
  return { name: v.name, dtype, ortType, dims: v.dims };
}

export function list(specs: { name: string }[]): string {
  return specs.map((s) => `'${s.name}'`).join(', ');
}
