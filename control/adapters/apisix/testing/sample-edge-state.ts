/** Edge states for APISIX adapter tests: realistic, validated plugin confs on every layer. */
import { edgePlugins, type GatewayEdgeState } from '../../../edge-sync.ts'
import { effectivePlugins, validatePluginConfigs } from '../../../domain/plugins.ts'
import { stages } from '../../../domain/names.ts'
import type { Stage } from '../../../ports.ts'
import { runtimeUpstream } from '../../kubernetes/kubernetes-provisioner.ts'

export function sampleEdgeState(gatewayId = 'hometax', options: { consumers?: number; hosts?: string[] } = {}): GatewayEdgeState {
  const gateway = validatePluginConfigs({ 'ip-restriction': { blacklist: ['10.0.0.0/8'] }, cors: { allow_origins: '**', allow_credential: false } })
  const environments: Record<Stage, unknown> = {
    dev: {},
    staging: { 'limit-req': { rate: 10, burst: 5, key: 'remote_addr' } },
    prod: { 'key-auth': {}, 'limit-count': { count: 100, time_window: 60 }, 'proxy-rewrite': { headers: { set: { 'x-imprun-stage': 'prod' } } } },
  }
  return {
    gatewayId,
    hosts: options.hosts ?? [`${gatewayId}.api.example.com`],
    basePlugins: edgePlugins(effectivePlugins({ gateway })),
    baseUpstream: runtimeUpstream(gatewayId, 'prod'),
    stages: stages.map((stage) => ({
      stage,
      plugins: edgePlugins(effectivePlugins({ gateway, environment: validatePluginConfigs(environments[stage]) })),
      upstream: runtimeUpstream(gatewayId, stage),
    })),
    consumers: Array.from({ length: options.consumers ?? 2 }, (_, index) => ({
      grantId: `grt_Abc${index}XyZ${gatewayId.length}`,
      applicationId: `app_${index}`,
      stage: index % 2 === 0 ? 'prod' : 'dev',
      key: `imp_${gatewayId.padEnd(16, 'k').slice(0, 16).replace(/-/g, 'k')}_${String(index).padStart(43, 's')}`,
    })),
    grantsWithoutKey: [],
  }
}
