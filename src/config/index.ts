/** The config module's public entry: parse, validate and read model configurations. */
export { parsePbtxt, type PbtxtOptions, type PbtxtObject, type PbtxtValue, type MessageShape, type FieldShape } from './pbtxt.js';
export * from './schema.js';
export * from './load.js';
