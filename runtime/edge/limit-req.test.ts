import { test } from 'node:test'
import assert from 'node:assert/strict'
import { isImprunError } from '../../control/errors.ts'
import { createPluginChain } from './plugin-chain.ts'
import { edgeRequest, manualClock, validatedChain } from './test-support.ts'

test('burst 0: one request per 1/rate seconds, the next immediate one gets APISIX default 503', async () => {
  const clock = manualClock()
  const chain = validatedChain({ 'limit-req': { rate: 1, burst: 0, key: 'remote_addr' } }, { clock })
  const first = await chain.run(edgeRequest())
  assert.equal(first.response, undefined)
  assert.equal(first.delayMs, undefined, 'no excess, no delay')

  const second = await chain.run(edgeRequest())
  assert.deepEqual(second.response, {
    status: 503,
    headers: {},
    body: { error: { code: 'rate_limited', message: 'Rate limit exceeded' } },
  })
  clock.advance(1_000)
  assert.equal((await chain.run(edgeRequest())).response, undefined)
})

test('within the burst requests are delayed by excess/rate; past it they are rejected', async () => {
  const clock = manualClock()
  const chain = validatedChain({ 'limit-req': { rate: 1, burst: 2, key: 'remote_addr' } }, { clock })
  const delays = []
  for (let index = 0; index < 3; index += 1) {
    const result = await chain.run(edgeRequest())
    assert.equal(result.response, undefined)
    delays.push(result.delayMs ?? 0)
  }
  assert.deepEqual(delays, [0, 1_000, 2_000])
  assert.equal((await chain.run(edgeRequest())).response?.status, 503)

  clock.advance(1_000) // one request has leaked out: the bucket holds 2 again
  const after = await chain.run(edgeRequest())
  assert.equal(after.response, undefined)
  assert.equal(after.delayMs, 2_000)
})

test('nodelay lets burst requests through at once, and still rejects past the burst', async () => {
  const clock = manualClock()
  const chain = validatedChain({ 'limit-req': { rate: 2, burst: 1, key: 'remote_addr', nodelay: true } }, { clock })
  const first = await chain.run(edgeRequest())
  const second = await chain.run(edgeRequest())
  assert.equal(second.response, undefined)
  assert.equal(second.delayMs, undefined, 'nodelay: no waiting')
  assert.equal(first.delayMs, undefined)
  assert.equal((await chain.run(edgeRequest())).response?.status, 503)
})

test('a fractional delay: rate 2 per second delays the first excess request by 500 ms', async () => {
  const chain = validatedChain({ 'limit-req': { rate: 2, burst: 1, key: 'remote_addr' } }, { clock: manualClock() })
  await chain.run(edgeRequest())
  assert.equal((await chain.run(edgeRequest())).delayMs, 500)
})

test('rejected requests do not fill the bucket', async () => {
  const clock = manualClock()
  const chain = validatedChain({ 'limit-req': { rate: 1, burst: 0, key: 'remote_addr' } }, { clock })
  await chain.run(edgeRequest())
  clock.advance(500)
  assert.equal((await chain.run(edgeRequest())).response?.status, 503)
  clock.advance(500)
  // Had the rejected request counted, the bucket would still hold half a request here.
  assert.equal((await chain.run(edgeRequest())).response, undefined)
})

test('rejected_code, rejected_msg and per-key buckets', async () => {
  const chain = validatedChain(
    {
      'limit-req': {
        rate: 1,
        burst: 0,
        key_type: 'var_combination',
        key: '$remote_addr:$http_x_tenant',
        rejected_code: 429,
        rejected_msg: 'too fast',
      },
    },
    { clock: manualClock() },
  )
  await chain.run(edgeRequest({ headers: { 'x-tenant': 'a' } }))
  assert.equal((await chain.run(edgeRequest({ headers: { 'x-tenant': 'b' } }))).response, undefined, 'another tenant, another bucket')
  const rejected = await chain.run(edgeRequest({ headers: { 'x-tenant': 'a' } }))
  assert.equal(rejected.response?.status, 429)
  assert.deepEqual(rejected.response?.body, { error: { code: 'rate_limited', message: 'too fast' } })
})

test('a non-local policy fails the build', () => {
  assert.throws(
    () => createPluginChain({ 'limit-req': { rate: 1, burst: 0, key: 'remote_addr', policy: 'redis' } }, { scope: 's' }),
    (error) => isImprunError(error, 'invalid_plugin_config'),
  )
})
