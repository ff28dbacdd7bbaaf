/**
 * Pure builders: a gateway's edge state → APISIX objects, in the two shapes APISIX takes them.
 *
 * Admin API / standalone (`apisixAdminObjects`): per gateway 3 upstreams (one per stage Service),
 * 3 plugin_configs (one per stage), 4 routes (base `/*` priority 1 with the gateway layer inline,
 * `/<stage>/*` priority 10 → stage upstream + plugin_config), one consumer per grant with
 * key-auth. Ids `imp.<gateway>.<name>` and consumer usernames `imp_<gateway>_<stage>_<grant>` are
 * unambiguous per gateway (gateway ids have neither `.` nor `_`); every object also carries the
 * label `imprun_gateway`, which is what sync uses to find a gateway's objects.
 *
 * Ingress Controller CRDs (`apisixCrdObjects`): in the gateway's namespace (beside the runtime
 * Services it must reference), one ApisixRoute with the four `http` entries, one
 * ApisixPluginConfig per stage, one ApisixUpstream per stage Service, and per grant an
 * ApisixConsumer whose key-auth key comes from a Secret (`secretRef`), so the key is not in the
 * custom resource.
 */
import type { Stage } from '../../ports.ts'
import { shortDigest, type EdgeUpstream, type GatewayEdgeState } from '../../edge-sync.ts'
import type { PluginConfigs } from '../../domain/plugins.ts'

export const adminLabel = 'imprun_gateway'

export interface AdminObjects {
  upstreams: AdminUpstream[]
  plugin_configs: AdminPluginConfig[]
  routes: AdminRoute[]
  consumers: AdminConsumer[]
}

export interface AdminUpstream {
  id: string
  name: string
  desc: string
  type: 'roundrobin'
  nodes: Array<{ host: string; port: number; weight: number }>
  scheme: 'http'
  pass_host: 'pass'
  retries: number
  timeout: { connect: number; send: number; read: number }
  labels: Record<string, string>
}

export interface AdminPluginConfig {
  id: string
  desc: string
  plugins: PluginConfigs
  labels: Record<string, string>
}

export interface AdminRoute {
  id: string
  name: string
  desc: string
  uri: string
  hosts?: string[]
  priority: number
  upstream_id: string
  plugin_config_id?: string
  plugins?: PluginConfigs
  labels: Record<string, string>
}

export interface AdminConsumer {
  username: string
  desc: string
  plugins: { 'key-auth': { key: string } }
  labels: Record<string, string>
}

export interface ApisixObjectOptions {
  /** Cluster DNS suffix for Service hosts (default `svc.cluster.local`). */
  clusterDomain?: string
  /** Upstream timeouts, seconds (default connect 5, send/read 60). */
  timeout?: { connect: number; send: number; read: number }
}

export function adminId(gatewayId: string, name: string): string {
  return `imp.${gatewayId}.${name}`
}

export function consumerUsername(gatewayId: string, stage: Stage, grantId: string): string {
  return `imp_${gatewayId}_${stage}_${grantId.replace(/[^A-Za-z0-9_-]/g, '-')}`
}

function upstreamHost(upstream: EdgeUpstream, clusterDomain: string): string {
  return `${upstream.serviceName}.${upstream.namespace}.${clusterDomain}`
}

export function apisixAdminObjects(state: GatewayEdgeState, options: ApisixObjectOptions = {}): AdminObjects {
  const clusterDomain = options.clusterDomain ?? 'svc.cluster.local'
  const timeout = options.timeout ?? { connect: 5, send: 60, read: 60 }
  const labels = { [adminLabel]: state.gatewayId }
  const hosts = state.hosts.length > 0 ? { hosts: [...state.hosts] } : {}
  const upstreams: AdminUpstream[] = state.stages.map(({ stage, upstream }) => ({
    id: adminId(state.gatewayId, stage),
    name: `${state.gatewayId} ${stage} runtime`,
    desc: `imprun gateway ${state.gatewayId}, ${stage} runtime Service`,
    type: 'roundrobin',
    nodes: [{ host: upstreamHost(upstream, clusterDomain), port: upstream.port, weight: 1 }],
    scheme: 'http',
    pass_host: 'pass',
    retries: 1,
    timeout: { ...timeout },
    labels: { ...labels },
  }))
  const pluginConfigs: AdminPluginConfig[] = state.stages.map(({ stage, plugins }) => ({
    id: adminId(state.gatewayId, stage),
    desc: `imprun gateway ${state.gatewayId}, ${stage} plugins`,
    plugins: structuredClone(plugins),
    labels: { ...labels },
  }))
  const prodUpstream = upstreams.find((upstream) => upstream.id === adminId(state.gatewayId, 'prod')) ?? upstreams[upstreams.length - 1]!
  const routes: AdminRoute[] = [
    {
      id: adminId(state.gatewayId, 'base'),
      name: `${state.gatewayId} base`,
      desc: `imprun gateway ${state.gatewayId}: paths outside a stage`,
      uri: '/*',
      ...hosts,
      priority: 1,
      upstream_id: prodUpstream.id,
      plugins: structuredClone(state.basePlugins),
      labels: { ...labels },
    },
    ...state.stages.map(({ stage }) => ({
      id: adminId(state.gatewayId, stage),
      name: `${state.gatewayId} ${stage}`,
      desc: `imprun gateway ${state.gatewayId}, stage ${stage}`,
      uri: `/${stage}/*`,
      ...hosts,
      priority: 10,
      upstream_id: adminId(state.gatewayId, stage),
      plugin_config_id: adminId(state.gatewayId, stage),
      labels: { ...labels },
    })),
  ]
  const consumers: AdminConsumer[] = state.consumers.map((consumer) => ({
    username: consumerUsername(state.gatewayId, consumer.stage, consumer.grantId),
    desc: `imprun grant ${consumer.grantId} (application ${consumer.applicationId}) for ${state.gatewayId}/${consumer.stage}`,
    plugins: { 'key-auth': { key: consumer.key } },
    labels: { ...labels },
  }))
  return { upstreams, plugin_configs: pluginConfigs, routes, consumers }
}

// ---------------------------------------------------------------------------------------------
// Ingress Controller CRDs
// ---------------------------------------------------------------------------------------------

export type CustomResource = {
  apiVersion: string
  kind: string
  metadata: { name: string; namespace: string; labels: Record<string, string> }
  [field: string]: unknown
}

export const crdLabels = {
  gateway: 'imprun.dev/gateway',
  component: 'imprun.dev/component',
  managedBy: 'app.kubernetes.io/managed-by',
} as const

export interface ApisixCrdOptions {
  /** `spec.ingressClassName` of every resource (the controller's class), when set. */
  ingressClassName?: string
  timeout?: { connect: string; send: string; read: string }
}

export const crdKinds = ['ApisixRoute', 'ApisixPluginConfig', 'ApisixUpstream', 'ApisixConsumer'] as const

/** Name of the Secret (and ApisixConsumer) of one grant: grant ids are mixed case, names are not. */
export function consumerObjectName(stage: Stage, grantId: string): string {
  return `grant-${stage}-${shortDigest(grantId, 16)}`
}

export function pluginList(plugins: PluginConfigs): Array<{ name: string; enable: boolean; config: Record<string, unknown> }> {
  return Object.entries(plugins)
    .sort(([left], [right]) => (left < right ? -1 : left > right ? 1 : 0))
    .map(([name, config]) => ({ name, enable: true, config: structuredClone(config) }))
}

/** The custom resources, plus the Secrets holding consumer keys (plain Kubernetes Secrets). */
export function apisixCrdObjects(state: GatewayEdgeState, options: ApisixCrdOptions = {}): { resources: CustomResource[]; secrets: CustomResource[] } {
  const namespace = state.baseUpstream.namespace
  const labels = (component: string) => ({ [crdLabels.gateway]: state.gatewayId, [crdLabels.component]: component, [crdLabels.managedBy]: 'imprun' })
  const ingressClass = options.ingressClassName ? { ingressClassName: options.ingressClassName } : {}
  const timeout = options.timeout ?? { connect: '5s', send: '60s', read: '60s' }
  const hosts = state.hosts.length > 0 ? { hosts: [...state.hosts] } : {}
  const resources: CustomResource[] = []
  for (const { stage, upstream } of state.stages) {
    resources.push({
      apiVersion: 'apisix.apache.org/v2',
      kind: 'ApisixUpstream',
      // Named like the Service it configures: that is how the controller pairs them.
      metadata: { name: upstream.serviceName, namespace, labels: labels('edge') },
      spec: { ...ingressClass, loadbalancer: { type: 'roundrobin' }, scheme: 'http', retries: 1, timeout: { ...timeout } },
    })
    resources.push({
      apiVersion: 'apisix.apache.org/v2',
      kind: 'ApisixPluginConfig',
      metadata: { name: `imprun-${stage}`, namespace, labels: labels('edge') },
      spec: { ...ingressClass, plugins: pluginList(state.stages.find((entry) => entry.stage === stage)!.plugins) },
    })
  }
  resources.push({
    apiVersion: 'apisix.apache.org/v2',
    kind: 'ApisixRoute',
    metadata: { name: 'imprun', namespace, labels: labels('edge') },
    spec: {
      ...ingressClass,
      http: [
        {
          name: 'base',
          priority: 1,
          match: { paths: ['/*'], ...hosts },
          backends: [{ serviceName: state.baseUpstream.serviceName, servicePort: state.baseUpstream.port }],
          plugins: pluginList(state.basePlugins),
        },
        ...state.stages.map(({ stage, upstream }) => ({
          name: stage,
          priority: 10,
          match: { paths: [`/${stage}/*`], ...hosts },
          backends: [{ serviceName: upstream.serviceName, servicePort: upstream.port }],
          plugin_config_name: `imprun-${stage}`,
        })),
      ],
    },
  })
  const secrets: CustomResource[] = []
  for (const consumer of state.consumers) {
    const name = consumerObjectName(consumer.stage, consumer.grantId)
    secrets.push({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name, namespace, labels: labels('consumer-key') },
      type: 'Opaque',
      data: { key: Buffer.from(consumer.key).toString('base64') },
    })
    resources.push({
      apiVersion: 'apisix.apache.org/v2',
      kind: 'ApisixConsumer',
      metadata: { name, namespace, labels: labels('edge') },
      spec: { ...ingressClass, authParameter: { keyAuth: { secretRef: { name } } } },
    })
  }
  return { resources, secrets }
}
