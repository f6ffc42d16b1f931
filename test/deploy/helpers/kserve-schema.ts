/**
 * The fields of KServe's ClusterServingRuntime and InferenceService CRDs, as a small schema check
 * that also refuses unknown fields (the API server would prune them silently). Field names and
 * types are those of kserve/kserve config/crd/full/serving.kserve.io_clusterservingruntimes.yaml
 * and serving.kserve.io_inferenceservices.yaml (v1alpha1 and v1beta1); the Kubernetes types they
 * embed (Container, Volume, ...) are checked with the kubernetes-models classes of the same name.
 */
export type Field =
  | { type: 'string'; enum?: readonly string[] }
  | { type: 'integer'; minimum?: number }
  | { type: 'boolean' }
  | { type: 'object'; properties: Record<string, Field>; required?: readonly string[] }
  | { type: 'map' } // string to string
  | { type: 'array'; items: Field }
  | { type: 'k8s'; kind: string }
  | { type: 'any' };

/** KServe's protocol versions (pkg/constants/constants.go, InferenceServiceProtocol). */
export const KSERVE_PROTOCOLS = ['v1', 'v2', 'grpc-v1', 'grpc-v2'] as const;

const k8s = (kind: string): Field => ({ type: 'k8s', kind });
const arrayOf = (items: Field): Field => ({ type: 'array', items });
const str: Field = { type: 'string' };
const int: Field = { type: 'integer' };
const bool: Field = { type: 'boolean' };
const any: Field = { type: 'any' };
const map: Field = { type: 'map' };

const servingRuntimeSpec: Field = {
  type: 'object',
  required: ['containers'],
  properties: {
    affinity: k8s('Affinity'),
    annotations: map,
    builtInAdapter: { type: 'object', properties: { env: arrayOf(k8s('EnvVar')), memBufferBytes: int, modelLoadingTimeoutMillis: int, runtimeManagementPort: int, serverType: str } },
    containers: arrayOf(k8s('Container')),
    disabled: bool,
    grpcDataEndpoint: str,
    grpcEndpoint: str,
    hostIPC: bool,
    httpDataEndpoint: str,
    imagePullSecrets: arrayOf(k8s('LocalObjectReference')),
    labels: map,
    multiModel: bool,
    nodeSelector: map,
    protocolVersions: arrayOf({ type: 'string', enum: KSERVE_PROTOCOLS }),
    replicas: int,
    resourceClaims: arrayOf(any),
    schedulerName: str,
    storageHelper: { type: 'object', properties: { disabled: bool } },
    supportedModelFormats: arrayOf({ type: 'object', required: ['name'], properties: { autoSelect: bool, name: str, priority: { type: 'integer', minimum: 1 }, version: str } }),
    tolerations: arrayOf(k8s('Toleration')),
    volumes: arrayOf(k8s('Volume')),
    workerSpec: any,
  },
};

export const CLUSTER_SERVING_RUNTIME: Field = {
  type: 'object',
  required: ['apiVersion', 'kind', 'metadata', 'spec'],
  properties: { apiVersion: { type: 'string', enum: ['serving.kserve.io/v1alpha1'] }, kind: { type: 'string', enum: ['ClusterServingRuntime'] }, metadata: k8s('ObjectMeta'), spec: servingRuntimeSpec },
};

/** v1beta1 ModelSpec: a Container plus KServe's model fields. */
const modelSpec: Field = {
  type: 'object',
  required: ['modelFormat'],
  properties: {
    args: arrayOf(str), command: arrayOf(str), env: arrayOf(k8s('EnvVar')), envFrom: arrayOf(any), image: str, imagePullPolicy: str,
    lifecycle: any, livenessProbe: k8s('Probe'), readinessProbe: k8s('Probe'), startupProbe: k8s('Probe'), name: str, ports: arrayOf(k8s('ContainerPort')),
    resizePolicy: arrayOf(any), resources: k8s('ResourceRequirements'), restartPolicy: str, restartPolicyRules: arrayOf(any), securityContext: k8s('SecurityContext'),
    stdin: bool, stdinOnce: bool, terminationMessagePath: str, terminationMessagePolicy: str, tty: bool, volumeDevices: arrayOf(any), volumeMounts: arrayOf(k8s('VolumeMount')), workingDir: str,
    confidential: any,
    modelFormat: { type: 'object', required: ['name'], properties: { name: str, version: str } },
    protocolVersion: { type: 'string', enum: KSERVE_PROTOCOLS },
    runtime: str, runtimeVersion: str, storageUri: str,
    storage: { type: 'object', properties: { key: str, parameters: map, path: str, schemaPath: str } },
  },
};

/** Predictor fields (v1beta1 PredictorSpec); the ones this project's example may use are typed, the rest are known names. */
const predictorFieldNames = ['activeDeadlineSeconds', 'affinity', 'annotations', 'autoScaling', 'automountServiceAccountToken', 'batcher', 'canaryTrafficPercent', 'containerConcurrency', 'containers', 'deploymentStrategy', 'dnsConfig', 'dnsPolicy', 'enableServiceLinks', 'hostAliases', 'hostIPC', 'hostNetwork', 'hostPID', 'hostUsers', 'hostname', 'hostnameOverride', 'huggingface', 'imagePullSecrets', 'initContainers', 'labels', 'lightgbm', 'logger', 'maxReplicas', 'minReplicas', 'model', 'name', 'nodeName', 'nodeSelector', 'onnx', 'os', 'overhead', 'paddle', 'pmml', 'preemptionPolicy', 'priority', 'priorityClassName', 'pytorch', 'readinessGates', 'resourceClaims', 'resources', 'restartPolicy', 'runtimeClassName', 'scaleMetric', 'scaleMetricType', 'scaleTarget', 'schedulerName', 'schedulingGates', 'securityContext', 'serviceAccount', 'serviceAccountName', 'setHostnameAsFQDN', 'shareProcessNamespace', 'sklearn', 'storageContainerName', 'storageUris', 'subdomain', 'tensorflow', 'terminationGracePeriodSeconds', 'timeout', 'tolerations', 'topologySpreadConstraints', 'triton', 'volumes', 'workerSpec', 'xgboost'];
const predictorSpec: Field = {
  type: 'object',
  properties: {
    ...Object.fromEntries(predictorFieldNames.map((n) => [n, any])),
    annotations: map, labels: map, minReplicas: int, maxReplicas: int, terminationGracePeriodSeconds: int, timeout: int, containerConcurrency: int,
    scaleMetric: { type: 'string', enum: ['cpu', 'memory', 'concurrency', 'rps'] }, scaleMetricType: { type: 'string', enum: ['Utilization', 'Value', 'AverageValue'] }, scaleTarget: int,
    serviceAccountName: str, nodeSelector: map, tolerations: arrayOf(k8s('Toleration')), volumes: arrayOf(k8s('Volume')), containers: arrayOf(k8s('Container')),
    model: modelSpec,
  },
};

export const INFERENCE_SERVICE: Field = {
  type: 'object',
  required: ['apiVersion', 'kind', 'metadata', 'spec'],
  properties: {
    apiVersion: { type: 'string', enum: ['serving.kserve.io/v1beta1'] }, kind: { type: 'string', enum: ['InferenceService'] }, metadata: k8s('ObjectMeta'),
    spec: { type: 'object', required: ['predictor'], properties: { predictor: predictorSpec, transformer: any, explainer: any, canary: any } },
  },
};

type K8sClasses = Record<string, new (o: unknown) => { validate(): void }>;

/** Every problem of `value` against `field`, each naming its path. */
export function checkFields(value: unknown, field: Field, classes: K8sClasses, at = ''): string[] {
  const here = at || '(root)';
  switch (field.type) {
    case 'any':
      return [];
    case 'string':
      if (typeof value !== 'string') return [`${here}: expected a string`];
      return field.enum && !field.enum.includes(value) ? [`${here}: ${JSON.stringify(value)} is not one of ${field.enum.join(', ')}`] : [];
    case 'integer':
      if (!Number.isInteger(value)) return [`${here}: expected an integer`];
      return field.minimum !== undefined && (value as number) < field.minimum ? [`${here}: must be >= ${field.minimum}`] : [];
    case 'boolean':
      return typeof value === 'boolean' ? [] : [`${here}: expected true or false`];
    case 'map':
      if (!isObject(value)) return [`${here}: expected a map of strings`];
      return Object.entries(value).filter(([, v]) => typeof v !== 'string').map(([k]) => `${at}.${k}: expected a string`);
    case 'array':
      if (!Array.isArray(value)) return [`${here}: expected a list`];
      return value.flatMap((v, i) => checkFields(v, field.items, classes, `${at}[${i}]`));
    case 'k8s': {
      const Model = classes[field.kind];
      if (!Model) return [`${here}: no kubernetes-models class ${field.kind}`];
      try {
        new Model(value).validate();
        return [];
      } catch (err) {
        return [`${here} (${field.kind}): ${(err as Error).message}`];
      }
    }
    case 'object': {
      if (!isObject(value)) return [`${here}: expected an object`];
      const problems = (field.required ?? []).filter((k) => value[k] === undefined).map((k) => `${at ? at + '.' : ''}${k}: required`);
      for (const [k, v] of Object.entries(value)) {
        const sub = field.properties[k];
        const path = at ? `${at}.${k}` : k;
        if (!sub) problems.push(`${path}: not a field of the CRD (known: ${Object.keys(field.properties).join(', ')})`);
        else problems.push(...checkFields(v, sub, classes, path));
      }
      return problems;
    }
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
