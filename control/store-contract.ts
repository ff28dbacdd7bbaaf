/**
 * The store port's contract suite. Every Store adapter runs it: SQLite always, MongoDB when
 * MONGODB_URL is set. Each test gets a fresh store from `open` and closes it.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { isImprunError } from './errors.ts'
import type { ChangeEvent, Store, StoredDocument } from './ports.ts'

export interface StoreContractOptions {
  /** Opens a fresh, empty store; `cleanup` removes whatever it created. */
  open(): Promise<{ store: Store; cleanup(): Promise<void> }>
  /** Skips the whole suite with this reason (e.g. no MONGODB_URL). */
  skip?: string
}

type Person = StoredDocument & { name: string; age?: number; tags?: string[]; city?: string }

export function storeContract(adapter: string, options: StoreContractOptions): void {
  const withStore = (run: (store: Store) => Promise<void>) => async () => {
    const { store, cleanup } = await options.open()
    try {
      await run(store)
    } finally {
      await store.close()
      await cleanup()
    }
  }
  const it = (name: string, run: (store: Store) => Promise<void>) =>
    options.skip ? test(name, { skip: options.skip }, () => {}) : test(name, withStore(run))

  describe(`store contract: ${adapter}`, () => {
    it('inserts with a generated string id and reads back a copy', async (store) => {
      const people = store.system().collection<Person>('people')
      const inserted = await people.insertOne({ name: 'ada', tags: ['x'] })
      assert.equal(typeof inserted._id, 'string')
      assert.ok(inserted._id.length >= 16)
      const read = await people.findOne({ _id: inserted._id })
      assert.deepEqual(read, { _id: inserted._id, name: 'ada', tags: ['x'] })
      read!.tags!.push('mutated')
      assert.deepEqual((await people.findOne({ _id: inserted._id }))!.tags, ['x'])
    })

    it('stores the JSON form: undefined dropped, Dates as ISO strings', async (store) => {
      const things = store.system().collection('things')
      const at = new Date('2026-01-02T03:04:05.000Z')
      await things.insertOne({ _id: 'a', at, gone: undefined, nested: { n: 1 } })
      assert.deepEqual(await things.findOne({ _id: 'a' }), { _id: 'a', at: at.toISOString(), nested: { n: 1 } })
    })

    it('refuses a duplicate _id with already_exists and keeps the first', async (store) => {
      const people = store.system().collection<Person>('people')
      await people.insertOne({ _id: 'p1', name: 'ada' })
      await assert.rejects(people.insertOne({ _id: 'p1', name: 'bob' }), (error) => isImprunError(error, 'already_exists'))
      assert.equal((await people.findOne({ _id: 'p1' }))!.name, 'ada')
    })

    it('insertMany is all-or-nothing', async (store) => {
      const people = store.system().collection<Person>('people')
      await people.insertOne({ _id: 'p2', name: 'x' })
      await assert.rejects(
        people.insertMany([{ _id: 'p1', name: 'a' }, { _id: 'p2', name: 'b' }]),
        (error) => isImprunError(error, 'already_exists'),
      )
      assert.equal(await people.countDocuments({}), 1)
    })

    it('enforces unique indexes, also through updates', async (store) => {
      const people = store.system().collection<Person>('people')
      await people.createIndex({ name: 1 }, { unique: true })
      await people.createIndex({ name: 1 }, { unique: true })
      await people.insertOne({ _id: 'a', name: 'ada' })
      await people.insertOne({ _id: 'b', name: 'bob' })
      await assert.rejects(people.insertOne({ name: 'ada' }), (error) => isImprunError(error, 'already_exists'))
      await assert.rejects(people.updateOne({ _id: 'b' }, { $set: { name: 'ada' } }), (error) =>
        isImprunError(error, 'already_exists'),
      )
      assert.equal((await people.findOne({ _id: 'b' }))!.name, 'bob')
      assert.equal((await people.findOne({ name: 'ada' }))!._id, 'a')
    })

    it('finds with filters, sort, skip, limit and projection', async (store) => {
      const people = store.system().collection<Person>('people')
      await people.createIndex({ city: 1 })
      await people.insertMany([
        { _id: '1', name: 'ada', age: 36, city: 'london', tags: ['math'] },
        { _id: '2', name: 'bob', age: 25, city: 'paris', tags: ['art', 'math'] },
        { _id: '3', name: 'cy', age: 51, city: 'london' },
        { _id: '4', name: 'di', age: 19, city: 'rome', tags: [] },
      ])
      const names = (list: Person[]) => list.map((person) => person.name)
      assert.deepEqual(names(await people.find({ age: { $gte: 25 } }, { sort: { age: -1 } })), ['cy', 'ada', 'bob'])
      assert.deepEqual(names(await people.find({ city: 'london' }, { sort: { name: 1 } })), ['ada', 'cy'])
      assert.deepEqual(names(await people.find({ tags: 'math' }, { sort: { name: 1 } })), ['ada', 'bob'])
      assert.deepEqual(names(await people.find({ $or: [{ city: 'rome' }, { age: { $lt: 30 } }] }, { sort: { age: 1 } })), ['di', 'bob'])
      assert.deepEqual(names(await people.find({}, { sort: { age: 1 }, skip: 1, limit: 2 })), ['bob', 'ada'])
      assert.deepEqual(names(await people.find({ _id: { $in: ['4', '1'] } }, { sort: { _id: 1 } })), ['ada', 'di'])
      assert.deepEqual(names(await people.find({ tags: { $exists: false } })), ['cy'])
      const projected = await people.find({ _id: '1' }, { projection: { name: 1 } })
      assert.deepEqual(projected, [{ _id: '1', name: 'ada' }])
      assert.equal(await people.countDocuments({ city: 'london' }), 2)
      assert.equal(await people.countDocuments(), 4)
      assert.deepEqual(await people.find({ name: 'nobody' }), [])
      assert.equal(await store.system().collection('never-written').findOne({}), null)
    })

    it('refuses code-running operators in filters and updates', async (store) => {
      const people = store.system().collection<Person>('people')
      await people.insertOne({ _id: '1', name: 'ada' })
      await assert.rejects(people.find({ $where: 'this.name == "ada"' }), (error) => isImprunError(error, 'bad_request'))
      await assert.rejects(
        people.find({ $expr: { $function: { body: 'function(){return true}', args: [], lang: 'js' } } }),
        (error) => isImprunError(error, 'bad_request'),
      )
      await assert.rejects(people.updateOne({ _id: '1' }, { name: 'replacement' }), (error) => isImprunError(error, 'bad_request'))
      await assert.rejects(people.updateOne({ _id: '1' }, { $set: { _id: 'other' } }), (error) => isImprunError(error, 'bad_request'))
    })

    it('updates with operators and reports matched and modified counts', async (store) => {
      const people = store.system().collection<Person & { visits?: number; log?: string[] }>('people')
      await people.insertMany([
        { _id: '1', name: 'ada', age: 36 },
        { _id: '2', name: 'bob', age: 25 },
      ])
      assert.deepEqual(await people.updateOne({ _id: '1' }, { $inc: { visits: 2 }, $push: { log: 'a' } }), {
        matchedCount: 1,
        modifiedCount: 1,
        upsertedId: null,
      })
      assert.deepEqual(await people.updateOne({ _id: '1' }, { $set: { name: 'ada' } }), {
        matchedCount: 1,
        modifiedCount: 0,
        upsertedId: null,
      })
      const many = await people.updateMany({ age: { $gt: 0 } }, { $inc: { age: 1 } })
      assert.equal(many.matchedCount, 2)
      assert.equal(many.modifiedCount, 2)
      await people.updateOne({ _id: '1' }, { $unset: { visits: '' }, $pull: { log: 'a' } })
      assert.deepEqual(await people.findOne({ _id: '1' }), { _id: '1', name: 'ada', age: 37, log: [] })
      assert.deepEqual(await people.updateOne({ _id: 'none' }, { $set: { name: 'x' } }), {
        matchedCount: 0,
        modifiedCount: 0,
        upsertedId: null,
      })
    })

    it('skip and limit without a sort page in insertion order, with or without an _id filter', async (store) => {
      const pages = store.system().collection('pages')
      await pages.insertMany(['d', 'b', 'e', 'a', 'c'].map((_id, order) => ({ _id, order })))
      assert.deepEqual((await pages.find({}, { skip: 1, limit: 2 })).map((page) => page._id), ['b', 'e'])
      assert.deepEqual((await pages.find({}, { limit: 2, projection: { _id: 1 } })), [{ _id: 'd' }, { _id: 'b' }])
      assert.deepEqual((await pages.find({}, { skip: 3 })).map((page) => page._id), ['a', 'c'])
      assert.deepEqual((await pages.find({ _id: { $in: ['a', 'b', 'c'] } }, { skip: 1, limit: 1 })).map((page) => page._id), ['a'])
      assert.deepEqual((await pages.find({ order: { $gte: 1 } }, { skip: 1, limit: 2 })).map((page) => page._id), ['e', 'a'])
    })

    it('update operators that evaluate conditions or sort: $pull by query, $addToSet $each, $push $each $sort $slice', async (store) => {
      const scores = store.system().collection<StoredDocument & { results: Array<{ score: number }>; tags: string[] }>('scores')
      await scores.insertOne({ _id: 's', results: [{ score: 3 }, { score: 8 }, { score: 5 }], tags: ['a', 'b'] })
      await scores.updateOne({ _id: 's' }, { $pull: { results: { score: { $lt: 5 } }, tags: { $in: ['b', 'z'] } } })
      assert.deepEqual(await scores.findOne({ _id: 's' }), { _id: 's', results: [{ score: 8 }, { score: 5 }], tags: ['a'] })
      await scores.updateOne({ _id: 's' }, { $addToSet: { tags: { $each: ['a', 'c'] } }, $push: { results: { $each: [{ score: 9 }, { score: 1 }], $sort: { score: -1 }, $slice: 3 } } })
      assert.deepEqual(await scores.findOne({ _id: 's' }), { _id: 's', results: [{ score: 9 }, { score: 8 }, { score: 5 }], tags: ['a', 'c'] })
    })

    it('$set and $unset on dotted paths change one key of a nested object and keep the others', async (store) => {
      const environments = store.system().collection<StoredDocument & { plugins: Record<string, unknown> }>('environments')
      await environments.insertOne({ _id: 'prod', plugins: { 'key-auth': { header: 'apikey' }, cors: { max_age: 5 } } })
      const updated = await environments.findOneAndUpdate(
        { _id: 'prod' },
        { $set: { 'plugins.limit-count': { count: 2, rules: [{ count: 1 }] }, 'plugins.key-auth': { header: 'x-key' } }, $unset: { 'plugins.cors': '' } },
      )
      assert.deepEqual(updated, { _id: 'prod', plugins: { 'key-auth': { header: 'x-key' }, 'limit-count': { count: 2, rules: [{ count: 1 }] } } })
      await Promise.all([
        environments.updateOne({ _id: 'prod' }, { $set: { 'plugins.cors': {} } }),
        environments.updateOne({ _id: 'prod' }, { $unset: { 'plugins.limit-count': '' } }),
      ])
      assert.deepEqual(await environments.findOne({ _id: 'prod' }), { _id: 'prod', plugins: { 'key-auth': { header: 'x-key' }, cors: {} } })
    })

    it('upserts from the filter equality plus $setOnInsert', async (store) => {
      const counters = store.system().collection<StoredDocument & { kind: string; value: number; createdAt?: string }>('counters')
      const first = await counters.updateOne(
        { _id: 'c1', kind: 'history' },
        { $inc: { value: 1 }, $setOnInsert: { createdAt: 't0' } },
        { upsert: true },
      )
      assert.equal(first.upsertedId, 'c1')
      await counters.updateOne({ _id: 'c1', kind: 'history' }, { $inc: { value: 1 }, $setOnInsert: { createdAt: 't1' } }, { upsert: true })
      assert.deepEqual(await counters.findOne({ _id: 'c1' }), { _id: 'c1', kind: 'history', value: 2, createdAt: 't0' })
    })

    it('findOneAndUpdate returns before or after, honours sort, and upserts', async (store) => {
      const jobs = store.system().collection<StoredDocument & { phase: string; order: number; owner?: string }>('jobs')
      await jobs.insertMany([
        { _id: 'j1', phase: 'queued', order: 2 },
        { _id: 'j2', phase: 'queued', order: 1 },
      ])
      const claimed = await jobs.findOneAndUpdate({ phase: 'queued' }, { $set: { phase: 'running', owner: 'w1' } }, { sort: { order: 1 } })
      assert.equal(claimed!._id, 'j2')
      assert.equal(claimed!.phase, 'running')
      const before = await jobs.findOneAndUpdate({ _id: 'j1' }, { $set: { phase: 'done' } }, { returnDocument: 'before' })
      assert.equal(before!.phase, 'queued')
      assert.equal(await jobs.findOneAndUpdate({ _id: 'missing' }, { $set: { phase: 'x' } }), null)
      const upserted = await jobs.findOneAndUpdate({ _id: 'j3' }, { $set: { phase: 'new', order: 3 } }, { upsert: true })
      assert.deepEqual(upserted, { _id: 'j3', phase: 'new', order: 3 })
    })

    it('findOneAndUpdate is atomic: of many racing claims exactly one wins', async (store) => {
      const jobs = store.system().collection<StoredDocument & { lockedBy: string | null }>('jobs')
      await jobs.insertOne({ _id: 'job', lockedBy: null })
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, index) =>
          jobs.findOneAndUpdate({ _id: 'job', lockedBy: null }, { $set: { lockedBy: `w${index}` } }),
        ),
      )
      const winners = results.filter((result) => result !== null)
      assert.equal(winners.length, 1)
      assert.equal((await jobs.findOne({ _id: 'job' }))!.lockedBy, winners[0]!.lockedBy)
    })

    it('replaceOne keeps _id and can upsert', async (store) => {
      const people = store.system().collection<Person>('people')
      await people.insertOne({ _id: '1', name: 'ada', age: 3 })
      const replaced = await people.replaceOne({ _id: '1' }, { name: 'ada lovelace' })
      assert.equal(replaced.modifiedCount, 1)
      assert.deepEqual(await people.findOne({ _id: '1' }), { _id: '1', name: 'ada lovelace' })
      const upserted = await people.replaceOne({ _id: '2' }, { name: 'bob' }, { upsert: true })
      assert.equal(upserted.upsertedId, '2')
      assert.deepEqual(await people.findOne({ _id: '2' }), { _id: '2', name: 'bob' })
    })

    it('deletes one or many', async (store) => {
      const people = store.system().collection<Person>('people')
      await people.insertMany([
        { _id: '1', name: 'a', city: 'x' },
        { _id: '2', name: 'b', city: 'x' },
        { _id: '3', name: 'c', city: 'y' },
      ])
      assert.equal(await people.deleteOne({ city: 'x' }), 1)
      assert.equal(await people.deleteMany({ city: { $in: ['x', 'y'] } }), 2)
      assert.equal(await people.deleteMany({}), 0)
      assert.equal(await people.countDocuments({}), 0)
    })

    it('commits a transaction as a whole and rolls it back on error', async (store) => {
      const database = store.system()
      await database.collection('a').insertOne({ _id: 'seed' })
      await database.transaction(async (transaction) => {
        await transaction.collection('a').insertOne({ _id: 'x' })
        await transaction.collection('b').insertOne({ _id: 'y' })
      })
      assert.equal(await database.collection('a').countDocuments({}), 2)
      await assert.rejects(
        database.transaction(async (transaction) => {
          await transaction.collection('a').insertOne({ _id: 'z' })
          await transaction.collection('b').updateOne({ _id: 'y' }, { $set: { touched: true } })
          throw new Error('abort')
        }),
        /abort/,
      )
      assert.equal(await database.collection('a').findOne({ _id: 'z' }), null)
      assert.deepEqual(await database.collection('b').findOne({ _id: 'y' }), { _id: 'y' })
      await assert.rejects(
        database.transaction(async (transaction) => {
          await transaction.collection('a').insertOne({ _id: 'w' })
          await transaction.collection('a').insertOne({ _id: 'seed' })
        }),
        (error) => isImprunError(error, 'already_exists'),
      )
      assert.equal(await database.collection('a').findOne({ _id: 'w' }), null)
    })

    it('does not lose a write made outside a transaction that later rolls back', async (store) => {
      const database = store.system()
      let inside!: () => void
      const entered = new Promise<void>((resolve) => (inside = resolve))
      const failing = database.transaction(async (transaction) => {
        await transaction.collection('a').insertOne({ _id: 'in-tx' })
        inside()
        await new Promise((resolve) => setTimeout(resolve, 30))
        throw new Error('roll back')
      })
      await entered
      await database.collection('a').insertOne({ _id: 'outside' })
      await assert.rejects(failing, /roll back/)
      assert.deepEqual(
        (await database.collection('a').find({})).map((document) => document._id),
        ['outside'],
      )
    })

    it('keeps gateway databases apart and drops one whole', async (store) => {
      await store.gateway('alpha').collection('calcs').insertOne({ _id: '1', owner: 'alpha' })
      await store.gateway('beta').collection('calcs').insertOne({ _id: '1', owner: 'beta' })
      assert.equal((await store.gateway('alpha').collection('calcs').findOne({ _id: '1' }))!.owner, 'alpha')
      assert.equal((await store.gateway('beta').collection('calcs').findOne({ _id: '1' }))!.owner, 'beta')
      assert.deepEqual(await store.gateway('alpha').listCollections(), ['calcs'])
      await store.dropGateway('alpha')
      await store.dropGateway('alpha')
      assert.equal(await store.gateway('alpha').collection('calcs').findOne({ _id: '1' }), null)
      assert.equal((await store.gateway('beta').collection('calcs').findOne({ _id: '1' }))!.owner, 'beta')
    })

    it('refuses invalid collection names and gateway ids', async (store) => {
      assert.throws(() => store.system().collection('bad name'), (error) => isImprunError(error, 'bad_request'))
      assert.throws(() => store.system().collection('$cmd'), (error) => isImprunError(error, 'bad_request'))
      assert.throws(() => store.gateway('../etc'), (error) => isImprunError(error, 'invalid_name'))
    })

    it('streams committed changes in order, filtered and resumable', async (store) => {
      const database = store.gateway('feed')
      await database.collection('deployments').insertOne({ _id: 'warmup' })
      const stream = database.watch({ collections: ['deployments'] })
      const seen: ChangeEvent[] = []
      const collecting = (async () => {
        for await (const event of stream) {
          seen.push(event)
          if (seen.length === 3) break
        }
      })()
      await new Promise((resolve) => setTimeout(resolve, 100))
      const deployments = database.collection('deployments')
      await deployments.insertOne({ _id: 'dev/a', version: 1 })
      await database.collection('other').insertOne({ _id: 'ignored' })
      await deployments.updateOne({ _id: 'dev/a' }, { $set: { version: 2 } })
      await deployments.deleteOne({ _id: 'dev/a' })
      await withTimeout(collecting, 5000)
      await stream.close()
      assert.deepEqual(
        seen.map((event) => (event.type === 'reset' ? 'reset' : `${event.type}:${event.collection}:${event.id}`)),
        ['insert:deployments:dev/a', 'update:deployments:dev/a', 'delete:deployments:dev/a'],
      )
      const first = seen[0]!
      assert.ok(first.type === 'insert' && first.document !== undefined)

      const resumed = database.watch({ collections: ['deployments'], after: first.token })
      const again: string[] = []
      await withTimeout(
        (async () => {
          for await (const event of resumed) {
            again.push(event.type)
            if (again.length === 2) break
          }
        })(),
        5000,
      )
      await resumed.close()
      assert.deepEqual(again, ['update', 'delete'])
    })

    it('delivers transaction writes to watchers only after commit', async (store) => {
      const database = store.gateway('txfeed')
      await database.collection('deployments').insertOne({ _id: 'warmup' })
      const stream = database.watch({ collections: ['deployments'] })
      const seen: string[] = []
      const collecting = (async () => {
        for await (const event of stream) {
          if (event.type !== 'reset') seen.push(event.id)
          if (seen.length === 2) break
        }
      })()
      await new Promise((resolve) => setTimeout(resolve, 100))
      await assert.rejects(
        database.transaction(async (transaction) => {
          await transaction.collection('deployments').insertOne({ _id: 'rolled-back' })
          throw new Error('no')
        }),
      )
      await database.transaction(async (transaction) => {
        await transaction.collection('deployments').insertOne({ _id: 'one' })
        await transaction.collection('deployments').insertOne({ _id: 'two' })
      })
      await withTimeout(collecting, 5000)
      await stream.close()
      assert.deepEqual(seen, ['one', 'two'])
    })
  })
}

async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer!: NodeJS.Timeout
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}
