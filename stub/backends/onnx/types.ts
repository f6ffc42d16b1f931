/**
 * ONNX element types, onnxruntime-node tensor types and stubhost dtypes, one table.
 */
import type { DataType } from '../../../src/core/dtypes.js';

/** onnxruntime-common's Tensor.Type names that stubhost can carry. */
export type OrtType =
  | 'float32' | 'float64' | 'float16' | 'int8' | 'int16' | 'int32' | 'int64'
  | 'uint8' | 'uint16' | 'uint32' | 'uint64' | 'bool' | 'string';

interface Row { onnx: number; onnxName: string; dtype: DataType; ort?: OrtType }

// BF16 has no onnxruntime-node tensor type: a model with BF16 inputs or outputs fails initialize.
const ROWS: Row[] = [
  { onnx: 1, onnxName: 'FLOAT', dtype: 'FP32', ort: 'float32' },
  { onnx: 2, onnxName: 'UINT8', dtype: 'UINT8', ort: 'uint8' },
  { onnx: 3, onnxName: 'INT8', dtype: 'INT8', ort: 'int8' },
  { onnx: 4, onnxName: 'UINT16', dtype: 'UINT16', ort: 'uint16' },
  { onnx: 5, onnxName: 'INT16', dtype: 'INT16', ort: 'int16' },
  { onnx: 6, onnxName: 'INT32', dtype: 'INT32', ort: 'int32' },
  { onnx: 7, onnxName: 'INT64', dtype: 'INT64', ort: 'int64' },
  { onnx: 8, onnxName: 'STRING', dtype: 'BYTES', ort: 'string' },
  { onnx: 9, onnxName: 'BOOL', dtype: 'BOOL', ort: 'bool' },
  { onnx: 10, onnxName: 'FLOAT16', dtype: 'FP16', ort: 'float16' },
  { onnx: 11, onnxName: 'DOUBLE', dtype: 'FP64', ort: 'float64' },
  { onnx: 12, onnxName: 'UINT32', dtype: 'UINT32', ort: 'uint32' },
  { onnx: 13, onnxName: 'UINT64', dtype: 'UINT64', ort: 'uint64' },
  { onnx: 16, onnxName: 'BFLOAT16', dtype: 'BF16' },
];

const ONNX_NAMES: Record<number, string> = {
  0: 'UNDEFINED (not a tensor)', 14: 'COMPLEX64', 15: 'COMPLEX128', 17: 'FLOAT8E4M3FN', 18: 'FLOAT8E4M3FNUZ',
  19: 'FLOAT8E5M2', 20: 'FLOAT8E5M2FNUZ', 21: 'UINT4', 22: 'INT4', 23: 'FLOAT4E2M1',
};

export function dtypeOfOnnx(elemType: number): DataType | undefined {
  return ROWS.find((r) => r.onnx === elemType)?.dtype;
}

export function onnxTypeName(elemType: number): string {
  return ROWS.find((r) => r.onnx === elemType)?.onnxName ?? ONNX_NAMES[elemType] ?? `element type ${elemType}`;
}

export function ortTypeOf(dtype: DataType): OrtType | undefined {
  return ROWS.find((r) => r.dtype === dtype)?.ort;
}

export function dtypeOfOrt(type: string): DataType | undefined {
  return ROWS.find((r) => r.ort === type)?.dtype;
}
