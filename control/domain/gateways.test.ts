import assert from 'node:assert/strict'
import { afterEach, beforeEach, test } from 'node:test'
import { isImprunError } from '../errors.ts'
import { createControlFixture, type ControlFixture } from '../testing/control-fixture.ts'

let fixture: ControlFixture
beforeEach(async () => {
  fixture = await createControlFixture()
})
afterEach(() => fixture.close())

test('a new gateway has dev, staging and prod and reaches Started through the reconciler', async () => {
  const { gateways } = fixture.control
  const created = await gateways.create({ id: 'hometax', description: 'tax' })
  assert.equal(created.phase, 'Creating')
  assert.equal(created.state, 'Running')
  assert.deepEqual(created.environments.map((environment) => environment.stage), ['dev', 'staging', 'prod'])
  await fixture.settle('hometax')
  const started = await gateways.get('hometax')
  assert.equal(started.phase, 'Started')
  assert.deepEqual(fixture.provisioner.methodsFor('hometax'), ['create', 'start', 'isReady'])
})

test('stop, start and delete move the phase; a deleted id can be created again', async () => {
  const { gateways, functions } = fixture.control
  await gateways.create({ id: 'g1' })
  await fixture.settle('g1')
  await functions.write('g1', 'f', { files: { 'index.ts': 'export default () => 1' } })
  await gateways.stop('g1')
  await fixture.settle('g1')
  assert.equal((await gateways.get('g1')).phase, 'Stopped')
  await gateways.start('g1')
  await fixture.settle('g1')
  assert.equal((await gateways.get('g1')).phase, 'Started')
  await gateways.delete('g1')
  await assert.rejects(functions.write('g1', 'f', { files: { 'index.ts': 'x' } }), (error) => isImprunError(error, 'invalid_state'))
  await assert.rejects(gateways.start('g1'), (error) => isImprunError(error, 'invalid_state'))
  await fixture.settle('g1')
  await assert.rejects(gateways.get('g1'), (error) => isImprunError(error, 'not_found'))
  assert.deepEqual(await gateways.list(), [])
  assert.ok(fixture.provisioner.methodsFor('g1').includes('destroy'))
  await gateways.create({ id: 'g1' })
  await fixture.settle('g1')
  assert.deepEqual(await functions.list('g1'), [], 'the old gateway database is gone')
})

test('bad input: invalid and reserved ids, duplicates, invalid plugins', async () => {
  const { gateways } = fixture.control
  for (const id of ['', 'UPPER', '-lead', 'trail-', 'has_underscore', 'a'.repeat(41), 'admin', 'mcp', 'v1']) {
    await assert.rejects(gateways.create({ id }), (error) => isImprunError(error, 'invalid_name'), id)
  }
  await gateways.create({ id: 'dup' })
  await assert.rejects(gateways.create({ id: 'dup' }), (error) => isImprunError(error, 'already_exists'))
  await assert.rejects(gateways.create({ id: 'p', plugins: { 'no-such-plugin': {} } }), (error) => isImprunError(error, 'invalid_plugin_config'))
  await assert.rejects(gateways.get('p'), (error) => isImprunError(error, 'not_found'), 'nothing half-written')
  await assert.rejects(gateways.setEnvironmentPlugins('dup', 'prod', { 'limit-count': { count: 0, time_window: 60 } }), (error) =>
    isImprunError(error, 'invalid_plugin_config'),
  )
})

test('plugins at gateway and environment level are validated, normalized and stored', async () => {
  const { gateways } = fixture.control
  await gateways.create({ id: 'g', plugins: { 'ip-restriction': { whitelist: ['127.0.0.1'] } } })
  const environment = await gateways.setEnvironmentPlugins('g', 'prod', { 'limit-count': { count: 2, time_window: 60 } })
  assert.equal(environment.plugins['limit-count']!.policy, 'local')
  const gateway = await gateways.get('g')
  assert.deepEqual(gateway.plugins['ip-restriction']!.whitelist, ['127.0.0.1'])
  assert.deepEqual(gateway.environments.find((entry) => entry.stage === 'prod')!.plugins['limit-count']!.count, 2)
  assert.deepEqual(gateway.environments.find((entry) => entry.stage === 'dev')!.plugins, {})
})

test('patching environment plugins merges: named plugins replaced whole, null removes, others kept', async () => {
  const { gateways } = fixture.control
  await gateways.create({ id: 'g' })
  const prod = await gateways.environment('g', 'prod')
  assert.deepEqual(Object.keys(prod.plugins), ['key-auth'])

  const limited = await gateways.patchEnvironmentPlugins('g', 'prod', { 'limit-count': { count: 5, time_window: 60 } })
  assert.deepEqual(limited.plugins['key-auth'], prod.plugins['key-auth'], 'key-auth untouched')
  assert.equal(limited.plugins['limit-count']!.policy, 'local', 'defaults filled as for set')
  assert.equal(limited.plugins['limit-count']!.count, 5)

  const replaced = await gateways.patchEnvironmentPlugins('g', 'prod', { 'limit-count': { count: 9, time_window: 10 }, 'key-auth': null })
  assert.deepEqual(Object.keys(replaced.plugins), ['limit-count'])
  assert.equal(replaced.plugins['limit-count']!.count, 9)

  const unchanged = await gateways.patchEnvironmentPlugins('g', 'prod', {})
  assert.deepEqual(unchanged, await gateways.environment('g', 'prod'), 'an empty patch is a no-op')
  assert.equal(unchanged.updatedAt, replaced.updatedAt)
  const gateway = await gateways.get('g')
  assert.deepEqual(gateway.environments.find((entry) => entry.stage === 'prod')!.plugins, replaced.plugins)
})

test('a bad environment plugin patch gives invalid_plugin_config and changes nothing', async () => {
  const { gateways } = fixture.control
  await gateways.create({ id: 'g' })
  const before = await gateways.environment('g', 'prod')
  const bad = [
    { 'key-auth': null, 'limit-count': { count: 0, time_window: 60 } },
    { 'no-such-plugin': null },
    { 'no-such-plugin': {} },
    { 'a.b': null },
    { 'key-auth': 'on' },
    ['key-auth'],
  ]
  for (const patch of bad) {
    await assert.rejects(gateways.patchEnvironmentPlugins('g', 'prod', patch), (error) => isImprunError(error, 'invalid_plugin_config'), JSON.stringify(patch))
  }
  assert.deepEqual(await gateways.environment('g', 'prod'), before)
  await assert.rejects(gateways.patchEnvironmentPlugins('nope', 'prod', { cors: {} }), (error) => isImprunError(error, 'not_found'))
  await assert.rejects(gateways.patchEnvironmentPlugins('g', 'qa' as 'prod', { cors: {} }), (error) => isImprunError(error, 'invalid_name'))
})

test('concurrent environment plugin patches of different plugins both survive', async () => {
  const { gateways } = fixture.control
  await gateways.create({ id: 'g' })
  await Promise.all([
    gateways.patchEnvironmentPlugins('g', 'prod', { 'limit-count': { count: 5, time_window: 60 } }),
    gateways.patchEnvironmentPlugins('g', 'prod', { 'ip-restriction': { whitelist: ['10.0.0.0/8'] } }),
  ])
  const prod = await gateways.environment('g', 'prod')
  assert.deepEqual(Object.keys(prod.plugins).sort(), ['ip-restriction', 'key-auth', 'limit-count'])
})

test('patching gateway-level plugins merges the same way', async () => {
  const { gateways } = fixture.control
  await gateways.create({ id: 'g', plugins: { 'ip-restriction': { whitelist: ['127.0.0.1'] } } })
  const patched = await gateways.patchPlugins('g', { cors: { allow_origins: 'https://a.example' } })
  assert.deepEqual(Object.keys(patched.plugins).sort(), ['cors', 'ip-restriction'])
  assert.deepEqual((await gateways.patchPlugins('g', { 'ip-restriction': null })).plugins, { cors: patched.plugins.cors })
  await assert.rejects(gateways.patchPlugins('g', { cors: { max_age: 'long' } }), (error) => isImprunError(error, 'invalid_plugin_config'))
  const updated = await gateways.update('g', { description: 'one write', pluginPatch: { 'limit-count': { count: 5, time_window: 60 } } })
  assert.deepEqual([updated.description, Object.keys(updated.plugins).sort()], ['one write', ['cors', 'limit-count']])
  await assert.rejects(gateways.update('g', { plugins: {}, pluginPatch: {} }), (error) => isImprunError(error, 'bad_request'))
  await gateways.delete('g')
  await assert.rejects(gateways.patchPlugins('g', { cors: {} }), (error) => isImprunError(error, 'invalid_state'))
})

test('a gateway being deleted is presented without reading its (soon dropped) database', async () => {
  const { gateways } = fixture.control
  await gateways.create({ id: 'g' })
  await fixture.settle('g')
  const deleting = await gateways.delete('g')
  assert.equal(deleting.state, 'Deleted')
  assert.deepEqual(deleting.environments, [
    { stage: 'dev', plugins: {} },
    { stage: 'staging', plugins: {} },
    { stage: 'prod', plugins: {} },
  ])
  assert.equal(await gateways.isDeleted('g'), false, 'not gone yet')
  await fixture.settle('g')
  assert.equal(await gateways.isDeleted('g'), true)
  assert.equal(await gateways.isDeleted('never-was'), false)
})
