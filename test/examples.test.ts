/**
 * The examples under examples/ published to a real embedded platform and called over loopback:
 * the CRUD function over imp.db(), and the fetch-based one reading its upstream's address from
 * an environment variable and its API key from a secret.
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { jsonRequest, until } from './support/platform-client.ts'
import { useTestPlatform } from './support/test-platform.ts'

const token = 'examples-token'
const example = (path: string) => readFileSync(join(import.meta.dirname, '..', 'examples', path), 'utf8')
let rates: Server
let ratesUrl: string
const seenAuthorization: string[] = []
const { admin, call, platform } = useTestPlatform({
  token,
  gateways: [{ id: 'todo' }, { id: 'exchange' }],
  // The operator lets functions reach the loopback rates service; nothing else private.
  platform: { egress: { allowHosts: ['127.0.0.1'] } },
})

before(async () => {
  rates = createServer((request, response) => {
    seenAuthorization.push(request.headers.authorization ?? '')
    const url = new URL(request.url ?? '/', 'http://rates')
    const base = url.searchParams.get('base')
    if (request.headers.authorization !== 'Bearer rates-secret-123') return void response.writeHead(401).end()
    if (base !== 'KRW') return void response.writeHead(404).end()
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ base, date: '2026-11-20', rates: { USD: 0.00072, JPY: 0.11 } }))
  })
  await new Promise<void>((resolve) => rates.listen(0, '127.0.0.1', resolve))
  const address = rates.address()
  ratesUrl = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`
})

after(async () => {
  await new Promise((resolve) => rates.close(resolve))
})

test('todos: create, list, filter, update, delete over imp.db()', async () => {
  assert.equal((await admin('PUT', '/admin/gateways/todo/functions/todos', { source: example('todos/todos.ts') })).status, 200)
  const published = await admin('POST', '/admin/gateways/todo/functions/todos/publish', {})
  assert.equal(published.status, 200, JSON.stringify(published.body))

  const created = []
  for (const title of ['buy rice', 'file taxes', 'call mom']) {
    const response = await call('/todo/dev/todos', jsonRequest('POST', { title }))
    assert.equal(response.status, 201, JSON.stringify(response.body))
    assert.equal(response.body.title, title)
    assert.equal(response.body.done, false)
    created.push(response.body._id as string)
  }
  const listed = await call('/todo/dev/todos?limit=2')
  assert.equal(listed.status, 200)
  assert.equal(listed.body.total, 3)
  assert.equal(listed.body.items.length, 2)

  const patched = await call('/todo/dev/todos', jsonRequest('PATCH', { id: created[1], done: true }))
  assert.equal(patched.status, 200)
  assert.equal(patched.body.done, true)
  const done = await call('/todo/dev/todos?done=true')
  assert.deepEqual(done.body.items.map((item: { title: string }) => item.title), ['file taxes'])
  const one = await call(`/todo/dev/todos?id=${created[0]}`)
  assert.equal(one.body.title, 'buy rice')

  const deleted = await call(`/todo/dev/todos?id=${created[2]}`, { method: 'DELETE' })
  assert.deepEqual([deleted.status, deleted.body], [200, { deleted: created[2] }])
  const again = await call(`/todo/dev/todos?id=${created[2]}`, { method: 'DELETE' })
  assert.deepEqual([again.status, again.body.error.message], [404, `no to-do '${created[2]}'`])
  const missingTitle = await call('/todo/dev/todos', jsonRequest('POST', {}))
  assert.equal(missingTitle.status, 400)
  const badLimit = await call('/todo/dev/todos?limit=5000')
  assert.equal(badLimit.status, 400)
  assert.equal(badLimit.body.error.code, 'invalid_input')

  // The data lives in the gateway's own database and nowhere else.
  const stored = await platform().store.gateway('todo').collection('data.todos').countDocuments({})
  assert.equal(stored, 2)
  assert.equal(await platform().store.gateway('exchange').collection('data.todos').countDocuments({}), 0)
})

test('exchange: fetch with RATES_URL from a variable and the key from a secret', async () => {
  assert.equal((await admin('PUT', '/admin/gateways/exchange/functions/convert', { source: example('exchange/convert.ts') })).status, 200)

  // Before the variables exist the draft fails clearly; test-run shows it without publishing.
  const unset = await admin('POST', '/admin/gateways/exchange/functions/convert/test', { input: { amount: 1000, from: 'KRW', to: 'USD' } })
  assert.equal(unset.status, 200)
  assert.equal(unset.body.outcome.ok, false)
  assert.match(unset.body.outcome.message, /RATES_URL is not set/)

  assert.equal((await admin('PUT', '/admin/gateways/exchange/environments/dev/variables/RATES_URL', { value: ratesUrl })).status, 200)
  const secret = await admin('PUT', '/admin/gateways/exchange/environments/dev/variables/RATES_API_KEY', { value: 'rates-secret-123', secret: true })
  assert.equal(secret.status, 200)
  assert.equal(secret.body.value, undefined, 'a secret is not echoed back')
  const listed = await admin('GET', '/admin/gateways/exchange/environments/dev/variables')
  assert.deepEqual(
    listed.body.variables.map((variable: { name: string; secret: boolean; value?: string }) => [variable.name, variable.secret, variable.value]),
    [['RATES_API_KEY', true, undefined], ['RATES_URL', false, ratesUrl]],
  )
  assert.ok(!JSON.stringify(listed.body).includes('rates-secret-123'))

  const tested = await admin('POST', '/admin/gateways/exchange/functions/convert/test', { input: { amount: 1000, from: 'KRW', to: 'USD' } })
  assert.equal(tested.body.outcome.ok, true, JSON.stringify(tested.body))
  assert.equal(tested.body.outcome.value.converted, 0.72)
  assert.equal((await admin('GET', '/admin/gateways/exchange/functions')).body.functions[0].latestVersion, 0, 'a test run publishes nothing')

  await admin('POST', '/admin/gateways/exchange/functions/convert/publish', {})
  const converted = await call('/exchange/dev/convert?amount=50000&from=KRW&to=JPY')
  assert.equal(converted.status, 200, JSON.stringify(converted.body))
  assert.deepEqual(converted.body, { amount: 50000, from: 'KRW', to: 'JPY', rate: 0.11, converted: 5500, asOf: '2026-11-20' })
  assert.equal(seenAuthorization.at(-1), 'Bearer rates-secret-123')
  const unknown = await call('/exchange/dev/convert?amount=1&from=EUR&to=USD')
  assert.deepEqual([unknown.status, unknown.body.error.message], [400, 'unknown currency EUR'])

  // A changed variable reaches the running function without a publish; the secret is never
  // in the invocation logs.
  await admin('PUT', '/admin/gateways/exchange/environments/dev/variables/RATES_URL', { value: 'http://127.0.0.1:9/' })
  const moved = await until(() => call('/exchange/dev/convert?amount=1&from=KRW&to=USD'), (response) => response.status !== 200, 'the new RATES_URL in use')
  assert.deepEqual([moved.status, moved.body.error.code], [403, 'egress_denied'], 'port 9 is one of the ports fetch never reaches')
  const logs = await admin('GET', '/admin/gateways/exchange/logs')
  assert.ok(logs.body.logs.length >= 3)
  assert.ok(!JSON.stringify(logs.body).includes('rates-secret-123'))

  // Other environments do not see dev's variables.
  await admin('POST', '/admin/gateways/exchange/functions/convert/promote', { from: 'dev' })
  const staging = await until(() => call('/exchange/staging/convert?amount=1&from=KRW&to=USD'), (response) => response.status !== 404, 'staging deployment')
  assert.equal(staging.status, 500)
  assert.match(staging.body.error.message, /RATES_URL is not set/)

  const badName = await admin('PUT', '/admin/gateways/exchange/environments/dev/variables/1BAD', { value: 'x' })
  assert.deepEqual([badName.status, badName.body.error.code], [400, 'invalid_name'])
})
