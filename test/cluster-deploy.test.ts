/**
 * The platform's own Kubernetes manifests (deploy/kubernetes) against the Kubernetes 1.34
 * schemas, and the ClusterRole against what the provisioner and the CRD edge actually do.
 */
import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { parseAllDocuments } from 'yaml'
import { contractsDirectory, contractsSkipMessage, loadContractSchemas } from '../control/adapters/contracts/contract-schemas.ts'

const folder = join(import.meta.dirname, '..', 'deploy', 'kubernetes')
const manifests = readdirSync(folder)
  .filter((file) => file.endsWith('.yaml') && file !== 'kustomization.yaml')
  .flatMap((file) => parseAllDocuments(readFileSync(join(folder, file), 'utf8')).map((document) => ({ file, manifest: document.toJS() as { kind: string; metadata: { name: string }; rules?: Array<{ apiGroups: string[]; resources: string[]; verbs: string[] }> } })))
const directory = contractsDirectory()

describe('deploy/kubernetes', () => {
  test('every manifest is valid against the Kubernetes schemas', { skip: directory ? false : contractsSkipMessage }, () => {
    const schemas = loadContractSchemas(directory!)
    assert.ok(manifests.length >= 7)
    for (const { file, manifest } of manifests) assert.deepEqual(schemas.kubernetes(manifest), [], `${file}: ${manifest.kind} ${manifest.metadata.name}`)
  })

  test('the kustomization lists every file', () => {
    const kustomization = readFileSync(join(folder, 'kustomization.yaml'), 'utf8')
    for (const file of new Set(manifests.map((entry) => entry.file))) assert.ok(kustomization.includes(`- ${file}`), file)
  })

  test('the ClusterRole grants exactly the verbs the control plane uses', () => {
    const role = manifests.find((entry) => entry.manifest.kind === 'ClusterRole')!.manifest
    const granted = new Map<string, Set<string>>()
    for (const rule of role.rules!) for (const group of rule.apiGroups) for (const resource of rule.resources) granted.set(`${group}/${resource}`, new Set(rule.verbs))
    const needed: Record<string, string[]> = {
      '/namespaces': ['get', 'create', 'patch', 'delete'],
      '/serviceaccounts': ['get', 'create', 'patch'],
      '/resourcequotas': ['get', 'create', 'patch'],
      '/limitranges': ['get', 'create', 'patch'],
      '/services': ['get', 'create', 'patch'],
      '/secrets': ['get', 'list', 'create', 'patch', 'delete'],
      'apps/deployments': ['get', 'create', 'patch'],
      'autoscaling/horizontalpodautoscalers': ['get', 'create', 'patch', 'delete'],
      'networking.k8s.io/networkpolicies': ['get', 'create', 'patch'],
      'apisix.apache.org/apisixroutes': ['get', 'list', 'create', 'patch', 'delete'],
      'apisix.apache.org/apisixpluginconfigs': ['get', 'list', 'create', 'patch', 'delete'],
      'apisix.apache.org/apisixupstreams': ['get', 'list', 'create', 'patch', 'delete'],
      'apisix.apache.org/apisixconsumers': ['get', 'list', 'create', 'patch', 'delete'],
    }
    assert.deepEqual([...granted.keys()].sort(), Object.keys(needed).sort())
    for (const [resource, verbs] of Object.entries(needed)) assert.deepEqual([...granted.get(resource)!].sort(), [...verbs].sort(), resource)
  })
})
