/**
 * deploy/kserve: the ClusterServingRuntime and the InferenceService example against the fields of
 * KServe's CRDs (unknown fields refused, embedded Kubernetes types checked with kubernetes-models),
 * and against each other: the example's model format is one the runtime serves, by name.
 */
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { CLUSTER_SERVING_RUNTIME, INFERENCE_SERVICE, checkFields } from './helpers/kserve-schema.js';
import { REPO_ROOT } from './helpers/run.js';
import { k8sClasses, loadYaml, parseAllDocuments } from './helpers/validators.js';

const read = (f: string): any[] => parseAllDocuments(fs.readFileSync(path.join(REPO_ROOT, 'deploy/kserve', f), 'utf8')) as any[];
let classes: Awaited<ReturnType<typeof k8sClasses>>;
let runtime: any;
let isvc: any;
beforeAll(async () => {
  await loadYaml();
  classes = await k8sClasses();
  [runtime] = read('cluster-serving-runtime.yaml');
  [isvc] = read('inference-service.yaml');
}, 300_000);

const flag = (args: string[], name: string): string | undefined => args.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];

describe('KServe', () => {
  it('the ClusterServingRuntime has only fields of its CRD, with their types', () => {
    expect(checkFields(runtime, CLUSTER_SERVING_RUNTIME, classes)).toEqual([]);
    const spec = runtime.spec;
    expect(spec.protocolVersions).toEqual(['v2', 'grpc-v2']);
    expect(spec.supportedModelFormats.map((f: any) => f.name)).toEqual(['typescript', 'onnx']);
    // As kserve-tritonserver: the container KServe injects the storage initializer's volume into,
    // HTTP on KServe's default port 8080, the repository where the storage initializer writes.
    const c = spec.containers[0];
    expect(c.name).toBe('kserve-container');
    expect(c.args[0]).toBe('serve');
    expect(flag(c.args, 'model-repository')).toBe('/mnt/models');
    expect(flag(c.args, 'http-port')).toBe('8080');
    expect(flag(c.args, 'metrics-port')).toBe(spec.annotations['prometheus.kserve.io/port']);
    expect(c.securityContext).toMatchObject({ runAsNonRoot: true, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false });
    const dshm = spec.volumes.find((v: any) => v.name === 'dshm');
    expect(dshm.emptyDir.medium).toBe('Memory');
    expect(c.volumeMounts).toContainEqual({ name: 'dshm', mountPath: '/dev/shm' });
    expect(c.volumeMounts).toContainEqual({ name: 'tmp', mountPath: '/tmp' });
  });

  it('the InferenceService example has only fields of its CRD, names the runtime and a format it serves, and leaves room for the drain', () => {
    expect(checkFields(isvc, INFERENCE_SERVICE, classes)).toEqual([]);
    const model = isvc.spec.predictor.model;
    expect(model.runtime).toBe(runtime.metadata.name);
    expect(runtime.spec.supportedModelFormats.map((f: any) => `${f.name}/${f.version}`)).toContain(`${model.modelFormat.name}/${model.modelFormat.version}`);
    expect(runtime.spec.protocolVersions).toContain(model.protocolVersion);
    const exitTimeout = Number(flag(runtime.spec.containers[0].args, 'exit-timeout-secs'));
    expect(isvc.spec.predictor.terminationGracePeriodSeconds).toBeGreaterThan(exitTimeout);
  });

  it('the check refuses a misspelt field, a wrong type, an unknown protocol and a broken container', () => {
    const broken = structuredClone(runtime);
    broken.spec.protocolVersion = broken.spec.protocolVersions;
    broken.spec.supportedModelFormats[0].priority = 0;
    broken.spec.protocolVersions = ['v3'];
    broken.spec.multiModel = 'no';
    broken.spec.containers[0].ports = [{ containerPort: 'http' }];
    const problems = checkFields(broken, CLUSTER_SERVING_RUNTIME, classes);
    expect(problems.sort()).toEqual([
      expect.stringMatching(/^spec\.containers\[0\] \(Container\): .*containerPort must be integer/),
      expect.stringMatching(/^spec\.multiModel: expected true or false/),
      expect.stringMatching(/^spec\.protocolVersion: not a field of the CRD/),
      expect.stringMatching(/^spec\.protocolVersions\[0\]: "v3" is not one of v1, v2, grpc-v1, grpc-v2/),
      expect.stringMatching(/^spec\.supportedModelFormats\[0\]\.priority: must be >= 1/),
    ]);
    const noFormat = structuredClone(isvc);
    delete noFormat.spec.predictor.model.modelFormat;
    expect(checkFields(noFormat, INFERENCE_SERVICE, classes)).toEqual(['spec.predictor.model.modelFormat: required']);
  });
});
