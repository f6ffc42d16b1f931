/**
 * The Helm chart renders with its default values and with every option turned on, each manifest
 * validates against the Kubernetes schemas (kubernetes-models, pinned), and the rendered pod
 * matches what the server needs: probes on the health endpoints, a grace period that covers
 * preStop plus the whole drain, /dev/shm as sized memory, /tmp writable under a read-only root,
 * the repository read-only from the chosen source, and the flags that values turn on.
 */
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ensureHelm, helmLint, helmTemplate } from './helpers/helm.js';
import { loadYaml, parseAllDocuments, validateManifest } from './helpers/validators.js';

let helm: string;
beforeAll(async () => {
  [helm] = await Promise.all([ensureHelm(), loadYaml()]);
}, 300_000);

async function render(opts: Parameters<typeof helmTemplate>[1] = {}): Promise<any[]> {
  const docs = parseAllDocuments(await helmTemplate(helm, opts)) as any[];
  for (const d of docs) await validateManifest(d);
  return docs;
}
const byKind = (docs: any[], kind: string): any[] => docs.filter((d) => d.kind === kind);
const one = (docs: any[], kind: string): any => {
  const found = byKind(docs, kind);
  expect(found, kind).toHaveLength(1);
  return found[0];
};
const volume = (pod: any, name: string): any => pod.volumes.find((v: any) => v.name === name);
const mount = (c: any, name: string): any => c.volumeMounts.find((m: any) => m.name === name);

describe('helm chart deploy/helm/stubhost', () => {
  it('renders with default values; every manifest validates', async () => {
    const docs = await render();
    expect(docs.map((d) => d.kind).sort()).toEqual(['Deployment', 'PodDisruptionBudget', 'Service', 'ServiceAccount']);
    const pod = one(docs, 'Deployment').spec.template.spec;
    const c = pod.containers[0];
    expect(c.args).toEqual(['serve', '--model-repository=/models', '--http-port=8000', '--grpc-port=8001', '--metrics-port=8002',
      '--exit-timeout-secs=30', '--strict-readiness=true', '--model-control-mode=none', '--log-format=json']);
    expect(c.startupProbe.httpGet).toEqual({ path: '/v2/health/ready', port: 'http' });
    expect(c.livenessProbe.httpGet).toEqual({ path: '/v2/health/live', port: 'http' });
    expect(c.readinessProbe.httpGet).toEqual({ path: '/v2/health/ready', port: 'http' });
    expect(c.ports.map((p: any) => [p.name, p.containerPort])).toEqual([['http', 8000], ['grpc', 8001], ['metrics', 8002]]);
    // preStop 5 s + drain 30 s + margin 10 s.
    expect(c.lifecycle.preStop.exec.command).toEqual(['sleep', '5']);
    expect(pod.terminationGracePeriodSeconds).toBe(45);
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 10001, seccompProfile: { type: 'RuntimeDefault' } });
    expect(c.securityContext).toEqual({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, privileged: false, capabilities: { drop: ['ALL'] } });
    expect(volume(pod, 'dshm')).toEqual({ name: 'dshm', emptyDir: { medium: 'Memory', sizeLimit: '1Gi' } });
    expect(mount(c, 'dshm').mountPath).toBe('/dev/shm');
    expect(mount(c, 'tmp').mountPath).toBe('/tmp');
    expect(volume(pod, 'models').persistentVolumeClaim).toEqual({ claimName: 'stubhost-models', readOnly: true });
    expect(mount(c, 'models')).toEqual({ name: 'models', mountPath: '/models', readOnly: true });
    expect(pod.automountServiceAccountToken).toBe(false);
    const svc = one(docs, 'Service');
    expect(svc.spec.ports.map((p: any) => [p.name, p.port, p.targetPort])).toEqual([['http', 8000, 'http'], ['grpc', 8001, 'grpc'], ['metrics', 8002, 'metrics']]);
    expect(svc.spec.selector).toEqual(one(docs, 'Deployment').spec.selector.matchLabels);
    expect(one(docs, 'PodDisruptionBudget').spec).toMatchObject({ maxUnavailable: 1 });
  });

  it('renders every option (autoscaling, ServiceMonitor, init-container repository, restricted APIs); every manifest validates', async () => {
    const docs = await render({ values: [path.join(import.meta.dirname, 'fixtures/values-full.yaml')] });
    expect(docs.map((d) => d.kind).sort()).toEqual(['Deployment', 'HorizontalPodAutoscaler', 'PodDisruptionBudget', 'Service', 'ServiceAccount', 'ServiceMonitor']);
    const deploy = one(docs, 'Deployment');
    expect(deploy.spec.replicas).toBeUndefined(); // the HPA owns it
    const pod = deploy.spec.template.spec;
    const c = pod.containers[0];
    expect(c.image).toBe('registry.example.com/ml/stubhost:2026.12.1');
    expect(c.args).toEqual(['serve', '--model-repository=/models', '--http-port=8000', '--grpc-port=8001', '--metrics-port=8002',
      '--exit-timeout-secs=120', '--strict-readiness=false', '--model-control-mode=explicit', '--load-model=add_sub', '--load-model=ocr',
      '--log-format=json', '--log-verbose=1',
      '--http-restricted-api=model-repository,shared-memory:admin-key=$(STUBHOST_HTTP_RESTRICTED_0)',
      '--grpc-restricted-protocol=model-repository:admin-key=s3cret',
      '--allow-client-shm=false', '--shm-max-bytes=1073741824']);
    // The secret reaches the flag through Kubernetes' $(VAR) expansion of args, never the manifest.
    expect(c.env).toContainEqual({ name: 'STUBHOST_HTTP_RESTRICTED_0', valueFrom: { secretKeyRef: { name: 'stubhost-admin', key: 'key' } } });
    expect(c.env).toContainEqual({ name: 'STUBHOST_EXTRA', value: '1' });
    expect(pod.terminationGracePeriodSeconds).toBe(10 + 120 + 15);
    expect(c.lifecycle.preStop.exec.command).toEqual(['sleep', '10']);
    expect(volume(pod, 'dshm').emptyDir).toEqual({ medium: 'Memory', sizeLimit: '4Gi' });
    // The init container fills an emptyDir the server then reads without write access.
    const init = pod.initContainers[0];
    expect(init.image).toBe('amazon/aws-cli:2.17.0');
    expect(mount(init, 'models')).toEqual({ name: 'models', mountPath: '/models' });
    expect(init.securityContext.readOnlyRootFilesystem).toBe(true);
    expect(volume(pod, 'models').emptyDir).toEqual({ sizeLimit: '8Gi' });
    expect(mount(c, 'models').readOnly).toBe(true);

    const hpa = one(docs, 'HorizontalPodAutoscaler');
    expect(hpa.spec).toMatchObject({ minReplicas: 2, maxReplicas: 10, scaleTargetRef: { kind: 'Deployment', name: deploy.metadata.name } });
    expect(hpa.spec.metrics).toEqual([{ type: 'Pods', pods: { metric: { name: 'pending_requests' }, target: { type: 'AverageValue', averageValue: '8' } } }]);
    expect(hpa.spec.behavior.scaleDown.stabilizationWindowSeconds).toBe(300);
    const sm = one(docs, 'ServiceMonitor');
    expect(sm.metadata.labels.release).toBe('prometheus');
    expect(sm.spec.endpoints).toEqual([{ port: 'metrics', path: '/metrics', interval: '30s', scrapeTimeout: '10s' }]);
    expect(sm.spec.selector.matchLabels).toEqual(deploy.spec.selector.matchLabels);
    expect(one(docs, 'PodDisruptionBudget').spec).toEqual({ minAvailable: 1, selector: { matchLabels: deploy.spec.selector.matchLabels } });
    expect(one(docs, 'Service').spec.type).toBe('LoadBalancer');
  });

  it('serves a repository from a ConfigMap, and from a PVC sub-path', async () => {
    const cm = await render({ set: ['modelRepository.source=configMap', 'modelRepository.configMap.name=examples',
      'modelRepository.configMap.items[0].key=add_sub.config.pbtxt', 'modelRepository.configMap.items[0].path=add_sub/config.pbtxt',
      'modelRepository.configMap.items[1].key=add_sub.model.ts', 'modelRepository.configMap.items[1].path=add_sub/1/model.ts',
      'podDisruptionBudget.enabled=false', 'serviceAccount.create=false'] });
    expect(cm.map((d) => d.kind).sort()).toEqual(['Deployment', 'Service']);
    const pod = one(cm, 'Deployment').spec.template.spec;
    expect(pod.serviceAccountName).toBe('default');
    expect(volume(pod, 'models').configMap).toEqual({ name: 'examples', items: [{ key: 'add_sub.config.pbtxt', path: 'add_sub/config.pbtxt' }, { key: 'add_sub.model.ts', path: 'add_sub/1/model.ts' }] });
    const pvc = await render({ set: ['modelRepository.pvc.claimName=shared-models', 'modelRepository.pvc.subPath=team-a'] });
    const c = one(pvc, 'Deployment').spec.template.spec.containers[0];
    expect(mount(c, 'models')).toEqual({ name: 'models', mountPath: '/models', readOnly: true, subPath: 'team-a' });
  });

  it('the schema check refuses what the API server would: a wrong type, a missing field, an unknown kind', async () => {
    const deploy = one(parseAllDocuments(await helmTemplate(helm)) as any[], 'Deployment');
    await expect(validateManifest({ ...deploy, spec: { ...deploy.spec, replicas: 'one' } })).rejects.toThrow(/replicas must be integer/);
    const { selector: _, ...noSelector } = deploy.spec;
    await expect(validateManifest({ ...deploy, spec: noSelector })).rejects.toThrow(/selector/);
    await expect(validateManifest({ ...deploy, apiVersion: 'apps/v9' })).rejects.toThrow(/no schema for apps\/v9 Deployment/);
  });

  it('passes helm lint --strict with the default and the full values', async () => {
    expect(await helmLint(helm)).toMatch(/1 chart\(s\) linted, 0 chart\(s\) failed/);
    expect(await helmLint(helm, [path.join(import.meta.dirname, 'fixtures/values-full.yaml')])).toMatch(/0 chart\(s\) failed/);
  });

  it('refuses values that cannot work, naming the value', async () => {
    await expect(helmTemplate(helm, { set: ['modelRepository.source=s3'] })).rejects.toThrow(/modelRepository\.source/);
    await expect(helmTemplate(helm, { set: ['modelRepository.source=configMap'] })).rejects.toThrow(/modelRepository\.configMap\.name is required/);
    await expect(helmTemplate(helm, { set: ['modelRepository.source=initContainer'] })).rejects.toThrow(/modelRepository\.initContainer\.image is required/);
    await expect(helmTemplate(helm, { set: ['server.modelControlMode=sometimes'] })).rejects.toThrow(/modelControlMode/);
    await expect(helmTemplate(helm, { set: ['server.exitTimeoutSecs=soon'] })).rejects.toThrow(/exitTimeoutSecs/);
    await expect(helmTemplate(helm, { set: ['shm.sizeLimit=lots'] })).rejects.toThrow(/sizeLimit/);
  });
});
