import assert from 'node:assert/strict'
import { afterEach, beforeEach, test } from 'node:test'
import { isImprunError } from '../errors.ts'
import { createControlFixture, type ControlFixture } from '../testing/control-fixture.ts'

let fixture: ControlFixture
beforeEach(async () => {
  fixture = await createControlFixture()
  await fixture.control.gateways.create({ id: 'hometax' })
  await fixture.settle('hometax')
})
afterEach(() => fixture.close())

const source = (n: number) => `// description: version ${n}\nexport default () => ${n}`

test('publish creates immutable versions and deploys to dev; identical source reuses the version', async () => {
  const { functions } = fixture.control
  await functions.write('hometax', 'calculateTax', { files: { 'index.ts': source(1) } })
  const first = await functions.publish('hometax', 'calculateTax', { message: 'first' })
  assert.equal(first.version.number, 1)
  assert.equal(first.created, true)
  assert.equal(first.stage, 'dev')
  assert.equal(first.changed, true)
  const again = await functions.publish('hometax', 'calculateTax')
  assert.equal(again.version.number, 1)
  assert.equal(again.created, false)
  assert.equal(again.changed, false)
  await functions.write('hometax', 'calculateTax', { files: { 'index.ts': source(2) } })
  const second = await functions.publish('hometax', 'calculateTax')
  assert.equal(second.version.number, 2)
  const v1 = await functions.version('hometax', 'calculateTax', 1)
  assert.equal(v1.files['index.ts'], source(1))
  assert.equal(v1.metadata.description, 'version 1')
  assert.deepEqual((await functions.get('hometax', 'calculateTax')).deployed, { dev: 2 })
  assert.deepEqual(
    (await functions.versions('hometax', 'calculateTax')).map((version) => version.number),
    [2, 1],
  )
})

test('a failed compile writes nothing: the previous version keeps serving', async () => {
  const { functions } = fixture.control
  await functions.write('hometax', 'f', { files: { 'index.ts': source(1) } })
  await functions.publish('hometax', 'f')
  await functions.write('hometax', 'f', { files: { 'index.ts': 'export default (\nSYNTAX ERROR' } })
  await assert.rejects(functions.publish('hometax', 'f'), (error) => {
    assert.ok(isImprunError(error, 'compile_failed'))
    assert.match(error.message, /index\.ts:2:1/)
    return true
  })
  assert.deepEqual((await functions.get('hometax', 'f')).deployed, { dev: 1 })
  assert.equal((await functions.versions('hometax', 'f')).length, 1)
  assert.equal((await functions.history('hometax', { function: 'f' })).length, 1)
  assert.equal((await functions.get('hometax', 'f')).draftChanged, true)
})

test('promotion copies the exact version and follows dev → staging → prod with the pipeline on', async () => {
  const { functions } = fixture.control
  await functions.write('hometax', 'f', { files: { 'index.ts': source(1) } })
  await functions.publish('hometax', 'f')
  await assert.rejects(functions.publish('hometax', 'f', { stage: 'prod' }), (error) => isImprunError(error, 'promotion_order'))
  await assert.rejects(functions.promote('hometax', 'f', { from: 'dev', to: 'prod' }), (error) => isImprunError(error, 'promotion_order'))
  await assert.rejects(functions.promote('hometax', 'f', { from: 'staging' }), (error) => isImprunError(error, 'invalid_state'))
  await assert.rejects(functions.promote('hometax', 'f', { from: 'prod' }), (error) => isImprunError(error, 'promotion_order'))
  // A newer draft published to dev must not leak into staging: promotion takes what dev runs.
  await functions.write('hometax', 'f', { files: { 'index.ts': source(2) } })
  const staged = await functions.promote('hometax', 'f', { from: 'dev' })
  assert.deepEqual([staged.stage, staged.action, staged.toVersion], ['staging', 'promote', 1])
  await functions.publish('hometax', 'f')
  await functions.promote('hometax', 'f', { from: 'staging' })
  assert.deepEqual((await functions.get('hometax', 'f')).deployed, { dev: 2, staging: 1, prod: 1 })
  const live = await functions.live('hometax', 'prod')
  assert.deepEqual(live.map((entry) => [entry.name, entry.version, entry.metadata.description]), [['f', 1, 'version 1']])
})

test('without the pipeline any stage can be published and promoted to directly', async () => {
  const { functions, gateways } = fixture.control
  await gateways.update('hometax', { pipeline: false })
  await functions.write('hometax', 'f', { files: { 'index.ts': source(1) } })
  await functions.publish('hometax', 'f', { stage: 'prod' })
  await functions.write('hometax', 'f', { files: { 'index.ts': source(2) } })
  await functions.publish('hometax', 'f')
  await functions.promote('hometax', 'f', { from: 'dev', to: 'prod' })
  assert.deepEqual((await functions.get('hometax', 'f')).deployed, { dev: 2, prod: 2 })
})

test('rollback goes to the previous live version by default or any version, and forward again', async () => {
  const { functions } = fixture.control
  for (const n of [1, 2, 3]) {
    await functions.write('hometax', 'f', { files: { 'index.ts': source(n) } })
    await functions.publish('hometax', 'f')
  }
  const back = await functions.rollback('hometax', 'f', { stage: 'dev' })
  assert.deepEqual([back.fromVersion, back.toVersion], [3, 2])
  const further = await functions.rollback('hometax', 'f', { stage: 'dev', version: 1 })
  assert.deepEqual([further.fromVersion, further.toVersion], [2, 1])
  const forward = await functions.rollback('hometax', 'f', { stage: 'dev', version: 3 })
  assert.deepEqual([forward.fromVersion, forward.toVersion], [1, 3])
  await assert.rejects(functions.rollback('hometax', 'f', { stage: 'dev', version: 9 }), (error) => isImprunError(error, 'not_found'))
  await assert.rejects(functions.rollback('hometax', 'f', { stage: 'prod' }), (error) => isImprunError(error, 'invalid_state'))
})

test('history is a total order of every deployment change', async () => {
  const { functions } = fixture.control
  await functions.write('hometax', 'a', { files: { 'index.ts': source(1) } })
  await functions.write('hometax', 'b', { files: { 'index.ts': source(1) } })
  await Promise.all([functions.publish('hometax', 'a'), functions.publish('hometax', 'b')])
  await functions.promote('hometax', 'a', { from: 'dev' })
  await functions.undeploy('hometax', 'b', 'dev')
  await functions.delete('hometax', 'a')
  const history = await functions.history('hometax')
  const seqs = history.map((entry) => entry.seq)
  assert.deepEqual(seqs, [...seqs].sort((x, y) => y - x))
  assert.deepEqual(new Set(seqs).size, seqs.length)
  assert.deepEqual(seqs.at(-1), 1)
  const actions = history.map((entry) => `${entry.action}:${entry.function}:${entry.stage}`)
  assert.deepEqual(new Set(actions.slice(0, 2)), new Set(['undeploy:a:staging', 'undeploy:a:dev']))
  assert.deepEqual(actions.slice(2, 4), ['undeploy:b:dev', 'promote:a:staging'])
  assert.deepEqual(new Set(actions.slice(4)), new Set(['publish:a:dev', 'publish:b:dev']))
  assert.equal(history.filter((entry) => entry.action === 'undeploy' && entry.function === 'a').length, 2)
  await assert.rejects(functions.get('hometax', 'a'), (error) => isImprunError(error, 'not_found'))
  assert.deepEqual(await functions.live('hometax', 'dev'), [])
})

test('parallel publishes of the same function produce distinct, consecutive versions', async () => {
  const { functions } = fixture.control
  await functions.write('hometax', 'f', { files: { 'index.ts': source(0) } })
  const results = []
  for (let n = 1; n <= 5; n++) {
    await functions.write('hometax', 'f', { files: { 'index.ts': source(n) } })
    results.push(functions.publish('hometax', 'f'))
  }
  const published = await Promise.all(results)
  const numbers = published.map((result) => result.version.number).sort()
  assert.equal(new Set(numbers).size, numbers.length)
  const versions = await functions.versions('hometax', 'f')
  assert.deepEqual(
    versions.map((version) => version.number),
    versions.map((_, index) => versions.length - index),
  )
})

test('bad input: names, files, unknown gateway and function', async () => {
  const { functions } = fixture.control
  for (const name of ['', '1abc', 'a//b', '../x', 'a b', 'x'.repeat(65), 'a/b/c/d/e']) {
    await assert.rejects(functions.write('hometax', name, { files: { 'index.ts': source(1) } }), (error) => isImprunError(error, 'invalid_name'), name)
  }
  await assert.rejects(functions.write('hometax', 'f', { files: {} }), (error) => isImprunError(error, 'bad_request'))
  await assert.rejects(functions.write('hometax', 'f', { files: { 'main.ts': 'x' } }), (error) => isImprunError(error, 'bad_request'))
  await assert.rejects(
    functions.write('hometax', 'f', { files: { 'index.ts': 'x', '../escape.ts': 'y' } }),
    (error) => isImprunError(error, 'bad_request'),
  )
  await assert.rejects(
    functions.write('hometax', 'f', { files: { 'index.ts': 'x'.repeat(1024 * 1024 + 1) } }),
    (error) => isImprunError(error, 'body_too_large'),
  )
  await assert.rejects(functions.write('nope', 'f', { files: { 'index.ts': 'x' } }), (error) => isImprunError(error, 'not_found'))
  await assert.rejects(functions.publish('hometax', 'missing'), (error) => isImprunError(error, 'not_found'))
  await assert.rejects(
    functions.write('hometax', 'f', { files: { 'index.ts': 'x' }, plugins: { 'limit-count': { count: -1 } } }),
    (error) => isImprunError(error, 'invalid_plugin_config'),
  )
  assert.deepEqual(await functions.list('hometax'), [])
})

test('user/me style names work end to end', async () => {
  const { functions } = fixture.control
  await functions.write('hometax', 'user/me', { files: { 'index.ts': source(1) } })
  await functions.publish('hometax', 'user/me')
  assert.deepEqual((await functions.list('hometax')).map((entry) => [entry.name, entry.deployed]), [['user/me', { dev: 1 }]])
})

test('patching function plugins merges: named plugins replaced whole, null removes, others kept', async () => {
  const { functions } = fixture.control
  await functions.write('hometax', 'user/me', {
    files: { 'index.ts': source(1) },
    plugins: { 'key-auth': { header: 'x-key' }, cors: { allow_origins: 'https://a.example' } },
  })
  const patched = await functions.patchPlugins('hometax', 'user/me', { 'limit-count': { count: 3, time_window: 60 }, cors: null })
  assert.deepEqual(Object.keys(patched.plugins).sort(), ['key-auth', 'limit-count'])
  assert.equal(patched.plugins['key-auth']!.header, 'x-key')
  assert.equal(patched.plugins['limit-count']!.policy, 'local', 'defaults filled as for set')

  const unchanged = await functions.patchPlugins('hometax', 'user/me', {})
  assert.deepEqual(unchanged, patched, 'an empty patch is a no-op')

  await assert.rejects(
    functions.patchPlugins('hometax', 'user/me', { 'key-auth': null, 'limit-count': { count: -1, time_window: 60 } }),
    (error) => isImprunError(error, 'invalid_plugin_config'),
  )
  await assert.rejects(functions.patchPlugins('hometax', 'user/me', { 'jwt-auth': null }), (error) => isImprunError(error, 'invalid_plugin_config'))
  assert.deepEqual((await functions.get('hometax', 'user/me')).plugins, patched.plugins, 'a rejected patch changes nothing')
  await assert.rejects(functions.patchPlugins('hometax', 'missing', { cors: {} }), (error) => isImprunError(error, 'not_found'))
})

test('concurrent function plugin patches of different plugins both survive', async () => {
  const { functions } = fixture.control
  await functions.write('hometax', 'f', { files: { 'index.ts': source(1) }, plugins: { 'key-auth': {} } })
  await Promise.all([
    functions.patchPlugins('hometax', 'f', { 'limit-count': { count: 3, time_window: 60 } }),
    functions.patchPlugins('hometax', 'f', { 'limit-req': { rate: 1, burst: 1, key: 'remote_addr' } }),
  ])
  assert.deepEqual(Object.keys((await functions.get('hometax', 'f')).plugins).sort(), ['key-auth', 'limit-count', 'limit-req'])
})
