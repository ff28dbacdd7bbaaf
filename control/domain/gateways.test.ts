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
