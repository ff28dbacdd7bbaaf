import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, test } from 'node:test'
import { startEmbeddedPlatform, type EmbeddedPlatform } from '../platform.ts'
import { TestDoubleCompiler } from '../testing/test-doubles.ts'

let platform: EmbeddedPlatform
let directory: string
const token = 'test-admin-token'
const auth = { authorization: `Bearer ${token}` }

beforeEach(async () => {
  directory = await mkdtemp(join(tmpdir(), 'imprun-admin-'))
  platform = await startEmbeddedPlatform({
    dataDirectory: directory,
    port: 0,
    adminToken: token,
    compiler: new TestDoubleCompiler(),
    reconciler: { idlePollMs: 20 },
  })
})
afterEach(async () => {
  await platform.close()
  await rm(directory, { recursive: true, force: true })
})

async function call(method: string, url: string, body?: unknown, headers: Record<string, string> = auth) {
  const response = await platform.app.inject({ method: method as 'GET', url, payload: body as object, headers })
  return { status: response.statusCode, body: response.body ? JSON.parse(response.body) : null }
}

async function waitForPhase(id: string, phase: string) {
  for (let i = 0; i < 300; i++) {
    const { body } = await call('GET', `/admin/gateways/${id}`)
    if (body.phase === phase) return body
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  throw new Error(`gateway ${id} never reached ${phase}`)
}

test('the hometax journey through the admin API', async () => {
  const created = await call('POST', '/admin/gateways', { id: 'hometax' })
  assert.equal(created.status, 201)
  // The background reconciler may already have moved it on.
  assert.ok(['Creating', 'Created', 'Starting', 'Started'].includes(created.body.phase), created.body.phase)
  await waitForPhase('hometax', 'Started')
  const written = await call('PUT', '/admin/gateways/hometax/functions/calculateTax', { source: '// description: tax\nexport default () => 1' })
  assert.equal(written.status, 200)
  const published = await call('POST', '/admin/gateways/hometax/functions/calculateTax/publish', {})
  assert.equal(published.status, 200)
  assert.equal(published.body.version.number, 1)
  assert.equal((await call('POST', '/admin/gateways/hometax/functions/calculateTax/promote', { from: 'dev' })).status, 200)
  assert.equal((await call('POST', '/admin/gateways/hometax/functions/calculateTax/promote', { from: 'staging' })).status, 200)
  const limited = await call('PUT', '/admin/gateways/hometax/environments/prod/plugins', { plugins: { 'limit-count': { count: 2, time_window: 60 } } })
  assert.equal(limited.status, 200)
  assert.equal(limited.body.plugins['limit-count'].policy, 'local')
  const live = await call('GET', '/admin/gateways/hometax/environments/prod/functions')
  assert.deepEqual(live.body.functions.map((entry: { name: string; version: number }) => [entry.name, entry.version]), [['calculateTax', 1]])
  const history = await call('GET', '/admin/gateways/hometax/history?limit=10')
  assert.deepEqual(history.body.history.map((entry: { action: string }) => entry.action), ['promote', 'promote', 'publish'])
  const application = await call('POST', '/admin/applications', { name: 'mobile' })
  assert.equal(application.status, 201)
  const grant = await call('POST', '/admin/grants', { application: 'mobile', gateway: 'hometax', stage: 'prod' })
  assert.equal(grant.status, 201)
  assert.match(grant.body.apiKey, /^imp_/)
  const listed = await call('GET', '/admin/grants?application=mobile')
  assert.equal(listed.body.grants[0].apiKey, undefined)
  const rotated = await call('POST', `/admin/grants/${grant.body.id}/rotate`, { graceSeconds: 10 })
  assert.notEqual(rotated.body.apiKey, grant.body.apiKey)
  const version = await call('GET', '/admin/gateways/hometax/functions/calculateTax/versions/1')
  assert.equal(version.body.files['index.ts'].includes('description: tax'), true)
  assert.equal(version.body.code, undefined)
  const deleted = await call('DELETE', '/admin/gateways/hometax')
  assert.equal(deleted.status, 202)
  assert.equal(deleted.body.state, 'Deleted')
})

test('function names with / travel URL-encoded', async () => {
  await call('POST', '/admin/gateways', { id: 'g' })
  const written = await call('PUT', '/admin/gateways/g/functions/user%2Fme', { source: 'export default () => 1' })
  assert.equal(written.status, 200)
  assert.equal(written.body.name, 'user/me')
  assert.equal((await call('GET', '/admin/gateways/g/functions/user%2Fme')).body.name, 'user/me')
})

test('errors: 401 without or with a wrong token, consistent bodies and status codes', async () => {
  for (const headers of [{}, { authorization: 'Bearer wrong' }, { authorization: token }] as Array<Record<string, string>>) {
    const response = await call('GET', '/admin/gateways', undefined, headers)
    assert.equal(response.status, 401)
    assert.equal(response.body.error.code, 'unauthorized')
  }
  const cases: Array<[string, string, unknown, number, string]> = [
    ['GET', '/admin/gateways/nope', undefined, 404, 'not_found'],
    ['POST', '/admin/gateways', { id: 'Bad_Id' }, 400, 'bad_request'],
    ['POST', '/admin/gateways', { id: 'admin' }, 400, 'bad_request'],
    ['POST', '/admin/gateways', { id: 'ok', extra: 1 }, 400, 'bad_request'],
    ['POST', '/admin/gateways', { id: 'ok2', plugins: { 'limit-count': { count: 'lots' } } }, 400, 'invalid_plugin_config'],
    ['POST', '/admin/applications', { name: '' }, 400, 'bad_request'],
    ['POST', '/admin/grants', { application: 'ghost', gateway: 'x', stage: 'prod' }, 404, 'not_found'],
    ['POST', '/admin/grants', { application: 'ghost', gateway: 'x', stage: 'qa' }, 400, 'bad_request'],
    ['GET', '/admin/no-such-route', undefined, 404, 'not_found'],
  ]
  for (const [method, url, body, status, code] of cases) {
    const response = await call(method, url, body)
    assert.equal(response.status, status, `${method} ${url}: ${JSON.stringify(response.body)}`)
    assert.equal(response.body.error.code, code, `${method} ${url}`)
    assert.equal(typeof response.body.error.message, 'string')
  }
  assert.equal((await call('POST', '/admin/gateways', { id: 'dup' })).status, 201)
  const duplicate = await call('POST', '/admin/gateways', { id: 'dup' })
  assert.deepEqual([duplicate.status, duplicate.body.error.code], [409, 'already_exists'])
  const invalidName = await call('PUT', '/admin/gateways/dup/functions/..%2Fx', { source: 'x' })
  assert.deepEqual([invalidName.status, invalidName.body.error.code], [400, 'invalid_name'])
  const both = await call('PUT', '/admin/gateways/dup/functions/f', { source: 'x', files: { 'index.ts': 'x' } })
  assert.deepEqual([both.status, both.body.error.code], [400, 'bad_request'])
})

test('oversized and malformed bodies are refused with a code', async () => {
  const big = await platform.app.inject({
    method: 'POST',
    url: '/admin/gateways',
    headers: { ...auth, 'content-type': 'application/json' },
    payload: JSON.stringify({ id: 'big', description: 'x'.repeat(3 * 1024 * 1024) }),
  })
  assert.equal(big.statusCode, 413)
  assert.equal(JSON.parse(big.body).error.code, 'body_too_large')
  const malformed = await platform.app.inject({
    method: 'POST',
    url: '/admin/gateways',
    headers: { ...auth, 'content-type': 'application/json' },
    payload: '{"id": ',
  })
  assert.equal(malformed.statusCode, 400)
  assert.equal(JSON.parse(malformed.body).error.code, 'bad_request')
  const wrongType = await platform.app.inject({
    method: 'POST',
    url: '/admin/gateways',
    headers: { ...auth, 'content-type': 'text/xml' },
    payload: '<id/>',
  })
  assert.equal(wrongType.statusCode, 415)
})

test('a failed publish is a 422 with diagnostics and leaves the old version live', async () => {
  await call('POST', '/admin/gateways', { id: 'g' })
  await call('PUT', '/admin/gateways/g/functions/f', { source: 'export default () => 1' })
  await call('POST', '/admin/gateways/g/functions/f/publish', {})
  await call('PUT', '/admin/gateways/g/functions/f', { source: 'SYNTAX ERROR' })
  const failed = await call('POST', '/admin/gateways/g/functions/f/publish', {})
  assert.equal(failed.status, 422)
  assert.equal(failed.body.error.code, 'compile_failed')
  assert.deepEqual(failed.body.error.details.diagnostics[0].line, 1)
  assert.deepEqual((await call('GET', '/admin/gateways/g/functions/f')).body.deployed, { dev: 1 })
})

test('the OpenAPI document describes the routes from the same schemas', async () => {
  const response = await call('GET', '/admin/openapi.json', undefined, {})
  assert.equal(response.status, 200)
  assert.equal(response.body.openapi.startsWith('3.'), true)
  const paths = Object.keys(response.body.paths)
  assert.ok(paths.includes('/admin/gateways'))
  assert.ok(paths.includes('/admin/gateways/{gateway}/functions/{name}/publish'))
  const createBody = response.body.paths['/admin/gateways'].post.requestBody.content['application/json'].schema
  assert.deepEqual(createBody.required, ['id'])
  assert.equal(createBody.properties.id.pattern !== undefined, true)
})

test('PATCH …/plugins merges at the plugin-name level: null removes, unnamed plugins are kept', async () => {
  assert.equal((await call('POST', '/admin/gateways', { id: 'g', plugins: { 'ip-restriction': { whitelist: ['127.0.0.1'] } } })).status, 201)
  const limited = await call('PATCH', '/admin/gateways/g/environments/prod/plugins', { plugins: { 'limit-count': { count: 2, time_window: 60 } } })
  assert.equal(limited.status, 200, JSON.stringify(limited.body))
  assert.deepEqual(Object.keys(limited.body.plugins).sort(), ['key-auth', 'limit-count'])
  assert.equal(limited.body.plugins['limit-count'].policy, 'local')
  const opened = await call('PATCH', '/admin/gateways/g/environments/prod/plugins', { plugins: { 'key-auth': null } })
  assert.deepEqual(Object.keys(opened.body.plugins), ['limit-count'])
  assert.deepEqual((await call('GET', '/admin/gateways/g/environments/prod')).body.plugins, opened.body.plugins)

  const invalid = await call('PATCH', '/admin/gateways/g/environments/prod/plugins', { plugins: { 'limit-count': null, cors: { max_age: 'long' } } })
  assert.deepEqual([invalid.status, invalid.body.error.code], [400, 'invalid_plugin_config'])
  const unknown = await call('PATCH', '/admin/gateways/g/environments/prod/plugins', { plugins: { 'no-such-plugin': null } })
  assert.deepEqual([unknown.status, unknown.body.error.code], [400, 'invalid_plugin_config'])
  const notAnObject = await call('PATCH', '/admin/gateways/g/environments/prod/plugins', { plugins: { cors: 'on' } })
  assert.deepEqual([notAnObject.status, notAnObject.body.error.code], [400, 'bad_request'])
  assert.deepEqual((await call('GET', '/admin/gateways/g/environments/prod')).body.plugins, opened.body.plugins, 'rejected patches change nothing')

  assert.equal((await call('PUT', '/admin/gateways/g/functions/user%2Fme', { source: 'export default () => 1', plugins: { 'key-auth': {} } })).status, 200)
  const patchedFunction = await call('PATCH', '/admin/gateways/g/functions/user%2Fme/plugins', { plugins: { 'limit-req': { rate: 1, burst: 0, key: 'remote_addr' } } })
  assert.equal(patchedFunction.status, 200, JSON.stringify(patchedFunction.body))
  assert.deepEqual(Object.keys(patchedFunction.body.plugins).sort(), ['key-auth', 'limit-req'])
  const missing = await call('PATCH', '/admin/gateways/g/functions/missing/plugins', { plugins: { cors: {} } })
  assert.deepEqual([missing.status, missing.body.error.code], [404, 'not_found'])

  const gateway = await call('PATCH', '/admin/gateways/g/plugins', { plugins: { cors: { allow_origins: 'https://a.example' } } })
  assert.equal(gateway.status, 200, JSON.stringify(gateway.body))
  assert.deepEqual(Object.keys(gateway.body.plugins).sort(), ['cors', 'ip-restriction'])

  const document = (await call('GET', '/admin/openapi.json')).body
  for (const path of ['/admin/gateways/{gateway}/plugins', '/admin/gateways/{gateway}/environments/{stage}/plugins', '/admin/gateways/{gateway}/functions/{name}/plugins']) {
    assert.ok(document.paths[path]?.patch, `${path} PATCH is documented`)
  }
})
