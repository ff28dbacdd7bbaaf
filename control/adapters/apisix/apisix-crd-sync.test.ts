import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { isImprunError } from '../../errors.ts'
import { createKubernetesClient, kubeConfigForServer } from '../kubernetes/kubernetes-client.ts'
import { TestDoubleKubeApi } from '../kubernetes/testing/test-double-kube-api.ts'
import { createApisixCrdSync } from './apisix-crd-sync.ts'
import { sampleEdgeState } from './testing/sample-edge-state.ts'

const namespaceOf = (gatewayId: string) => `imprun-gw-${gatewayId}`

describe('APISIX CRD sync over HTTP against the Kubernetes API double', () => {
  let api: TestDoubleKubeApi
  before(async () => {
    api = await new TestDoubleKubeApi().start()
    for (const gatewayId of ['hometax', 'other']) {
      api.objects.set(`Namespace||${namespaceOf(gatewayId)}`, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespaceOf(gatewayId), resourceVersion: '1' } })
    }
  })
  after(() => api.close())
  const edge = () => createApisixCrdSync({ kubernetes: { client: createKubernetesClient({ kubeConfig: kubeConfigForServer(api.url) }) }, namespaceOf, ingressClassName: 'apisix' })

  test('sync applies route, plugin configs, upstreams, consumers and key Secrets; again writes nothing', async () => {
    await edge().sync(sampleEdgeState('hometax', { consumers: 2 }))
    const namespace = namespaceOf('hometax')
    assert.equal(api.list('ApisixRoute', namespace).length, 1)
    assert.equal(api.list('ApisixPluginConfig', namespace).length, 3)
    assert.equal(api.list('ApisixUpstream', namespace).length, 3)
    assert.equal(api.list('ApisixConsumer', namespace).length, 2)
    assert.equal(api.list('Secret', namespace).length, 2)
    const writes = api.writes().length
    await edge().sync(sampleEdgeState('hometax', { consumers: 2 }))
    assert.equal(api.writes().length, writes)
  })

  test('a revoked grant loses its consumer and Secret; other gateways are untouched', async () => {
    await edge().sync(sampleEdgeState('other', { consumers: 1 }))
    await edge().sync(sampleEdgeState('hometax', { consumers: 1 }))
    assert.equal(api.list('ApisixConsumer', namespaceOf('hometax')).length, 1)
    assert.equal(api.list('Secret', namespaceOf('hometax')).length, 1)
    assert.equal(api.list('ApisixConsumer', namespaceOf('other')).length, 1)
    assert.deepEqual((await edge().listGateways()).sort(), ['hometax', 'other'])
  })

  test('remove deletes every resource of the gateway and is idempotent', async () => {
    await edge().remove('hometax')
    await edge().remove('hometax')
    for (const kind of ['ApisixRoute', 'ApisixPluginConfig', 'ApisixUpstream', 'ApisixConsumer', 'Secret']) assert.equal(api.list(kind, namespaceOf('hometax')).length, 0, kind)
    await edge().remove('never-synced')
  })

  test('a cluster without the APISIX CRDs is `not_found` naming the group (404 on the group)', async () => {
    const bare = await new TestDoubleKubeApi({ apisixCrds: false }).start()
    bare.objects.set(`Namespace||${namespaceOf('hometax')}`, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespaceOf('hometax'), resourceVersion: '1' } })
    try {
      const sync = createApisixCrdSync({ kubernetes: { client: createKubernetesClient({ kubeConfig: kubeConfigForServer(bare.url) }) }, namespaceOf })
      await assert.rejects(sync.sync(sampleEdgeState()), (error) => {
        assert.ok(isImprunError(error, 'not_found'))
        assert.match(error.message, /does not serve ApisixRoute in apisix\.apache\.org\/v2: the apiserver answered 404 page not found/)
        return true
      })
    } finally {
      await bare.close()
    }
  })

  test('no permission on the CRDs is `forbidden` with the apiserver message', async () => {
    api.forbid({ resource: 'apisixroutes', verb: 'create' })
    try {
      await assert.rejects(edge().sync(sampleEdgeState('hometax')), (error) => isImprunError(error, 'forbidden') && /cannot create resource "apisixroutes" in API group "apisix.apache.org"/.test(error.message))
    } finally {
      api.allow()
    }
  })
})
