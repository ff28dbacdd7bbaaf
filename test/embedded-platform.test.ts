/**
 * The user journey of the design over real HTTP on loopback: the embedded platform with the real
 * compiler and sandbox, driven through the admin API and called through the data plane.
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { startEmbeddedPlatform, type EmbeddedPlatform } from '../control/platform.ts'
import { createDefaultCompiler } from '../runtime/compile/index.ts'

const token = 'journey-token'
let platform: EmbeddedPlatform
let directory: string
const calculateTax = readFileSync(join(import.meta.dirname, '..', 'examples', 'hometax', 'calculateTax.ts'), 'utf8')

before(async () => {
  directory = await mkdtemp(join(tmpdir(), 'imprun-journey-'))
  platform = await startEmbeddedPlatform({ dataDirectory: directory, port: 0, adminToken: token, compiler: createDefaultCompiler(), reconciler: { idlePollMs: 50 } })
})
after(async () => {
  await platform.close()
  await rm(directory, { recursive: true, force: true })
})

async function admin(method: string, path: string, body?: unknown) {
  const response = await fetch(`${platform.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  const text = await response.text()
  return { status: response.status, body: text ? JSON.parse(text) : null }
}

async function call(path: string, init: RequestInit = {}) {
  const response = await fetch(`${platform.url}${path}`, init)
  const text = await response.text()
  let body: unknown = text
  try {
    body = JSON.parse(text)
  } catch {}
  return { status: response.status, body: body as any, headers: response.headers }
}

const post = (body: unknown, headers: Record<string, string> = {}): RequestInit => ({
  method: 'POST',
  headers: { 'content-type': 'application/json', ...headers },
  body: JSON.stringify(body),
})

async function until<T>(probe: () => Promise<T>, ok: (value: T) => boolean, what: string): Promise<T> {
  for (let i = 0; i < 400; i++) {
    const value = await probe()
    if (ok(value)) return value
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  throw new Error(`timed out waiting for ${what}`)
}

test('hometax: publish, call, log, promote, protect, rate-limit, roll back', async () => {
  assert.equal((await admin('POST', '/admin/gateways', { id: 'hometax' })).status, 201)
  await until(() => admin('GET', '/admin/gateways/hometax'), (response) => response.body.phase === 'Started', 'Started')

  assert.equal((await admin('PUT', '/admin/gateways/hometax/functions/calculateTax', { source: calculateTax })).status, 200)
  const published = await admin('POST', '/admin/gateways/hometax/functions/calculateTax/publish', {})
  assert.equal(published.status, 200, JSON.stringify(published.body))

  const taxed = await call('/hometax/dev/calculateTax', post({ income: 50_000_000, deductions: 10_000_000 }))
  assert.equal(taxed.status, 200)
  assert.deepEqual(taxed.body, { tax: 8_800_000 })
  assert.ok(taxed.headers.get('x-request-id'))
  assert.equal(taxed.headers.get('access-control-allow-origin'), '*', 'base CORS applies')

  const invalid = await call('/hometax/dev/calculateTax', post({ income: 'lots' }))
  assert.equal(invalid.status, 400)
  assert.equal(invalid.body.error.code, 'invalid_input')

  const logs = await admin('GET', '/admin/gateways/hometax/logs?function=calculateTax')
  assert.equal(logs.status, 200)
  assert.deepEqual(logs.body.logs.map((entry: { status: number }) => entry.status).sort(), [200, 400])

  // prod is protected by key-auth from the start; a grant's key opens it.
  await admin('POST', '/admin/gateways/hometax/functions/calculateTax/promote', { from: 'dev' })
  await admin('POST', '/admin/gateways/hometax/functions/calculateTax/promote', { from: 'staging' })
  await until(() => call('/hometax/prod/calculateTax', post({ income: 1, deductions: 0 })), (response) => response.status !== 404, 'prod deployment')
  const locked = await call('/hometax/prod/calculateTax', post({ income: 1, deductions: 0 }))
  assert.equal(locked.status, 401)
  await admin('POST', '/admin/applications', { name: 'mobile' })
  const grant = await admin('POST', '/admin/grants', { application: 'mobile', gateway: 'hometax', stage: 'prod' })
  const withKey = await call('/hometax/prod/calculateTax', post({ income: 50_000_000, deductions: 10_000_000 }, { apikey: grant.body.apiKey }))
  assert.equal(withKey.status, 200)
  assert.deepEqual(withKey.body, { tax: 8_800_000 })
  const bearer = await call('/hometax/prod/calculateTax', post({ income: 1, deductions: 0 }, { authorization: `Bearer ${grant.body.apiKey}` }))
  assert.equal(bearer.status, 200)
  const wrongStage = await call('/hometax/staging/calculateTax', post({ income: 1, deductions: 0 }, { apikey: grant.body.apiKey }))
  assert.equal(wrongStage.status, 200, 'staging has no key-auth: the key is simply not needed there')

  // A rate limit on prod only.
  const prodPlugins = (await admin('GET', '/admin/gateways/hometax/environments/prod')).body.plugins
  await admin('PUT', '/admin/gateways/hometax/environments/prod/plugins', {
    plugins: { ...prodPlugins, 'limit-count': { count: 2, time_window: 60, rejected_code: 429 } },
  })
  const statuses: number[] = []
  for (let i = 0; i < 4; i++) statuses.push((await call('/hometax/prod/calculateTax', post({ income: 1, deductions: 0 }, { apikey: grant.body.apiKey }))).status)
  assert.deepEqual(statuses.filter((status) => status === 429).length >= 1, true, `statuses ${statuses}`)
  assert.equal(statuses[0], 200)
  const devStatuses = await Promise.all([1, 2, 3, 4].map(() => call('/hometax/dev/calculateTax', post({ income: 1, deductions: 0 }))))
  assert.deepEqual(devStatuses.map((response) => response.status), [200, 200, 200, 200], 'dev is not limited')

  // Hot reload: a new version answers right after publish; rollback brings the old one back.
  await admin('PUT', '/admin/gateways/hometax/functions/calculateTax', { source: calculateTax.replace('0.22', '0.5') })
  const started = performance.now()
  await admin('POST', '/admin/gateways/hometax/functions/calculateTax/publish', {})
  const reloaded = await until(() => call('/hometax/dev/calculateTax', post({ income: 100, deductions: 0 })), (response) => response.body?.tax === 50, 'v2 serving')
  assert.equal(reloaded.status, 200)
  const publishToServingMs = performance.now() - started
  assert.ok(publishToServingMs < 5000)
  await admin('POST', '/admin/gateways/hometax/functions/calculateTax/rollback', { stage: 'dev' })
  await until(() => call('/hometax/dev/calculateTax', post({ income: 100, deductions: 0 })), (response) => response.body?.tax === 22, 'v1 serving again')
})

test('bad requests to the data plane get clear errors', async () => {
  await admin('POST', '/admin/gateways', { id: 'errors' })
  await until(() => admin('GET', '/admin/gateways/errors'), (response) => response.body.phase === 'Started', 'Started')
  await admin('PUT', '/admin/gateways/errors/functions/echo', { source: 'export default (ctx: any) => ({ got: ctx.input })' })
  await admin('POST', '/admin/gateways/errors/functions/echo/publish', {})
  const cases: Array<[string, RequestInit, number, string]> = [
    ['/nope/dev/echo', {}, 404, 'not_found'],
    ['/errors/qa/echo', {}, 404, 'not_found'],
    ['/errors/dev/missing', {}, 404, 'not_found'],
    ['/errors/dev/echo', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"broken":' }, 400, 'bad_request'],
  ]
  for (const [path, init, status, code] of cases) {
    const response = await call(path, init)
    assert.equal(response.status, status, `${path}: ${JSON.stringify(response.body)}`)
    assert.equal(response.body.error.code, code, path)
  }
  const viaQuery = await call('/errors/dev/echo?name=ada&tag=a&tag=b')
  assert.deepEqual(viaQuery.body, { got: { name: 'ada', tag: ['a', 'b'] } })
  const preflight = await call('/errors/dev/echo', { method: 'OPTIONS', headers: { origin: 'https://app.example', 'access-control-request-method': 'POST' } })
  assert.equal(preflight.status, 200)
  assert.equal(preflight.headers.get('access-control-allow-origin'), '*')

  await admin('POST', '/admin/gateways/errors/stop')
  await until(() => admin('GET', '/admin/gateways/errors'), (response) => response.body.phase === 'Stopped', 'Stopped')
  const stopped = await call('/errors/dev/echo')
  assert.equal(stopped.status, 503)
  assert.equal(stopped.body.error.code, 'not_serving')
})

test('one gateway\'s key never opens another gateway', async () => {
  for (const id of ['tenant-a', 'tenant-b']) {
    await admin('POST', '/admin/gateways', { id })
    await until(() => admin('GET', `/admin/gateways/${id}`), (response) => response.body.phase === 'Started', 'Started')
    await admin('PUT', `/admin/gateways/${id}/functions/secret`, { source: `export default () => '${id}'` })
    await admin('POST', `/admin/gateways/${id}/functions/secret/publish`, {})
    await admin('POST', `/admin/gateways/${id}/functions/secret/promote`, { from: 'dev' })
    await admin('POST', `/admin/gateways/${id}/functions/secret/promote`, { from: 'staging' })
  }
  await admin('POST', '/admin/applications', { name: 'a-only' })
  const grant = await admin('POST', '/admin/grants', { application: 'a-only', gateway: 'tenant-a', stage: 'prod' })
  const own = await until(() => call('/tenant-a/prod/secret', { headers: { apikey: grant.body.apiKey } }), (response) => response.status !== 404, 'deployed')
  assert.deepEqual([own.status, own.body], [200, 'tenant-a'])
  const other = await until(() => call('/tenant-b/prod/secret', { headers: { apikey: grant.body.apiKey } }), (response) => response.status !== 404, 'deployed')
  assert.equal(other.status, 401)
})
