/**
 * Fields of Triton's ModelConfig that stubhost parses but does not implement. Given a value other
 * than protobuf's default, each is refused at load with "not supported by stubhost" and the field's
 * path, so a config never loads with a feature silently missing. Defaults (false, 0, empty) pass:
 * that is what Triton's own config endpoint prints for unset fields, and such a config must load.
 *
 * Accepted on purpose (they do act, or cannot matter on a CPU server):
 * - optimization.graph.level and optimization.execution_accelerators: read by the onnxruntime
 *   backend (stub/backends/onnx/session-options.ts); a TypeScript model sees them in its config.
 * - optimization.input_pinned_memory / output_pinned_memory: there is no pinned (GPU-staging)
 *   memory to use or not, as in a CPU-only Triton.
 * - input.format: checked (3 dimensions) and passed on, as Triton does for backends that ignore it.
 * - sequence_batching.direct / oldest tuning (max_queue_delay_microseconds, minimum_slot_utilization,
 *   max_candidate_sequences, preferred_batch_size, preserve_ordering): scheduling hints; batches
 *   form from the requests that are ready. Triton's own example simple_dyna_sequence sets them.
 */
/**
 * The parts of a parsed ModelConfig (./schema.ts) read here, written out so that schema.ts can
 * call this module without a cycle of imports; schema.ts's ModelConfig must stay assignable.
 */
interface TensorFlags { allow_ragged_batch?: boolean; is_shape_tensor?: boolean; is_non_linear_format_io?: boolean }
export interface UnsupportedInput {
  runtime: string;
  batch_input: readonly unknown[];
  batch_output: readonly unknown[];
  cc_model_filenames: Record<string, unknown>;
  metric_tags: Record<string, unknown>;
  model_metrics?: unknown;
  model_operations?: { op_library_filename: readonly unknown[] };
  model_repository_agents?: { agents: readonly unknown[] };
  input: readonly TensorFlags[];
  output: readonly TensorFlags[];
  instance_group: readonly { passive?: boolean; secondary_devices: readonly unknown[]; profile: readonly unknown[]; host_policy: string }[];
  optimization: {
    priority: string;
    cuda?: { graphs?: boolean; busy_wait_events?: boolean; graph_spec: readonly unknown[]; output_copy_stream?: boolean };
    gather_kernel_buffer_threshold: number;
    eager_batching?: boolean;
  };
  sequence_batching?: { iterative_sequence?: boolean; state: readonly { use_same_buffer_for_input_output?: boolean; use_growable_memory?: boolean }[] };
  ensemble_scheduling?: { max_inflight_responses: number; step: readonly { model_namespace: string }[] };
}

type Path = (string | number)[];

export interface UnsupportedField {
  path: Path;
  /** What the field is, for the message. */
  what: string;
}

/** Every unsupported field `c` sets to a non-default value. */
export function unsupportedFields(c: UnsupportedInput): UnsupportedField[] {
  const found: UnsupportedField[] = [];
  const add = (path: Path, what: string): void => {
    found.push({ path, what });
  };
  if (c.runtime !== '') add(['runtime'], 'a backend runtime library');
  if (c.batch_input.length > 0) add(['batch_input'], 'ragged batching (batch inputs)');
  if (c.batch_output.length > 0) add(['batch_output'], 'ragged batching (batch outputs)');
  if (Object.keys(c.cc_model_filenames).length > 0) add(['cc_model_filenames'], 'model files per CUDA compute capability');
  if (Object.keys(c.metric_tags).length > 0) add(['metric_tags'], 'extra metric labels');
  if (c.model_metrics !== undefined) add(['model_metrics'], 'per-model metric (histogram) options');
  if ((c.model_operations?.op_library_filename.length ?? 0) > 0) add(['model_operations', 'op_library_filename'], 'custom operation libraries');
  if ((c.model_repository_agents?.agents.length ?? 0) > 0) add(['model_repository_agents'], 'repository agents');

  c.input.forEach((t, i) => {
    if (t.allow_ragged_batch) add(['input', i, 'allow_ragged_batch'], 'ragged batching');
    if (t.is_shape_tensor) add(['input', i, 'is_shape_tensor'], 'TensorRT shape tensors');
    if (t.is_non_linear_format_io) add(['input', i, 'is_non_linear_format_io'], 'TensorRT non-linear I/O formats');
  });
  c.output.forEach((t, i) => {
    if (t.is_shape_tensor) add(['output', i, 'is_shape_tensor'], 'TensorRT shape tensors');
    if (t.is_non_linear_format_io) add(['output', i, 'is_non_linear_format_io'], 'TensorRT non-linear I/O formats');
  });
  c.instance_group.forEach((g, i) => {
    if (g.passive) add(['instance_group', i, 'passive'], 'passive instances');
    if (g.secondary_devices.length > 0) add(['instance_group', i, 'secondary_devices'], 'secondary (NVDLA) devices');
    if (g.profile.length > 0) add(['instance_group', i, 'profile'], 'TensorRT optimization profiles');
    if (g.host_policy !== '') add(['instance_group', i, 'host_policy'], 'host policies');
  });

  const o = c.optimization;
  if (o.priority !== 'PRIORITY_DEFAULT') add(['optimization', 'priority'], 'model priorities (CUDA stream priorities)');
  if (o.cuda && (o.cuda.graphs || o.cuda.busy_wait_events || o.cuda.graph_spec.length > 0 || o.cuda.output_copy_stream)) {
    add(['optimization', 'cuda'], 'CUDA optimizations (no GPU execution)');
  }
  if (o.gather_kernel_buffer_threshold !== 0) add(['optimization', 'gather_kernel_buffer_threshold'], 'the CUDA gather kernel');
  if (o.eager_batching) add(['optimization', 'eager_batching'], 'TensorRT eager batching');

  const sb = c.sequence_batching;
  if (sb?.iterative_sequence) add(['sequence_batching', 'iterative_sequence'], 'iterative sequences');
  sb?.state.forEach((s, i) => {
    if (s.use_same_buffer_for_input_output) add(['sequence_batching', 'state', i, 'use_same_buffer_for_input_output'], 'CUDA state buffers');
    if (s.use_growable_memory) add(['sequence_batching', 'state', i, 'use_growable_memory'], 'CUDA growable state memory');
  });

  const es = c.ensemble_scheduling;
  if (es && es.max_inflight_responses !== 0) add(['ensemble_scheduling', 'max_inflight_responses'], 'ensemble response limits');
  es?.step.forEach((s, i) => {
    if (s.model_namespace !== '') add(['ensemble_scheduling', 'step', i, 'model_namespace'], 'model namespaces');
  });
  return found;
}

/** The message of one refusal (the field's path precedes it). */
export function unsupportedMessage(f: UnsupportedField): string {
  return `is not supported by stubhost (${f.what}); remove it`;
}
