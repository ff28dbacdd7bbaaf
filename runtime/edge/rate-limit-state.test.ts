import { test } from 'node:test'
import assert from 'node:assert/strict'
import { confIdentity, createRateLimitState } from './rate-limit-state.ts'
import { edgeRequest, manualClock, validatedChain } from './test-support.ts'

test('fixed windows: expired windows are swept, so memory follows the clients of the current window', async () => {
  const clock = manualClock()
  const state = createRateLimitState()
  const chain = validatedChain({ 'limit-count': { count: 10, time_window: 1 } }, { clock, rateLimitState: state })
  const clientsPerWindow = 500
  let largest = 0
  for (let window = 0; window < 20; window += 1) {
    for (let client = 0; client < clientsPerWindow; client += 1) {
      // Every window brings new addresses: without pruning the state would reach 10,000 entries.
      await chain.run(edgeRequest({ clientIp: `10.${window}.${client >> 8}.${client & 255}` }))
      largest = Math.max(largest, state.size)
    }
    clock.advance(1_000)
  }
  assert.ok(largest <= 2 * clientsPerWindow, `at most two windows' worth of entries, saw ${largest}`)
  assert.equal(state.prune(clock.now()), clientsPerWindow, 'the last window expired with the clock')
  assert.equal(state.size, 0)
})

test('leaky buckets are dropped once they have drained', () => {
  const state = createRateLimitState()
  const start = 1_000_000
  for (let client = 0; client < 100; client += 1) {
    state.leakyBucket(`client-${client}`, 10, 5, start)
    state.leakyBucket(`client-${client}`, 10, 5, start) // excess 1: drains in (1 + 1) / 10 s
  }
  assert.equal(state.size, 100)
  assert.equal(state.prune(start + 199), 0, 'not drained yet')
  assert.equal(state.prune(start + 200), 100)
  assert.equal(state.size, 0)
})

test('maxEntries caps memory by dropping the least recently written counters', () => {
  const state = createRateLimitState({ maxEntries: 100 })
  for (let client = 0; client < 1_000; client += 1) state.fixedWindow(`client-${client}`, 5, 60_000, 1, 0)
  assert.equal(state.size, 100)
  // The newest counters survived: client-999 already counted one request.
  assert.equal(state.fixedWindow('client-999', 5, 60_000, 1, 0).remaining, 3)
})

test('sliding windows keep at most the current and the previous window per key', () => {
  const state = createRateLimitState()
  for (let second = 0; second < 100; second += 1) state.slidingWindow('key', 1_000, 10_000, 1, second * 1_000)
  assert.ok(state.size <= 2, `saw ${state.size}`)
})

test('confIdentity ignores key order and _meta, and changes with the limit', () => {
  assert.equal(confIdentity({ count: 1, time_window: 60 }), confIdentity({ time_window: 60, count: 1, _meta: { priority: 5 } }))
  assert.notEqual(confIdentity({ count: 1, time_window: 60 }), confIdentity({ count: 2, time_window: 60 }))
})
