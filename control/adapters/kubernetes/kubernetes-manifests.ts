/**
 * Pure builders of the Kubernetes objects one gateway runs on. Per gateway: Namespace,
 * ServiceAccount, ResourceQuota, LimitRange, NetworkPolicy (deny other namespaces; allow the
 * APISIX namespace and the gateway's own), a Secret with the store URL and secret key. Per stage:
 * a Deployment of `imprun runtime --gateway G --env E`, a Service, an HPA (autoscaling/v2).
 * Every object carries `imprun.dev/gateway` (and per stage `imprun.dev/stage`) labels.
 *
 * Plain JSON objects in wire form (what `kubectl apply -f` would take); validated against the
 * Kubernetes 1.34 schemas in kubernetes-manifests.test.ts.
 */
import type { Stage } from '../../ports.ts'

export type KubernetesObject = {
  apiVersion: string
  kind: string
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string>; [field: string]: unknown }
  [field: string]: unknown
}

export const labels = {
  gateway: 'imprun.dev/gateway',
  stage: 'imprun.dev/stage',
  component: 'imprun.dev/component',
  managedBy: 'app.kubernetes.io/managed-by',
} as const

export interface ResourceSettings {
  requests: { cpu: string; memory: string }
  limits: { cpu: string; memory: string }
}

export interface GatewayClusterSettings {
  /** Namespace name = prefix + gateway id (default `imprun-gw-`; ≤ 22 characters). */
  namespacePrefix: string
  /** The runtime image (the imprun image; its entrypoint is `imprun`). */
  image: string
  imagePullPolicy: 'Always' | 'IfNotPresent' | 'Never'
  /** Namespace APISIX runs in: its pods may reach the runtimes. */
  apisixNamespace: string
  /** Port the runtime listens on inside the pod and the Service exposes. */
  port: number
  runtime: ResourceSettings
  autoscaling: { minReplicas: number; maxReplicas: number; cpuUtilization: number }
  /** Whole-namespace limits. */
  quota: { cpu: string; memory: string; limitsCpu: string; limitsMemory: string; pods: number }
  /** Extra environment for the runtime containers (e.g. NODE_OPTIONS). */
  extraEnv?: Record<string, string>
}

export const defaultClusterSettings: Omit<GatewayClusterSettings, 'image'> = {
  namespacePrefix: 'imprun-gw-',
  imagePullPolicy: 'IfNotPresent',
  apisixNamespace: 'apisix',
  port: 8080,
  runtime: { requests: { cpu: '100m', memory: '256Mi' }, limits: { cpu: '1', memory: '512Mi' } },
  autoscaling: { minReplicas: 1, maxReplicas: 5, cpuUtilization: 70 },
  quota: { cpu: '4', memory: '8Gi', limitsCpu: '8', limitsMemory: '16Gi', pods: 30 },
}

/** What the runtime pods are given through the gateway's Secret. */
export interface GatewaySecretValues {
  /** Store URL the runtime opens (`mongodb://…`); per gateway, so it may carry per-tenant credentials. */
  storeUrl: string
  /** The platform secret key (opens environment secrets), as `IMPRUN_SECRET_KEY` takes it. */
  secretKey: string
}

export const secretName = 'imprun-runtime'
export const serviceAccountName = 'imprun-runtime'

export function namespaceName(gatewayId: string, settings: Pick<GatewayClusterSettings, 'namespacePrefix'>): string {
  return `${settings.namespacePrefix}${gatewayId}`
}

/** Deployment, Service and HPA name of a stage (a DNS-1035 label: the Service needs one). */
export function runtimeName(stage: Stage): string {
  return `runtime-${stage}`
}

function gatewayLabels(gatewayId: string): Record<string, string> {
  return { [labels.gateway]: gatewayId, [labels.managedBy]: 'imprun' }
}

function stageLabels(gatewayId: string, stage: Stage): Record<string, string> {
  return { ...gatewayLabels(gatewayId), [labels.stage]: stage, [labels.component]: 'runtime' }
}

/** The objects `create` makes: everything per gateway, nothing running. Apply in this order. */
export function gatewayManifests(gatewayId: string, settings: GatewayClusterSettings, secret: GatewaySecretValues): KubernetesObject[] {
  const namespace = namespaceName(gatewayId, settings)
  const meta = (name: string) => ({ name, namespace, labels: gatewayLabels(gatewayId) })
  return [
    {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: {
        name: namespace,
        labels: {
          ...gatewayLabels(gatewayId),
          // Pod Security admission: tenant code runs in a sandbox inside a restricted pod.
          'pod-security.kubernetes.io/enforce': 'restricted',
        },
      },
    },
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: meta(serviceAccountName), automountServiceAccountToken: false },
    {
      apiVersion: 'v1',
      kind: 'ResourceQuota',
      metadata: meta('imprun-quota'),
      spec: {
        hard: {
          'requests.cpu': settings.quota.cpu,
          'requests.memory': settings.quota.memory,
          'limits.cpu': settings.quota.limitsCpu,
          'limits.memory': settings.quota.limitsMemory,
          pods: String(settings.quota.pods),
          services: '10',
          secrets: '20',
          configmaps: '20',
          persistentvolumeclaims: '0',
          'services.loadbalancers': '0',
          'services.nodeports': '0',
        },
      },
    },
    {
      apiVersion: 'v1',
      kind: 'LimitRange',
      metadata: meta('imprun-limits'),
      spec: {
        limits: [
          {
            type: 'Container',
            default: { ...settings.runtime.limits },
            defaultRequest: { ...settings.runtime.requests },
            max: { cpu: settings.quota.limitsCpu, memory: settings.quota.limitsMemory },
          },
        ],
      },
    },
    {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: meta('imprun-isolation'),
      spec: {
        // Every pod of the namespace: no ingress except from APISIX and from the namespace itself.
        podSelector: {},
        policyTypes: ['Ingress'],
        ingress: [
          { from: [{ podSelector: {} }] },
          { from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': settings.apisixNamespace } } }] },
        ],
      },
    },
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: meta(secretName),
      type: 'Opaque',
      data: {
        IMPRUN_STORE: Buffer.from(secret.storeUrl).toString('base64'),
        IMPRUN_SECRET_KEY: Buffer.from(secret.secretKey).toString('base64'),
      },
    },
  ]
}

export interface StageManifestOptions {
  /** 0 while stopped; otherwise the HPA owns the count and the Deployment is applied without it. */
  replicas?: number
}

/** The runtime Deployment of one stage. */
export function runtimeDeployment(gatewayId: string, stage: Stage, settings: GatewayClusterSettings, options: StageManifestOptions = {}): KubernetesObject {
  const namespace = namespaceName(gatewayId, settings)
  const selector = { [labels.gateway]: gatewayId, [labels.stage]: stage, [labels.component]: 'runtime' }
  const env = [
    { name: 'IMPRUN_STORE', valueFrom: { secretKeyRef: { name: secretName, key: 'IMPRUN_STORE' } } },
    { name: 'IMPRUN_SECRET_KEY', valueFrom: { secretKeyRef: { name: secretName, key: 'IMPRUN_SECRET_KEY' } } },
    ...Object.entries(settings.extraEnv ?? {}).map(([name, value]) => ({ name, value })),
  ]
  const spec: Record<string, unknown> = {
    selector: { matchLabels: selector },
    revisionHistoryLimit: 3,
    strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
    template: {
      metadata: { labels: stageLabels(gatewayId, stage) },
      spec: {
        serviceAccountName,
        automountServiceAccountToken: false,
        enableServiceLinks: false,
        securityContext: { runAsNonRoot: true, runAsUser: 10001, runAsGroup: 10001, fsGroup: 10001, seccompProfile: { type: 'RuntimeDefault' } },
        terminationGracePeriodSeconds: 30,
        containers: [
          {
            name: 'runtime',
            image: settings.image,
            imagePullPolicy: settings.imagePullPolicy,
            args: ['runtime', '--gateway', gatewayId, '--env', stage, '--port', String(settings.port), '--host', '0.0.0.0'],
            ports: [{ name: 'http', containerPort: settings.port, protocol: 'TCP' }],
            env,
            resources: { requests: { ...settings.runtime.requests }, limits: { ...settings.runtime.limits } },
            readinessProbe: { httpGet: { path: '/readyz', port: 'http' }, periodSeconds: 5, failureThreshold: 3 },
            livenessProbe: { httpGet: { path: '/healthz', port: 'http' }, initialDelaySeconds: 10, periodSeconds: 10, failureThreshold: 3 },
            securityContext: {
              allowPrivilegeEscalation: false,
              readOnlyRootFilesystem: true,
              capabilities: { drop: ['ALL'] },
            },
            volumeMounts: [{ name: 'tmp', mountPath: '/tmp' }],
          },
        ],
        volumes: [{ name: 'tmp', emptyDir: { sizeLimit: '64Mi' } }],
      },
    },
  }
  if (options.replicas !== undefined) spec.replicas = options.replicas
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: runtimeName(stage), namespace, labels: stageLabels(gatewayId, stage) },
    spec,
  }
}

export function runtimeService(gatewayId: string, stage: Stage, settings: GatewayClusterSettings): KubernetesObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: runtimeName(stage), namespace: namespaceName(gatewayId, settings), labels: stageLabels(gatewayId, stage) },
    spec: {
      type: 'ClusterIP',
      selector: { [labels.gateway]: gatewayId, [labels.stage]: stage, [labels.component]: 'runtime' },
      ports: [{ name: 'http', port: settings.port, targetPort: 'http', protocol: 'TCP' }],
    },
  }
}

export function runtimeAutoscaler(gatewayId: string, stage: Stage, settings: GatewayClusterSettings): KubernetesObject {
  return {
    apiVersion: 'autoscaling/v2',
    kind: 'HorizontalPodAutoscaler',
    metadata: { name: runtimeName(stage), namespace: namespaceName(gatewayId, settings), labels: stageLabels(gatewayId, stage) },
    spec: {
      scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: runtimeName(stage) },
      minReplicas: settings.autoscaling.minReplicas,
      maxReplicas: settings.autoscaling.maxReplicas,
      metrics: [{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: settings.autoscaling.cpuUtilization } } }],
    },
  }
}

/** Everything one stage runs on, in apply order. */
export function stageManifests(gatewayId: string, stage: Stage, settings: GatewayClusterSettings, options: StageManifestOptions = {}): KubernetesObject[] {
  return [runtimeService(gatewayId, stage, settings), runtimeDeployment(gatewayId, stage, settings, options), runtimeAutoscaler(gatewayId, stage, settings)]
}
