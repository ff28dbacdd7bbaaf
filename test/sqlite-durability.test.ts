/**
 * The SQLite store across real processes: what a resolved write promises survives `kill -9`,
 * the change feed reaches another process in commit order, and `findOneAndUpdate` stays atomic
 * between processes. Each test has its own temp folder and its own children, and kills them.
 */
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import { createSqliteStore } from '../control/adapters/sqlite/sqlite-store.ts'
import type { ChangeEvent, StoredDocument } from '../control/ports.ts'
import { durableGatewayId, plannedOperation } from './fixtures/durable-plan.ts'
import { pollUntil, startFixture } from './support/fixture-process.ts'

async function temporaryDirectory(t: TestContext, prefix: string): Promise<string> {
  const directory = await mkdtemp(join(tmpdir(), `imprun-${prefix}-`))
  t.after(() => rm(directory, { recursive: true, force: true }))
  return directory
}

interface Acknowledgement {
  operation: number
  kind: string
  counter?: number
}

/**
 * Three kill points: two anywhere in the stream (the writer cycles through ten kinds of write, so
 * these land on different kinds and, with the writer's own timing, anywhere inside one), and one
 * certainly inside a transaction, between its two writes.
 */
const killPoints = [
  { name: 'after 300 acknowledgements', acknowledgements: 300 },
  { name: 'inside transaction 458, between its writes', holdTransactionAt: 458 },
  { name: 'after 613 acknowledgements', acknowledgements: 613 },
]

for (const killPoint of killPoints) {
  test(`acknowledged writes survive kill -9 (${killPoint.name})`, async (t) => {
    const directory = await temporaryDirectory(t, 'durability')
    const environment: Record<string, string> = { IMPRUN_TEST_DIRECTORY: directory }
    if (killPoint.holdTransactionAt !== undefined) {
      assert.equal(plannedOperation(killPoint.holdTransactionAt).kind, 'transaction')
      environment.IMPRUN_TEST_HOLD_TRANSACTION_AT = String(killPoint.holdTransactionAt)
    }
    const writer = startFixture('durable-writer', { environment })
    t.after(() => writer.kill())

    await writer.waitFor(
      killPoint.name,
      (message) =>
        killPoint.acknowledgements !== undefined
          ? writer.messages.length >= killPoint.acknowledgements || undefined
          : message.holding === killPoint.holdTransactionAt || undefined,
      30_000,
    )
    await writer.kill()
    assert.equal(writer.child.signalCode, 'SIGKILL', `the writer must die by the kill, not on its own:\n${writer.stderr()}`)

    // Every line the writer printed before dying, in order: operation 0, 1, 2, … without a gap.
    const acknowledged = writer.messages.filter((message) => message.holding === undefined) as unknown as Acknowledgement[]
    acknowledged.forEach((acknowledgement, index) => assert.equal(acknowledgement.operation, index))
    const lastAcknowledged = acknowledged.length - 1

    const store = createSqliteStore({ directory })
    t.after(() => store.close())
    const database = store.gateway(durableGatewayId)
    const items = new Set((await database.collection('items').find({})).map((document) => document._id))
    const ledger = new Set((await database.collection('ledger').find({})).map((document) => document._id))
    const counter = (await database.collection('counters').findOne({ _id: 'counter' })) as
      | (StoredDocument & { value: number; lastOperation: number })
      | null

    // Which planned writes committed, read from the data alone; transactions and batches must be
    // all or nothing.
    const horizon = lastAcknowledged + 1000
    let committedThrough = counter?.lastOperation ?? -1
    const committed = new Map<number, boolean>()
    for (let operation = 0; operation <= horizon; operation++) {
      const planned = plannedOperation(operation)
      if (planned.kind === 'increment') continue
      let present: boolean
      if (planned.kind === 'insert') {
        present = items.has(planned.id)
      } else if (planned.kind === 'transaction') {
        present = items.has(planned.ids[0])
        assert.equal(ledger.has(planned.ids[1]), present, `transaction ${operation} is half-applied`)
      } else {
        const found = planned.ids.filter((id) => items.has(id)).length
        assert.ok(found === 0 || found === planned.ids.length, `batch ${operation} is half-applied (${found} of 3)`)
        present = found > 0
      }
      committed.set(operation, present)
      if (present) committedThrough = Math.max(committedThrough, operation)
    }

    // Acknowledged means committed …
    assert.ok(
      committedThrough >= lastAcknowledged,
      `operation ${lastAcknowledged} was acknowledged but the data only reaches operation ${committedThrough}`,
    )
    for (const acknowledgement of acknowledged) {
      if (acknowledgement.kind === 'increment') continue
      assert.ok(committed.get(acknowledgement.operation), `acknowledged operation ${acknowledgement.operation} is lost`)
    }
    const lastCounter = acknowledged.findLast((acknowledgement) => acknowledgement.counter !== undefined)?.counter ?? 0
    assert.ok((counter?.value ?? 0) >= lastCounter, `counter ${counter?.value} is behind the acknowledged ${lastCounter}`)

    // … and what committed is exactly a prefix of the plan: no gaps, no stray writes, and the
    // counter holds exactly the increments up to where the data ends.
    let increments = 0
    let lastIncrement = -1
    let expectedItems = 0
    let expectedLedger = 0
    for (let operation = 0; operation <= committedThrough; operation++) {
      const planned = plannedOperation(operation)
      if (planned.kind === 'increment') {
        increments++
        lastIncrement = operation
        continue
      }
      assert.ok(committed.get(operation), `operation ${operation} is missing although operation ${committedThrough} committed`)
      expectedItems += planned.kind === 'insert' ? 1 : planned.kind === 'transaction' ? 1 : 3
      if (planned.kind === 'transaction') expectedLedger++
    }
    assert.equal(items.size, expectedItems, 'items holds documents from outside the committed prefix')
    assert.equal(ledger.size, expectedLedger, 'ledger holds documents from outside the committed prefix')
    assert.equal(counter?.value ?? 0, increments, 'the counter does not match the committed increments')
    assert.equal(counter?.lastOperation ?? -1, lastIncrement, 'the counter was last changed by the wrong operation')
    if (killPoint.holdTransactionAt !== undefined) {
      // The held transaction was open when the writer died, and nothing ran after it.
      assert.equal(lastAcknowledged, killPoint.holdTransactionAt - 1)
      assert.equal(committedThrough, lastAcknowledged, 'the interrupted transaction left a write behind')
    }
    t.diagnostic(`acknowledged through operation ${lastAcknowledged}; committed through operation ${committedThrough}`)
  })
}

test('processes opening one new store at the same moment all get it', async (t) => {
  // Regression: switching a new file to WAL bypasses the busy timeout, so one of two processes
  // opening the same new file together used to fail at once with "database is locked" (in about
  // half the rounds; two openers collide more often than three on a two-core machine).
  for (let round = 0; round < 5; round++) {
    const directory = await temporaryDirectory(t, 'open')
    const at = Date.now() + 600
    const names = ['opener-a', 'opener-b']
    const openers = names.map((name) =>
      startFixture('store-opener', {
        environment: { IMPRUN_TEST_DIRECTORY: directory, IMPRUN_TEST_OPENER: name, IMPRUN_TEST_OPEN_AT: String(at) },
      }),
    )
    t.after(() => Promise.all(openers.map((opener) => opener.kill())))
    await Promise.all(
      openers.map((opener) => opener.waitFor('opened', (message) => (message.opened ? true : undefined), 15_000)),
    )
    const store = createSqliteStore({ directory })
    try {
      const inSystem = await store.system().collection('openers').find({}, { sort: { _id: 1 } })
      const inGateway = await store.gateway('shared').collection('openers').find({}, { sort: { _id: 1 } })
      assert.deepEqual(inSystem.map((document) => document._id), names)
      assert.deepEqual(inGateway.map((document) => document._id), names)
    } finally {
      await store.close()
    }
  }
})

test('the change feed carries another process’s writes in commit order', async (t) => {
  const directory = await temporaryDirectory(t, 'feed')
  const store = createSqliteStore({ directory })
  t.after(() => store.close())
  const database = store.gateway('feed')
  // The database is fresh, so token 0 is "before the writer's first change", whenever the
  // iteration below gets going relative to the writer.
  const stream = database.watch({ collections: ['deployments'], after: '0' })
  t.after(() => stream.close())
  const events: ChangeEvent[] = []
  const following = (async () => {
    for await (const event of stream) events.push(event)
  })()

  const writer = startFixture('change-writer', {
    environment: { IMPRUN_TEST_DIRECTORY: directory, IMPRUN_TEST_GATEWAY: 'feed' },
  })
  t.after(() => writer.kill())
  await writer.waitFor('the end of the script', (message) => (message.done ? true : undefined), 20_000)
  const expected = writer.messages
    .filter((message) => message.collection === 'deployments')
    .map((message) => ({ type: message.type, id: message.id }))
  assert.ok(expected.length > 100, 'the script is long enough to mean something')

  await pollUntil('every change to reach the watcher', async () => (events.length >= expected.length ? true : undefined), 10_000, 10)
  // Anything beyond the script (a duplicate, an echo) would arrive about now.
  await new Promise((resolve) => setTimeout(resolve, 150))
  await stream.close()
  await following

  assert.deepEqual(
    events.map((event) => (event.type === 'reset' ? { type: 'reset', id: null } : { type: event.type, id: event.id })),
    expected,
  )
  const tokens = events.map((event) => Number(event.token))
  assert.ok(tokens.every((token, index) => index === 0 || token > tokens[index - 1]!), 'tokens increase')
  const deleted = new Set(expected.filter((change) => change.type === 'delete').map((change) => change.id))
  for (const event of events) {
    if (event.type === 'reset') continue
    assert.equal(event.collection, 'deployments')
    // The document is looked up after the change; it is there unless the writer deleted it.
    if (event.type !== 'delete' && !deleted.has(event.id)) assert.equal(event.document?._id, event.id)
    if (event.type === 'delete') assert.equal(event.document, undefined)
  }
})

test('two processes racing findOneAndUpdate on one document: exactly one wins', async (t) => {
  const directory = await temporaryDirectory(t, 'race')
  const store = createSqliteStore({ directory })
  t.after(() => store.close())
  const jobs = store.system().collection('jobs')
  await jobs.insertOne({ _id: 'job', owner: null, round: null })

  const racers = ['racer-a', 'racer-b'].map((name) =>
    startFixture('claim-racer', { environment: { IMPRUN_TEST_DIRECTORY: directory, IMPRUN_TEST_RACER: name } }),
  )
  t.after(() => Promise.all(racers.map((racer) => racer.kill())))
  await Promise.all(racers.map((racer) => racer.waitFor('ready', (message) => (message.ready ? true : undefined), 10_000)))

  const wins = new Map<string, number>()
  for (let round = 0; round < 25; round++) {
    await jobs.updateOne({ _id: 'job' }, { $set: { owner: null, round: null } })
    const at = Date.now() + 25
    for (const racer of racers) racer.send({ round, at })
    const results = await Promise.all(
      racers.map((racer) =>
        racer.waitFor(`round ${round}`, (message) => (message.round === round ? message : undefined), 10_000),
      ),
    )
    const winners = results.filter((result) => result.won)
    assert.equal(winners.length, 1, `round ${round}: ${JSON.stringify(results)}`)
    const owner = winners[0]!.owner as string
    const stored = await jobs.findOne({ _id: 'job' })
    assert.deepEqual(stored, { _id: 'job', owner, round }, `round ${round}: the stored owner is the winner`)
    wins.set(owner, (wins.get(owner) ?? 0) + 1)
  }
  t.diagnostic(`wins: ${JSON.stringify(Object.fromEntries(wins))}`)
})
