import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import { isImprunError } from '../../errors.ts'
import { createApisixAdminSync } from './apisix-admin-sync.ts'
import { TestDoubleApisixAdmin } from './testing/test-double-apisix-admin.ts'
import { sampleEdgeState } from './testing/sample-edge-state.ts'

describe('APISIX Admin API sync over HTTP against the Admin API double', () => {
  let admin: TestDoubleApisixAdmin
  before(async () => {
    admin = await new TestDoubleApisixAdmin().start()
  })
  after(() => admin.close())
  const edge = () => createApisixAdminSync({ url: admin.url, adminKey: admin.adminKey })

  test('sync creates 3 upstreams, 3 plugin_configs, 4 routes and a consumer per grant; accepted by the double', async () => {
    await edge().sync(sampleEdgeState('hometax', { consumers: 3 }))
    const mine = (type: 'routes' | 'upstreams' | 'plugin_configs' | 'consumers') => admin.values(type).filter((value) => (value.labels as Record<string, string>).imprun_gateway === 'hometax')
    assert.equal(mine('upstreams').length, 3)
    assert.equal(mine('plugin_configs').length, 3)
    assert.equal(mine('routes').length, 4)
    assert.equal(mine('consumers').length, 3)
  })

  test('a second sync of the same state writes nothing', async () => {
    const before = admin.writes().length
    await edge().sync(sampleEdgeState('hometax', { consumers: 3 }))
    assert.equal(admin.writes().length, before)
  })

  test('changes are written and what is no longer wanted is deleted, other gateways untouched', async () => {
    await edge().sync(sampleEdgeState('other', { consumers: 1 }))
    const state = sampleEdgeState('hometax', { consumers: 1 })
    state.stages[2]!.plugins = { ...state.stages[2]!.plugins, 'limit-count': { count: 5, time_window: 1, policy: 'local' } }
    await edge().sync(state)
    const consumers = admin.values('consumers').filter((value) => (value.labels as Record<string, string>).imprun_gateway === 'hometax')
    assert.equal(consumers.length, 1)
    const prod = admin.store.plugin_configs.get('imp.hometax.prod')!.value as { plugins: Record<string, { count?: number }> }
    assert.equal(prod.plugins['limit-count']!.count, 5)
    assert.equal(admin.values('consumers').filter((value) => (value.labels as Record<string, string>).imprun_gateway === 'other').length, 1)
  })

  test('remove deletes routes before the upstreams they use; listGateways sees what is there', async () => {
    assert.deepEqual((await edge().listGateways()).sort(), ['hometax', 'other'])
    await edge().remove('hometax')
    await edge().remove('hometax')
    assert.equal(admin.values('routes').filter((value) => (value.labels as Record<string, string>).imprun_gateway === 'hometax').length, 0)
    assert.equal(admin.values('upstreams').filter((value) => (value.labels as Record<string, string>).imprun_gateway === 'hometax').length, 0)
    assert.equal(admin.requests.filter((request) => request.status === 400).length, 0, 'APISIX never had to refuse a delete')
    assert.deepEqual(await edge().listGateways(), ['other'])
  })

  test('a wrong admin key is `unauthorized` with APISIX\'s error_msg', async () => {
    const wrong = createApisixAdminSync({ url: admin.url, adminKey: 'nope' })
    await assert.rejects(wrong.sync(sampleEdgeState()), (error) => isImprunError(error, 'unauthorized') && /failed to check token/.test(error.message))
  })

  test('APISIX refusing a conf is surfaced with its error_msg; an outage is retryable', async () => {
    const state = sampleEdgeState('broken')
    state.stages[0]!.plugins = { 'limit-count': { count: 0, time_window: 60, policy: 'local' } }
    if (admin.validatesSchemas) {
      await assert.rejects(edge().sync(state), (error) => isImprunError(error, 'bad_request') && /invalid configuration: plugins.limit-count\/count/.test(error.message))
    }
    admin.unavailable = true
    try {
      await assert.rejects(edge().sync(sampleEdgeState()), (error) => isImprunError(error) && error.retryable && /has no healthy etcd endpoint/.test(error.message))
    } finally {
      admin.unavailable = false
    }
    const unreachable = createApisixAdminSync({ url: 'http://127.0.0.1:1', adminKey: 'x' })
    await assert.rejects(unreachable.sync(sampleEdgeState()), (error) => isImprunError(error, 'internal') && error.retryable)
  })
})

const adminUrl = process.env.APISIX_ADMIN_URL
describe('APISIX Admin API sync against a real APISIX', { skip: adminUrl ? false : 'APISIX_ADMIN_URL is not set' }, () => {
  test('sync, re-sync, remove', async () => {
    const edge = createApisixAdminSync({ url: adminUrl!, adminKey: process.env.APISIX_ADMIN_KEY ?? '' })
    const gatewayId = `t${randomBytes(4).toString('hex')}`
    try {
      await edge.sync(sampleEdgeState(gatewayId, { consumers: 2 }))
      await edge.sync(sampleEdgeState(gatewayId, { consumers: 1 }))
      assert.ok((await edge.listGateways()).includes(gatewayId))
    } finally {
      await edge.remove(gatewayId)
    }
    assert.equal((await edge.listGateways()).includes(gatewayId), false)
  })
})
