import { test } from 'node:test'
import assert from 'node:assert/strict'
import { effectivePlugins, validatePluginConfigs } from '../../control/domain/plugins.ts'
import { isImprunError } from '../../control/errors.ts'
import { createPluginChain, mergeResponseHeaders } from './plugin-chain.ts'
import { createRateLimitState } from './rate-limit-state.ts'
import { edgeRequest, manualClock, validatedChain } from './test-support.ts'
import type { VerifiedConsumer } from './types.ts'

const goodKey = 'imp_good'

function verifySpy() {
  const calls: string[] = []
  const verifyKey = async (key: string): Promise<VerifiedConsumer | null> => {
    calls.push(key)
    return key === goodKey ? { consumer: 'mobile' } : null
  }
  return { calls, verifyKey }
}

const allSix = {
  'limit-req': { rate: 100, burst: 10, key: 'remote_addr' },
  'limit-count': { count: 100, time_window: 60 },
  'proxy-rewrite': { headers: { set: { 'x-edge': 'imprun' } } },
  'key-auth': {},
  'ip-restriction': { whitelist: ['10.0.0.0/8'] },
  cors: { allow_origins: 'https://app.example' },
}

test('plugins run in APISIX priority order whatever the conf order', () => {
  const chain = validatedChain(allSix, { verifyKey: verifySpy().verifyKey })
  assert.deepEqual(chain.order, ['cors', 'ip-restriction', 'key-auth', 'proxy-rewrite', 'limit-count', 'limit-req'])
})

test('ip-restriction rejects before key-auth is consulted or a rate limit is counted', async () => {
  const spy = verifySpy()
  const state = createRateLimitState()
  const chain = validatedChain(allSix, { verifyKey: spy.verifyKey, rateLimitState: state })
  const blocked = await chain.run(edgeRequest({ clientIp: '8.8.8.8', headers: { apikey: goodKey, origin: 'https://app.example' } }))
  assert.equal(blocked.response?.status, 403)
  assert.deepEqual(spy.calls, [], 'the key was never looked at')
  assert.equal(state.size, 0, 'no counter was touched')
  assert.equal(blocked.response?.headers['access-control-allow-origin'], 'https://app.example', 'CORS headers on the rejection')

  const allowed = await chain.run(edgeRequest({ clientIp: '10.1.1.1', headers: { apikey: goodKey } }))
  assert.equal(allowed.response, undefined)
  assert.deepEqual(spy.calls, [goodKey])
  assert.equal(allowed.consumer, 'mobile')
  assert.equal(allowed.request.headers['x-edge'], 'imprun')
  assert.equal(allowed.headers['x-ratelimit-remaining'], '99')
})

test('a key-auth rejection carries the CORS headers, so the browser can read the 401', async () => {
  const chain = validatedChain({ cors: { allow_origins: 'https://app.example' }, 'key-auth': {} }, { verifyKey: verifySpy().verifyKey })
  const result = await chain.run(edgeRequest({ headers: { origin: 'https://app.example' } }))
  assert.equal(result.response?.status, 401)
  assert.deepEqual(result.response?.headers, {
    'access-control-allow-origin': 'https://app.example',
    vary: 'Origin',
    'access-control-allow-methods': '*',
    'access-control-allow-headers': '*',
    'access-control-max-age': '5',
    'www-authenticate': 'apikey realm="key"',
  })
  assert.deepEqual(result.headers, result.response?.headers)
})

test('a CORS preflight is answered before authentication', async () => {
  const spy = verifySpy()
  const chain = validatedChain({ cors: {}, 'key-auth': {} }, { verifyKey: spy.verifyKey })
  const preflight = await chain.run(edgeRequest({ method: 'OPTIONS', headers: { origin: 'https://app.example' } }))
  assert.equal(preflight.response?.status, 200)
  assert.deepEqual(spy.calls, [])
})

test('plugins with _meta.disable are skipped', async () => {
  const spy = verifySpy()
  const chain = createPluginChain(
    {
      'key-auth': { header: 'apikey', query: 'apikey', hide_credentials: false, _meta: { disable: true } },
      'ip-restriction': { blacklist: ['0.0.0.0/0'], _meta: { disable: true } },
    },
    { scope: 's', verifyKey: spy.verifyKey },
  )
  assert.deepEqual(chain.order, [])
  const result = await chain.run(edgeRequest())
  assert.equal(result.response, undefined)
  assert.deepEqual(spy.calls, [])
})

test('_meta.priority reorders plugins within their phase', async () => {
  const spy = verifySpy()
  const chain = validatedChain(
    { 'ip-restriction': { whitelist: ['10.0.0.0/8'] }, 'key-auth': { _meta: { priority: 3500 } } },
    { verifyKey: spy.verifyKey },
  )
  assert.deepEqual(chain.order, ['key-auth', 'ip-restriction'])
  const result = await chain.run(edgeRequest({ clientIp: '8.8.8.8' }))
  assert.equal(result.response?.status, 401, 'key-auth now answers first')
})

test('_meta.error_response replaces the body of a plugin rejection', async () => {
  const asText = validatedChain({ 'ip-restriction': { blacklist: ['0.0.0.0/0'], _meta: { error_response: 'go away' } } })
  assert.deepEqual((await asText.run(edgeRequest())).response, {
    status: 403,
    headers: { 'content-type': 'text/plain; charset=utf-8' },
    body: 'go away',
  })
  const asJson = validatedChain({ 'limit-count': { count: 1, time_window: 60, show_limit_quota_header: false, _meta: { error_response: { message: 'quota' } } } })
  await asJson.run(edgeRequest())
  assert.deepEqual((await asJson.run(edgeRequest())).response, {
    status: 503,
    headers: { 'content-type': 'application/json' },
    body: '{"message":"quota"}',
  })
})

test('limit-req delay and limit-count headers come back together on a passing request', async () => {
  const chain = validatedChain(
    { 'limit-count': { count: 10, time_window: 60 }, 'limit-req': { rate: 1, burst: 5, key: 'remote_addr' } },
    { clock: manualClock() },
  )
  await chain.run(edgeRequest())
  const second = await chain.run(edgeRequest())
  assert.equal(second.delayMs, 1_000)
  assert.equal(second.headers['x-ratelimit-remaining'], '8')
})

test('a rebuilt chain with the same state keeps counting (hot reload of an effective conf)', async () => {
  const clock = manualClock()
  const state = createRateLimitState()
  const layers = {
    gateway: validatePluginConfigs({ 'limit-count': { count: 2, time_window: 60, rejected_code: 429 } }),
    environment: validatePluginConfigs({ 'key-auth': {} }),
  }
  const deps = { scope: 'hometax/prod', clock, rateLimitState: state, verifyKey: verifySpy().verifyKey }
  const request = edgeRequest({ headers: { apikey: goodKey } })
  assert.equal((await createPluginChain(effectivePlugins(layers), deps).run(request)).response, undefined)
  assert.equal((await createPluginChain(effectivePlugins(layers), deps).run(request)).response, undefined)
  const third = await createPluginChain(effectivePlugins(layers), deps).run(request)
  assert.equal(third.response?.status, 429)
  assert.equal(third.response?.headers['access-control-allow-origin'], '*', 'the base CORS conf is part of every chain')
})

test('a plugin the edge cannot run fails the build instead of being ignored', () => {
  assert.throws(
    () => createPluginChain({ 'jwt-auth': { header: 'authorization' } }, { scope: 's' }),
    (error) => isImprunError(error, 'invalid_plugin_config') && error.message.includes('jwt-auth'),
  )
})

test('mergeResponseHeaders lets the edge headers win and merges Vary', () => {
  const merged = mergeResponseHeaders(
    { 'Content-Type': 'application/json', Vary: 'Accept-Encoding', 'Access-Control-Allow-Origin': 'https://x', 'Content-Length': 12 },
    { 'access-control-allow-origin': 'https://app.example', vary: 'Origin', 'x-ratelimit-remaining': '3' },
  )
  assert.deepEqual(merged, {
    'content-type': 'application/json',
    vary: 'Accept-Encoding, Origin',
    'access-control-allow-origin': 'https://app.example',
    'content-length': '12',
    'x-ratelimit-remaining': '3',
  })
  assert.equal(mergeResponseHeaders({ vary: 'origin' }, { vary: 'Origin' }).vary, 'origin', 'no duplicate token')
})
