import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { parse } from 'yaml'
import { contractsDirectory, contractsSkipMessage, loadContractSchemas } from '../contracts/contract-schemas.ts'
import { apisixAdminObjects, apisixCrdObjects } from './apisix-objects.ts'
import { createApisixStandaloneSync } from './apisix-standalone-sync.ts'
import { sampleEdgeState } from './testing/sample-edge-state.ts'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const directory = contractsDirectory()

describe('APISIX objects against the published schemas', { skip: directory ? false : contractsSkipMessage }, () => {
  const schemas = directory ? loadContractSchemas(directory) : null

  test('Admin API objects (routes, upstreams, plugin_configs, consumers) and their plugin confs are valid', () => {
    for (const state of [sampleEdgeState(), sampleEdgeState('a', { hosts: [] }), sampleEdgeState('x'.repeat(40), { consumers: 5 })]) {
      const objects = apisixAdminObjects(state)
      for (const route of objects.routes) assert.deepEqual(schemas!.apisixAdmin('route', route), [], route.id)
      for (const upstream of objects.upstreams) assert.deepEqual(schemas!.apisixAdmin('upstream', upstream), [], upstream.id)
      for (const config of objects.plugin_configs) assert.deepEqual(schemas!.apisixAdmin('plugin_config', config), [], config.id)
      for (const consumer of objects.consumers) assert.deepEqual(schemas!.apisixAdmin('consumer', consumer), [], consumer.username)
    }
  })

  test('Ingress Controller custom resources are valid against their CRDs (defaults applied), Secrets against Kubernetes', () => {
    for (const state of [sampleEdgeState(), sampleEdgeState('a', { hosts: [], consumers: 0 })]) {
      const { resources, secrets } = apisixCrdObjects(state, { ingressClassName: 'apisix' })
      for (const resource of resources) assert.deepEqual(schemas!.apisixCrd(resource), [], `${resource.kind} ${resource.metadata.name}`)
      for (const secret of secrets) assert.deepEqual(schemas!.kubernetes(secret), [], secret.metadata.name)
    }
  })

  test('the standalone apisix.yaml is valid and ends with #END', async () => {
    const folder = mkdtempSync(join(tmpdir(), 'imprun-standalone-'))
    try {
      const file = join(folder, 'apisix.yaml')
      const edge = createApisixStandaloneSync({ file })
      await edge.sync(sampleEdgeState())
      await edge.sync(sampleEdgeState('other', { consumers: 1 }))
      const text = readFileSync(file, 'utf8')
      assert.match(text, /\n#END\n$/)
      assert.deepEqual(schemas!.apisixStandalone(parse(text) as object), [])
    } finally {
      rmSync(folder, { recursive: true, force: true })
    }
  })

  test('the checker refuses a bad plugin conf and a route without uri', () => {
    const route = { ...apisixAdminObjects(sampleEdgeState()).routes[0]!, plugins: { 'limit-count': { count: -1, time_window: 60 } } }
    assert.ok(schemas!.apisixAdmin('route', route).some((problem) => problem.startsWith('plugins.limit-count/count')))
    const { uri: _uri, ...withoutUri } = apisixAdminObjects(sampleEdgeState()).routes[1]!
    assert.notDeepEqual(schemas!.apisixAdmin('route', withoutUri), [])
  })
})

describe('APISIX objects (shape)', () => {
  test('four routes per gateway however many consumers; base /* priority 1, stages priority 10', () => {
    const objects = apisixAdminObjects(sampleEdgeState('hometax', { consumers: 7 }))
    assert.deepEqual(
      objects.routes.map((route) => [route.uri, route.priority]),
      [['/*', 1], ['/dev/*', 10], ['/staging/*', 10], ['/prod/*', 10]],
    )
    assert.equal(objects.upstreams.length, 3)
    assert.equal(objects.plugin_configs.length, 3)
    assert.equal(objects.consumers.length, 7)
    const prod = objects.plugin_configs.find((config) => config.id === 'imp.hometax.prod')!
    assert.deepEqual(Object.keys(prod.plugins).sort(), ['cors', 'ip-restriction', 'key-auth', 'limit-count', 'proxy-rewrite'])
    assert.equal((prod.plugins['key-auth'] as { hide_credentials: boolean }).hide_credentials, false)
    assert.deepEqual(objects.upstreams[0]!.nodes, [{ host: 'runtime-dev.imprun-gw-hometax.svc.cluster.local', port: 8080, weight: 1 }])
  })

  test('the CRD form has one ApisixRoute with four http entries and keeps consumer keys in Secrets', () => {
    const { resources, secrets } = apisixCrdObjects(sampleEdgeState('hometax', { consumers: 3 }))
    const route = resources.find((resource) => resource.kind === 'ApisixRoute') as unknown as { spec: { http: Array<{ name: string; priority: number; match: { paths: string[] } }> } }
    assert.deepEqual(route.spec.http.map((entry) => [entry.name, entry.match.paths[0], entry.priority]), [
      ['base', '/*', 1], ['dev', '/dev/*', 10], ['staging', '/staging/*', 10], ['prod', '/prod/*', 10],
    ])
    assert.equal(resources.filter((resource) => resource.kind === 'ApisixConsumer').length, 3)
    assert.equal(secrets.length, 3)
    assert.equal(JSON.stringify(resources).includes('imp_hometax'), false, 'no key inside a custom resource')
  })
})
