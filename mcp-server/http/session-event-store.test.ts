import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js'
import { SessionEventStore } from './session-event-store.ts'

const note = (n: number): JSONRPCMessage => ({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: `line ${n}` } })

async function replay(store: SessionEventStore, after: string) {
  const sent: Array<[string, JSONRPCMessage]> = []
  const stream = await store.replayEventsAfter(after, { send: async (id, message) => void sent.push([id, message]) })
  return { stream, sent }
}

test('replays the events of the same stream after the given one, skipping priming events', async () => {
  const store = new SessionEventStore()
  const priming = await store.storeEvent('a', {} as JSONRPCMessage)
  const first = await store.storeEvent('a', note(1))
  await store.storeEvent('b', note(2))
  const third = await store.storeEvent('a', note(3))
  assert.equal(await store.getStreamIdForEventId(first), 'a')
  const { stream, sent } = await replay(store, priming)
  assert.equal(stream, 'a')
  assert.deepEqual(sent, [[first, note(1)], [third, note(3)]])
  assert.deepEqual((await replay(store, third)).sent, [])
})

test('bounded by count, bytes and age; a dropped event is unknown', async () => {
  let now = 0
  const store = new SessionEventStore({ maxEvents: 3, maxBytes: 10_000, retentionMs: 1000 }, () => now)
  const ids = []
  for (let n = 0; n < 5; n++) ids.push(await store.storeEvent('s', note(n)))
  assert.equal(store.size, 3)
  assert.equal(await store.getStreamIdForEventId(ids[1]!), undefined)
  await assert.rejects(replay(store, ids[1]!), /no longer kept/)
  now = 2000
  assert.equal(await store.getStreamIdForEventId(ids[4]!), undefined, 'too old')
  assert.equal(store.size, 0)

  const small = new SessionEventStore({ maxBytes: 300 })
  for (let n = 0; n < 10; n++) await small.storeEvent('s', note(n))
  assert.ok(small.size < 10 && small.size > 0)
})
