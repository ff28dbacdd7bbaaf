import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, test } from 'node:test'
import { isImprunError } from '../../errors.ts'
import { storeContract } from '../../store-contract.ts'
import { createMongoStore } from './mongodb-store.ts'
import { dropMongoDatabases } from './testing/drop-databases.ts'

const url = process.env.MONGODB_URL

storeContract('mongodb', {
  ...(url ? {} : { skip: 'MONGODB_URL is not set' }),
  async open() {
    if (!url) throw new Error('MONGODB_URL is not set')
    const databasePrefix = `t${randomBytes(6).toString('hex')}`
    return {
      store: createMongoStore({ url, databasePrefix }),
      cleanup: () => dropMongoDatabases(url, databasePrefix),
    }
  },
})

describe('mongodb store without a server', () => {
  const unreachable = 'mongodb://127.0.0.1:1'

  test('refuses a bad gateway id synchronously', async () => {
    const store = createMongoStore({ url: unreachable })
    try {
      assert.throws(() => store.gateway('Bad_ID'), (error) => isImprunError(error, 'invalid_name'))
      assert.throws(() => store.gateway('a'.repeat(41)), (error) => isImprunError(error, 'invalid_name'))
      await assert.rejects(store.dropGateway('../etc'), (error) => isImprunError(error, 'invalid_name'))
      assert.equal(store.gateway('a'.repeat(40)).name, `gateway:${'a'.repeat(40)}`)
    } finally {
      await store.close()
    }
  })

  test('refuses a database prefix that leaves no room for gateway ids', () => {
    assert.throws(() => createMongoStore({ url: unreachable, databasePrefix: 'p'.repeat(20) }), (error) =>
      isImprunError(error, 'invalid_name'),
    )
    assert.throws(() => createMongoStore({ url: unreachable, databasePrefix: 'bad.prefix' }), (error) =>
      isImprunError(error, 'invalid_name'),
    )
  })

  test('refuses an invalid URL', () => {
    assert.throws(() => createMongoStore({ url: 'http://example.com' }), (error) => isImprunError(error, 'bad_request'))
  })

  test('refuses bad filters, updates and tokens before contacting the server', async () => {
    const store = createMongoStore({ url: unreachable, serverSelectionTimeoutMs: 500 })
    try {
      const people = store.system().collection('people')
      const badRequest = (error: unknown) => isImprunError(error, 'bad_request')
      await assert.rejects(people.find({ $where: 'true' }), badRequest)
      await assert.rejects(people.find({ $expr: { $function: { body: 'x', args: [], lang: 'js' } } }), badRequest)
      await assert.rejects(people.updateOne({ _id: '1' }, { name: 'replacement' }), badRequest)
      await assert.rejects(people.updateOne({ _id: '1' }, { $set: { _id: 'other' } }), badRequest)
      await assert.rejects(people.updateOne({ _id: 1 }, { $set: { a: 1 } }, { upsert: true }), badRequest)
      await assert.rejects(people.replaceOne({ _id: '1' }, { $set: { a: 1 } }), badRequest)
      await assert.rejects(people.find({}, { projection: { a: 'x' as unknown as 1 } }), badRequest)
      await assert.rejects(people.createIndex({ 'bad field': 1 }), badRequest)
      assert.throws(() => store.system().collection('$cmd'), badRequest)
      const stream = store.system().watch({ after: '42' })
      await assert.rejects(stream[Symbol.asyncIterator]().next(), badRequest)
      await stream.close()
    } finally {
      await store.close()
    }
  })

  test('reports an unreachable server as store_unavailable, and a closed store too', async () => {
    const store = createMongoStore({ url: unreachable, serverSelectionTimeoutMs: 500 })
    await assert.rejects(
      store.system().collection('people').findOne({}),
      (error) => isImprunError(error, 'store_unavailable') && error.retryable,
    )
    await assert.rejects(
      store.system().collection('people').insertMany([{ _id: 'a' }, { _id: 'b' }]),
      (error) => isImprunError(error, 'store_unavailable') && error.retryable,
    )
    await store.close()
    assert.throws(() => store.system(), (error) => isImprunError(error, 'store_unavailable'))
  })

  test('a change stream on an unreachable server keeps retrying until closed', async () => {
    const store = createMongoStore({ url: unreachable, serverSelectionTimeoutMs: 100, maxReconnectDelayMs: 50 })
    try {
      const controller = new AbortController()
      const stream = store.gateway('feed').watch({ signal: controller.signal })
      const iterating = (async () => {
        const seen = []
        for await (const event of stream) seen.push(event)
        return seen
      })()
      await new Promise((resolve) => setTimeout(resolve, 400))
      controller.abort()
      assert.deepEqual(await iterating, [])
    } finally {
      await store.close()
    }
  })
})
