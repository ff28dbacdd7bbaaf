import { test } from 'node:test'
import assert from 'node:assert/strict'
import { isImprunError } from '../../control/errors.ts'
import { createPluginChain } from './plugin-chain.ts'
import { createRateLimitState } from './rate-limit-state.ts'
import { edgeRequest, manualClock, validatedChain } from './test-support.ts'
import type { EdgeRequest } from './types.ts'

test('count 2: two requests pass with Remaining 1 then 0, the third gets APISIX default 503', async () => {
  const clock = manualClock()
  const chain = validatedChain({ 'limit-count': { count: 2, time_window: 60 } }, { clock })

  const first = await chain.run(edgeRequest())
  assert.equal(first.response, undefined)
  assert.deepEqual(first.headers, { 'x-ratelimit-limit': '2', 'x-ratelimit-remaining': '1', 'x-ratelimit-reset': '60' })

  clock.advance(15_500)
  const second = await chain.run(edgeRequest())
  assert.equal(second.response, undefined)
  assert.deepEqual(second.headers, { 'x-ratelimit-limit': '2', 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': '44.5' })

  const third = await chain.run(edgeRequest())
  assert.deepEqual(third.response, {
    status: 503,
    headers: { 'x-ratelimit-limit': '2', 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': '44.5' },
    body: { error: { code: 'rate_limited', message: 'Rate limit exceeded' } },
  })
})

test('the window resets after time_window seconds', async () => {
  const clock = manualClock()
  const chain = validatedChain({ 'limit-count': { count: 2, time_window: 60 } }, { clock })
  await chain.run(edgeRequest())
  await chain.run(edgeRequest())
  clock.advance(59_999)
  assert.equal((await chain.run(edgeRequest())).response?.status, 503, 'still in the window')
  clock.advance(1)
  const fresh = await chain.run(edgeRequest())
  assert.equal(fresh.response, undefined)
  assert.equal(fresh.headers['x-ratelimit-remaining'], '1')
  assert.equal(fresh.headers['x-ratelimit-reset'], '60')
})

test('rejected_code and rejected_msg replace the defaults', async () => {
  const chain = validatedChain({ 'limit-count': { count: 1, time_window: 10, rejected_code: 429, rejected_msg: 'slow down' } })
  await chain.run(edgeRequest())
  const rejected = await chain.run(edgeRequest())
  assert.equal(rejected.response?.status, 429)
  assert.deepEqual(rejected.response?.body, { error: { code: 'rate_limited', message: 'slow down' } })
})

test('show_limit_quota_header false sends no quota headers', async () => {
  const chain = validatedChain({ 'limit-count': { count: 1, time_window: 10, show_limit_quota_header: false } })
  assert.deepEqual((await chain.run(edgeRequest())).headers, {})
  assert.deepEqual((await chain.run(edgeRequest())).response?.headers, {})
})

test('keys: remote_addr by default, a header variable, a var_combination, a constant', async () => {
  const remaining = async (chain: ReturnType<typeof validatedChain>, request: EdgeRequest) =>
    (await chain.run(request)).headers['x-ratelimit-remaining']

  const byAddress = validatedChain({ 'limit-count': { count: 5, time_window: 60 } })
  assert.equal(await remaining(byAddress, edgeRequest({ clientIp: '10.0.0.1' })), '4')
  assert.equal(await remaining(byAddress, edgeRequest({ clientIp: '10.0.0.2' })), '4')
  assert.equal(await remaining(byAddress, edgeRequest({ clientIp: '::ffff:10.0.0.1' })), '3', 'mapped IPv4 is the same client')

  const byHeader = validatedChain({ 'limit-count': { count: 5, time_window: 60, key: 'http_x_user_id' } })
  assert.equal(await remaining(byHeader, edgeRequest({ clientIp: '10.0.0.1', headers: { 'x-user-id': 'u1' } })), '4')
  assert.equal(await remaining(byHeader, edgeRequest({ clientIp: '10.0.0.2', headers: { 'x-user-id': 'u1' } })), '3')
  assert.equal(await remaining(byHeader, edgeRequest({ clientIp: '10.0.0.1', headers: { 'x-user-id': 'u2' } })), '4')
  // No such header: APISIX falls back to the client address.
  assert.equal(await remaining(byHeader, edgeRequest({ clientIp: '10.0.0.9' })), '4')
  assert.equal(await remaining(byHeader, edgeRequest({ clientIp: '10.0.0.9' })), '3')

  const combined = validatedChain({
    'limit-count': { count: 5, time_window: 60, key_type: 'var_combination', key: '$remote_addr $arg_tenant' },
  })
  assert.equal(await remaining(combined, edgeRequest({ query: new URLSearchParams({ tenant: 'a' }) })), '4')
  assert.equal(await remaining(combined, edgeRequest({ query: new URLSearchParams({ tenant: 'b' }) })), '4')
  assert.equal(await remaining(combined, edgeRequest({ query: { tenant: 'a' } })), '3')

  const constant = validatedChain({ 'limit-count': { count: 5, time_window: 60, key_type: 'constant', key: 'everyone' } })
  assert.equal(await remaining(constant, edgeRequest({ clientIp: '10.0.0.1' })), '4')
  assert.equal(await remaining(constant, edgeRequest({ clientIp: '10.0.0.2' })), '3')
})

test('consumer_name counts per consumer once key-auth identified it', async () => {
  const chain = validatedChain(
    { 'key-auth': {}, 'limit-count': { count: 3, time_window: 60, key: 'consumer_name' } },
    { verifyKey: async (key) => ({ consumer: key.startsWith('a') ? 'app-a' : 'app-b' }) },
  )
  const run = async (key: string, clientIp: string) => (await chain.run(edgeRequest({ headers: { apikey: key }, clientIp }))).headers
  assert.equal((await run('a1', '10.0.0.1'))['x-ratelimit-remaining'], '2')
  assert.equal((await run('a2', '10.0.0.2'))['x-ratelimit-remaining'], '1', 'same consumer, other address')
  assert.equal((await run('b1', '10.0.0.1'))['x-ratelimit-remaining'], '2')
})

test('counters are shared by chains of the same scope and conf (hot reload), not across scopes or confs', async () => {
  const clock = manualClock()
  const state = createRateLimitState()
  const conf = { 'limit-count': { count: 3, time_window: 60 } }
  const before = validatedChain(conf, { clock, rateLimitState: state })
  await before.run(edgeRequest())
  await before.run(edgeRequest())

  const rebuilt = validatedChain(conf, { clock, rateLimitState: state })
  assert.equal((await rebuilt.run(edgeRequest())).headers['x-ratelimit-remaining'], '0', 'the rebuild continues the count')
  assert.equal((await rebuilt.run(edgeRequest())).response?.status, 503)

  const otherScope = validatedChain(conf, { clock, rateLimitState: state, scope: 'hometax/prod/other' })
  assert.equal((await otherScope.run(edgeRequest())).headers['x-ratelimit-remaining'], '2')

  const changed = validatedChain({ 'limit-count': { count: 4, time_window: 60 } }, { clock, rateLimitState: state })
  assert.equal((await changed.run(edgeRequest())).headers['x-ratelimit-remaining'], '3', 'a new conf starts new counters')
})

test('sliding windows weigh the previous window (APISIX sliding-window.lua)', async () => {
  const clock = manualClock(1_700_000_000_000) // a multiple of 10 s: window boundaries fall on it
  const chain = validatedChain({ 'limit-count': { count: 4, time_window: 10, window_type: 'sliding' } }, { clock })
  const status = async () => (await chain.run(edgeRequest())).response?.status ?? 200
  const remaining = async () => (await chain.run(edgeRequest())).headers['x-ratelimit-remaining']

  assert.deepEqual([await remaining(), await remaining(), await remaining(), await remaining()], ['3', '2', '1', '0'])
  assert.equal(await status(), 503)

  clock.advance(10_000) // next window: the previous 4 still weigh fully at its start
  assert.equal(await status(), 503)
  clock.advance(5_000) // half way: they weigh 2
  assert.equal(await remaining(), '1')
  assert.equal(await remaining(), '0')
  const rejected = await chain.run(edgeRequest())
  assert.equal(rejected.response?.status, 503)
  assert.equal(rejected.headers['x-ratelimit-reset'], '0')
  clock.advance(5_000) // next window: the previous window held 2
  assert.equal(await remaining(), '1')
})

test('count from a $variable is resolved per request; an unresolvable one is a 500 unless allow_degradation', async () => {
  const chain = validatedChain({ 'limit-count': { count: '$http_x_quota', time_window: 60 } })
  const quota3 = await chain.run(edgeRequest({ headers: { 'x-quota': '3' } }))
  assert.equal(quota3.headers['x-ratelimit-limit'], '3')
  assert.equal(quota3.headers['x-ratelimit-remaining'], '2')

  const missing = await chain.run(edgeRequest({ clientIp: '10.9.9.9' }))
  assert.deepEqual(missing.response, {
    status: 500,
    headers: {},
    body: { error: { code: 'internal', message: 'failed to limit count' } },
  })

  const degraded = validatedChain({ 'limit-count': { count: '$http_x_quota', time_window: 60, allow_degradation: true } })
  assert.equal((await degraded.run(edgeRequest())).response, undefined)
})

test('rules apply every rule whose key resolves, with X-<prefix>-RateLimit-* headers', async () => {
  const chain = validatedChain({
    'limit-count': {
      rules: [
        { count: 2, time_window: 60, key: '$http_x_user', header_prefix: 'user' },
        { count: 5, time_window: 60, key: '$remote_addr' },
      ],
    },
  })
  const withUser = await chain.run(edgeRequest({ headers: { 'x-user': 'u1' } }))
  assert.equal(withUser.headers['x-user-ratelimit-remaining'], '1')
  assert.equal(withUser.headers['x-2-ratelimit-remaining'], '4', 'the second rule is prefixed with its index')

  const anonymous = await chain.run(edgeRequest())
  assert.equal(anonymous.headers['x-user-ratelimit-remaining'], undefined, 'a rule keyed on an absent header does not apply')
  assert.equal(anonymous.headers['x-2-ratelimit-remaining'], '3')

  await chain.run(edgeRequest({ headers: { 'x-user': 'u1' } }))
  const third = await chain.run(edgeRequest({ headers: { 'x-user': 'u1' } }))
  assert.equal(third.response?.status, 503, 'the user rule rejects')
})

test('non-local policies and groups fail the build', () => {
  for (const conf of [
    { count: 1, time_window: 1, policy: 'redis', redis_host: 'redis.internal' },
    { count: 1, time_window: 1, group: 'shared' },
  ]) {
    assert.throws(
      () => createPluginChain({ 'limit-count': conf }, { scope: 's' }),
      (error) => isImprunError(error, 'invalid_plugin_config'),
    )
  }
})
