import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { contractsDirectory, contractsSkipMessage, loadContractSchemas } from '../contracts/contract-schemas.ts'
import { stages } from '../../domain/names.ts'
import {
  defaultClusterSettings,
  gatewayManifests,
  labels,
  namespaceName,
  runtimeDeployment,
  stageManifests,
  type GatewayClusterSettings,
} from './kubernetes-manifests.ts'

const directory = contractsDirectory()
const settings: GatewayClusterSettings = { ...defaultClusterSettings, image: 'ghcr.io/imprun/imprun:0.1.0' }
const secret = { storeUrl: 'mongodb://user:pass@mongo-0.mongo:27017/?replicaSet=rs0', secretKey: 'a'.repeat(43) }

function everything(gatewayId: string) {
  return [
    ...gatewayManifests(gatewayId, settings, secret),
    ...stages.flatMap((stage) => stageManifests(gatewayId, stage, settings)),
    ...stages.map((stage) => runtimeDeployment(gatewayId, stage, settings, { replicas: 0 })),
  ]
}

describe('kubernetes manifests against the Kubernetes 1.34 schemas', { skip: directory ? false : contractsSkipMessage }, () => {
  const schemas = directory ? loadContractSchemas(directory) : null

  for (const gatewayId of ['hometax', 'a', 'x'.repeat(40), 'a-b-9']) {
    test(`every object of gateway '${gatewayId}' is valid`, () => {
      for (const manifest of everything(gatewayId)) {
        assert.deepEqual(schemas!.kubernetes(manifest), [], `${manifest.kind} ${manifest.metadata.name}`)
      }
    })
  }

  test('the checker itself catches what the apiserver would refuse', () => {
    const deployment = runtimeDeployment('hometax', 'dev', settings)
    const broken = structuredClone(deployment) as unknown as { spec: { selector: { matchLabels: Record<string, string> }; template: { spec: { containers: Array<Record<string, unknown>> } } } }
    broken.spec.selector.matchLabels['imprun.dev/stage'] = 'prod'
    broken.spec.template.spec.containers[0]!.ports = [{ containerPort: '8080' }]
    const problems = schemas!.kubernetes(broken)
    assert.ok(problems.some((problem) => problem.includes('does not match the template labels')), problems.join('\n'))
    assert.ok(problems.some((problem) => problem.includes('containerPort')), problems.join('\n'))
    assert.ok(schemas!.kubernetes({ apiVersion: 'apps/v1beta1', kind: 'Deployment', metadata: { name: 'x', namespace: 'y' } })[0]!.startsWith('no schema'))
  })
})

describe('kubernetes manifests (shape)', () => {
  test('every object is labelled with its gateway, stage objects with their stage', () => {
    for (const manifest of everything('hometax')) {
      assert.equal(manifest.metadata.labels?.[labels.gateway], 'hometax', `${manifest.kind}`)
      if (['Deployment', 'Service', 'HorizontalPodAutoscaler'].includes(manifest.kind)) assert.ok(manifest.metadata.labels?.[labels.stage])
      if (manifest.kind !== 'Namespace') assert.equal(manifest.metadata.namespace, namespaceName('hometax', settings))
    }
  })

  test('the runtime Deployment runs `imprun runtime` for its gateway and stage, with probes, and leaves replicas to the HPA', () => {
    const deployment = runtimeDeployment('hometax', 'staging', settings) as unknown as { spec: Record<string, unknown> & { template: { spec: { containers: Array<{ args: string[]; readinessProbe: { httpGet: { path: string } }; livenessProbe: { httpGet: { path: string } } }> } } } }
    const container = deployment.spec.template.spec.containers[0]!
    assert.deepEqual(container.args.slice(0, 5), ['runtime', '--gateway', 'hometax', '--env', 'staging'])
    assert.equal(container.readinessProbe.httpGet.path, '/readyz')
    assert.equal(container.livenessProbe.httpGet.path, '/healthz')
    assert.equal('replicas' in deployment.spec, false)
  })

  test('the NetworkPolicy admits only the namespace itself and the APISIX namespace', () => {
    const policy = gatewayManifests('hometax', { ...settings, apisixNamespace: 'ingress-apisix' }, secret).find((manifest) => manifest.kind === 'NetworkPolicy') as unknown as { spec: { ingress: unknown; policyTypes: string[] } }
    assert.deepEqual(policy.spec.policyTypes, ['Ingress'])
    assert.deepEqual(policy.spec.ingress, [
      { from: [{ podSelector: {} }] },
      { from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'ingress-apisix' } } }] },
    ])
  })

  test('the Secret carries the store URL base64-encoded', () => {
    const stored = gatewayManifests('hometax', settings, secret).find((manifest) => manifest.kind === 'Secret') as unknown as { data: Record<string, string> }
    assert.equal(Buffer.from(stored.data.IMPRUN_STORE!, 'base64').toString(), secret.storeUrl)
  })
})
