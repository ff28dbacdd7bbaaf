/**
 * The cluster store: MongoDB through the official driver. The system database is `<prefix>`,
 * each gateway has its own database `<prefix>_gw_<gatewayId>`. Documents are stored in their
 * JSON form with string `_id`s, so they read back exactly as from the SQLite adapter.
 *
 * Needs MongoDB 5.0 or later running as a replica set (a single-node one will do):
 * transactions, all-or-nothing `insertMany` and change streams do not exist on a standalone
 * server. Where MongoDB and the SQLite adapter would differ, this adapter bends towards SQLite:
 * - unique indexes are partial (`$exists: true` on every field), so any number of documents may
 *   lack an indexed field, as with SQLite's NULLs; two explicit `null`s still collide here;
 * - `$currentDate` is rewritten to `$set` of an ISO string (or epoch ms for `timestamp`);
 * - reads turn any non-JSON BSON value (a Date, a Long written by someone else) into JSON;
 * - inside a transaction, `createIndex` and `dropCollection` take effect after the commit
 *   (MongoDB refuses that DDL in a transaction); `dropCollection` empties the collection
 *   inside the transaction right away;
 * - a server error inside a transaction aborts it (MongoDB does so), even if `work` catches it.
 * Without `sort`, `find` returns documents in MongoDB's natural order, not insertion order.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import {
  BSON,
  MongoClient,
  MongoClientClosedError,
  MongoError,
  MongoInvalidArgumentError,
  MongoNetworkError,
  MongoServerError,
  MongoServerSelectionError,
  MongoTopologyClosedError,
  MongoWriteConcernError,
  WriteConcern,
  type ChangeStream as DriverChangeStream,
  type ClientSession,
  type Collection as DriverCollection,
  type Db,
  type Document,
  type Filter as DriverFilter,
  type TransactionOptions,
  type UpdateFilter,
  type UpdateResult as DriverUpdateResult,
} from 'mongodb'
import { ImprunError } from '../../errors.ts'
import type {
  ChangeEvent,
  ChangeStream,
  Collection,
  Database,
  Filter,
  FindOneAndUpdateOptions,
  FindOptions,
  IndexOptions,
  Store,
  StoredDocument,
  Update,
  UpdateResult,
  WatchOptions,
} from '../../ports.ts'
import {
  assertCollectionName,
  assertNoCodeOperators,
  assertUpdateOperators,
  duplicateKeyError,
  indexFieldPattern,
  newDocumentId,
  prepareInsert,
  toJsonValue,
  upsertSeed,
} from '../document-helpers.ts'

export interface MongoStoreOptions {
  /** Connection string, e.g. `mongodb://db-0,db-1,db-2/?replicaSet=rs0`. */
  url: string
  /** Name of the system database and prefix of the gateway databases (default `imprun`). */
  databasePrefix?: string
  /** How long an operation waits for a usable server before `store_unavailable` (default 30,000 ms). */
  serverSelectionTimeoutMs?: number
  /** Longest pause between attempts to reopen a broken change stream (default 5,000 ms). */
  maxReconnectDelayMs?: number
}

/**
 * A Store on MongoDB. Connects on first use; `close()` closes the connection pool.
 * The server must be a replica set: `transaction`, multi-document `insertMany` and `watch`
 * fail on a standalone server.
 */
export function createMongoStore(options: MongoStoreOptions): Store {
  return new MongoStore(options)
}

const gatewayIdPattern = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/
const maxGatewayIdLength = 40
const prefixPattern = /^[A-Za-z0-9_-]+$/
/** MongoDB database names are shorter than 64 bytes. */
const maxDatabaseNameBytes = 63

const transactionOptions: TransactionOptions = {
  readConcern: { level: 'snapshot' },
  writeConcern: new WriteConcern('majority'),
  readPreference: 'primary',
}

class MongoStore implements Store {
  readonly kind = 'mongodb' as const
  readonly client: MongoClient
  readonly prefix: string
  readonly maxReconnectDelayMs: number
  readonly streams = new Set<MongoChangeStream>()
  closed = false
  private connecting: Promise<void> | null = null

  constructor(options: MongoStoreOptions) {
    const prefix = options.databasePrefix ?? 'imprun'
    if (!prefixPattern.test(prefix)) {
      throw new ImprunError('invalid_name', `invalid database prefix '${prefix}': use A-Z a-z 0-9 _ -`)
    }
    const longest = Buffer.byteLength(`${prefix}_gw_`) + maxGatewayIdLength
    if (longest > maxDatabaseNameBytes) {
      throw new ImprunError(
        'invalid_name',
        `database prefix '${prefix}' is too long: '<prefix>_gw_<gateway id>' must fit in ${maxDatabaseNameBytes} bytes with ${maxGatewayIdLength}-character gateway ids, so the prefix may have at most ${maxDatabaseNameBytes - maxGatewayIdLength - 4}`,
      )
    }
    this.prefix = prefix
    this.maxReconnectDelayMs = options.maxReconnectDelayMs ?? 5_000
    try {
      this.client = new MongoClient(options.url, {
        appName: 'imprun',
        // No ignoreUndefined: `{owner: undefined}` in a filter must mean null-or-missing (as in
        // mingo), not vanish and match everything. Documents and updates are JSON already.
        ...(options.serverSelectionTimeoutMs === undefined
          ? {}
          : { serverSelectionTimeoutMS: options.serverSelectionTimeoutMs }),
      })
    } catch (error) {
      throw new ImprunError('bad_request', `invalid MongoDB URL: ${(error as Error).message}`, { cause: error })
    }
  }

  system(): Database {
    this.assertOpen()
    return new MongoDatabase(new DatabaseContext(this, this.client.db(this.prefix), 'system', null))
  }

  gateway(gatewayId: string): Database {
    assertGatewayId(gatewayId)
    this.assertOpen()
    const database = this.client.db(this.gatewayDatabaseName(gatewayId))
    return new MongoDatabase(new DatabaseContext(this, database, `gateway:${gatewayId}`, null))
  }

  async dropGateway(gatewayId: string): Promise<void> {
    assertGatewayId(gatewayId)
    await this.use(`gateway:${gatewayId}`, async () => {
      await this.client.db(this.gatewayDatabaseName(gatewayId)).dropDatabase()
    })
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await Promise.all([...this.streams].map((stream) => stream.close()))
    await this.client.close()
  }

  assertOpen(): void {
    if (this.closed) throw new ImprunError('store_unavailable', 'the store is closed')
  }

  /** Runs one driver call on a connected client; whatever the driver throws is mapped. */
  async use<R>(collection: string, operation: () => Promise<R>): Promise<R> {
    try {
      await this.connect()
      return await operation()
    } catch (error) {
      throw mapMongoError(error, collection, this.closed)
    }
  }

  /**
   * Runs `work` in a transaction, retried by the driver on transient errors. Errors come out
   * unmapped: `work` must leave transient driver errors as they are so that the driver retries.
   */
  inTransaction<R>(work: (session: ClientSession) => Promise<R>): Promise<R> {
    return this.client.withSession((session) => session.withTransaction(() => work(session), transactionOptions))
  }

  async transaction<R>(context: DatabaseContext, work: (transaction: Database) => Promise<R>): Promise<R> {
    let afterCommit: Array<() => Promise<void>> = []
    const result = await this.use(context.name, () =>
      this.inTransaction(async (session) => {
        const state = new TransactionState(session)
        try {
          const value = await work(new MongoDatabase(new DatabaseContext(this, context.database, context.name, state)))
          await state.settled()
          if (state.failure) throw state.failure
          afterCommit = [...state.afterCommit.values()]
          return value
        } finally {
          state.finished = true
        }
      }),
    )
    for (const action of afterCommit) await this.use(context.name, action)
    return result
  }

  connect(): Promise<void> {
    this.assertOpen()
    this.connecting ??= this.client.connect().then(
      () => undefined,
      (error: unknown) => {
        this.connecting = null
        throw error
      },
    )
    return this.connecting
  }

  private gatewayDatabaseName(gatewayId: string): string {
    return `${this.prefix}_gw_${gatewayId}`
  }
}

function assertGatewayId(gatewayId: string): void {
  if (!gatewayIdPattern.test(gatewayId) || gatewayId.length > maxGatewayIdLength) {
    throw new ImprunError('invalid_name', `invalid gateway id '${gatewayId}'`)
  }
}

/** The open transaction behind a transaction handle (one per attempt of the driver). */
class TransactionState {
  readonly session: ClientSession
  /** The first server error: MongoDB has aborted the transaction, so it cannot commit. */
  failure: ImprunError | null = null
  finished = false
  /** DDL that MongoDB refuses inside a transaction, applied after the commit, by key. */
  readonly afterCommit = new Map<string, () => Promise<void>>()
  private tail: Promise<void> = Promise.resolve()

  constructor(session: ClientSession) {
    this.session = session
  }

  /** One operation at a time: the driver does not support parallel operations in a transaction. */
  async serialize<R>(operation: () => Promise<R>): Promise<R> {
    const previous = this.tail
    let release!: () => void
    this.tail = new Promise<void>((resolve) => (release = resolve))
    await previous
    try {
      return await operation()
    } finally {
      release()
    }
  }

  /** Resolves once every queued operation has run. */
  async settled(): Promise<void> {
    let tail: Promise<void>
    do {
      tail = this.tail
      await tail
    } while (tail !== this.tail)
  }
}

/** What a Database handle works on: a driver database, and the transaction it is bound to. */
class DatabaseContext {
  readonly store: MongoStore
  readonly database: Db
  /** Logical name, as the SQLite adapter reports it: `system` or `gateway:<id>`. */
  readonly name: string
  readonly transaction: TransactionState | null

  constructor(store: MongoStore, database: Db, name: string, transaction: TransactionState | null) {
    this.store = store
    this.database = database
    this.name = name
    this.transaction = transaction
  }

  /** Runs one operation, inside the transaction when there is one, and maps its errors. */
  run<R>(collection: string, operation: (session: ClientSession | undefined) => Promise<R>): Promise<R> {
    const transaction = this.transaction
    if (!transaction) return this.store.use(collection, () => operation(undefined))
    return transaction.serialize(async () => {
      if (transaction.finished) throw new ImprunError('invalid_state', 'the transaction has ended')
      if (transaction.failure) throw transaction.failure
      try {
        return await operation(transaction.session)
      } catch (error) {
        // The driver retries the whole transaction on these; they must reach it unchanged.
        if (isTransientTransactionError(error)) throw error
        const mapped = mapMongoError(error, collection, this.store.closed)
        if (error instanceof MongoServerError && mapped instanceof ImprunError) transaction.failure = mapped
        throw mapped
      }
    })
  }
}

class MongoDatabase implements Database {
  private readonly context: DatabaseContext

  constructor(context: DatabaseContext) {
    this.context = context
  }

  get name(): string {
    return this.context.name
  }

  collection<T extends StoredDocument = StoredDocument>(name: string): Collection<T> {
    assertCollectionName(name)
    return new MongoCollection<T>(this.context, name)
  }

  transaction<R>(work: (transaction: Database) => Promise<R>): Promise<R> {
    if (this.context.transaction) return work(this)
    return this.context.store.transaction(this.context, work)
  }

  async listCollections(): Promise<string[]> {
    // listCollections cannot run in a transaction: it reports committed collections.
    const store = this.context.store
    const infos = await store.use(this.context.name, () =>
      this.context.database.listCollections({}, { nameOnly: true }).toArray(),
    )
    return infos
      .map((info) => info.name)
      .filter((name) => !name.startsWith('system.'))
      .sort()
  }

  async dropCollection(name: string): Promise<void> {
    assertCollectionName(name)
    const context = this.context
    const transaction = context.transaction
    if (!transaction) {
      await context.run(name, () => context.database.dropCollection(name))
      return
    }
    await context.run(name, (session) => context.database.collection(name).deleteMany({}, withSession({}, session)))
    transaction.afterCommit.set(`drop:${name}`, async () => {
      await context.database.dropCollection(name)
    })
  }

  watch(options: WatchOptions = {}): ChangeStream {
    return new MongoChangeStream(this.context.store, this.context.database, options)
  }
}

class MongoCollection<T extends StoredDocument> implements Collection<T> {
  readonly name: string
  private readonly context: DatabaseContext

  constructor(context: DatabaseContext, name: string) {
    this.context = context
    this.name = name
  }

  async insertOne(document: Omit<T, '_id'> & { _id?: string }): Promise<T> {
    const prepared = prepareInsert(document as Record<string, unknown>)
    await this.write(async (collection, session) => {
      await collection.insertOne(prepared, withSession({}, session))
    })
    return prepared as T
  }

  async insertMany(documents: Array<Omit<T, '_id'> & { _id?: string }>): Promise<T[]> {
    const prepared = documents.map((document) => prepareInsert(document as Record<string, unknown>))
    if (prepared.length === 0) return []
    await this.write(async (collection, session) => {
      if (session || prepared.length === 1) {
        await collection.insertMany(prepared, withSession({ ordered: true }, session))
        return
      }
      // All-or-nothing: an ordered insertMany keeps what it wrote before a duplicate.
      await this.context.store.inTransaction(async (transaction) => {
        await collection.insertMany(prepared, { ordered: true, session: transaction })
      })
    })
    return prepared as T[]
  }

  async findOne(filter: Filter, options: FindOptions = {}): Promise<T | null> {
    checkFilter(filter)
    const findOptions = driverFindOptions(options)
    delete findOptions.limit
    const document = await this.read((collection, session) =>
      collection.findOne(filter as DriverFilter<StoredDocument>, withSession(findOptions, session)),
    )
    return document === null ? null : (fromStored(document) as T)
  }

  async find(filter: Filter, options: FindOptions = {}): Promise<T[]> {
    checkFilter(filter)
    const findOptions = driverFindOptions(options)
    const documents = await this.read((collection, session) =>
      collection.find(filter as DriverFilter<StoredDocument>, withSession(findOptions, session)).toArray(),
    )
    return documents.map((document) => fromStored(document) as T)
  }

  async countDocuments(filter: Filter = {}): Promise<number> {
    checkFilter(filter)
    return this.read((collection, session) =>
      collection.countDocuments(filter as DriverFilter<StoredDocument>, withSession({}, session)),
    )
  }

  async updateOne(filter: Filter, update: Update, options: { upsert?: boolean } = {}): Promise<UpdateResult> {
    checkFilter(filter)
    const upsert = options.upsert ?? false
    const modifier = prepareUpdate(update, upsert ? filter : null)
    const result = await this.write((collection, session) =>
      collection.updateOne(filter as DriverFilter<StoredDocument>, modifier, withSession({ upsert }, session)),
    )
    return toUpdateResult(result)
  }

  async updateMany(filter: Filter, update: Update): Promise<UpdateResult> {
    checkFilter(filter)
    const modifier = prepareUpdate(update, null)
    const result = await this.write((collection, session) =>
      collection.updateMany(filter as DriverFilter<StoredDocument>, modifier, withSession({}, session)),
    )
    return toUpdateResult(result)
  }

  async findOneAndUpdate(filter: Filter, update: Update, options: FindOneAndUpdateOptions = {}): Promise<T | null> {
    checkFilter(filter)
    const upsert = options.upsert ?? false
    const modifier = prepareUpdate(update, upsert ? filter : null)
    const sort = options.sort ? checkSort(options.sort) : undefined
    const document = await this.write((collection, session) =>
      collection.findOneAndUpdate(
        filter as DriverFilter<StoredDocument>,
        modifier,
        withSession(
          {
            upsert,
            returnDocument: options.returnDocument ?? 'after',
            includeResultMetadata: false as const,
            ...(sort ? { sort } : {}),
          },
          session,
        ),
      ),
    )
    return document === null ? null : (fromStored(document) as T)
  }

  async replaceOne(filter: Filter, replacement: Omit<T, '_id'>, options: { upsert?: boolean } = {}): Promise<UpdateResult> {
    checkFilter(filter)
    const { _id: replacementId, ...fields } = toJsonValue(replacement) as Record<string, unknown>
    if (Object.keys(fields).some((key) => key.startsWith('$'))) {
      throw new ImprunError('bad_request', 'a replacement document cannot contain update operators')
    }
    if (replacementId !== undefined) assertDocumentId(replacementId)
    const upsert = options.upsert ?? false
    const seedId = upsert ? upsertSeed(filter)._id : undefined
    if (seedId !== undefined) assertDocumentId(seedId)
    const document = replacementId === undefined ? fields : { _id: replacementId, ...fields }
    return this.write(async (collection, session) => {
      const driverFilter = filter as DriverFilter<StoredDocument>
      if (!upsert || replacementId !== undefined || seedId !== undefined) {
        return toUpdateResult(await collection.replaceOne(driverFilter, document, withSession({ upsert }, session)))
      }
      // MongoDB would give the upserted document an ObjectId: replace, else insert with a string id.
      const replaced = await collection.replaceOne(driverFilter, document, withSession({}, session))
      if (replaced.matchedCount > 0) return toUpdateResult(replaced)
      const id = newDocumentId()
      await collection.insertOne({ _id: id, ...fields }, withSession({}, session))
      return { matchedCount: 0, modifiedCount: 0, upsertedId: id }
    })
  }

  async deleteOne(filter: Filter): Promise<number> {
    checkFilter(filter)
    const result = await this.write((collection, session) =>
      collection.deleteOne(filter as DriverFilter<StoredDocument>, withSession({}, session)),
    )
    return result.deletedCount
  }

  async deleteMany(filter: Filter): Promise<number> {
    checkFilter(filter)
    const result = await this.write((collection, session) =>
      collection.deleteMany(filter as DriverFilter<StoredDocument>, withSession({}, session)),
    )
    return result.deletedCount
  }

  async createIndex(keys: Record<string, 1 | -1>, options: IndexOptions = {}): Promise<void> {
    const fields = Object.keys(keys)
    if (fields.length === 0 || fields.some((field) => !indexFieldPattern.test(field))) {
      throw new ImprunError('bad_request', `invalid index fields: ${fields.join(', ')}`)
    }
    if (fields.some((field) => keys[field] !== 1 && keys[field] !== -1)) {
      throw new ImprunError('bad_request', 'index directions must be 1 or -1')
    }
    const unique = options.unique ?? false
    const name = `${fields.map((field) => `${field}_${keys[field]}`).join('_')}${unique ? '_unique' : ''}`
    const indexOptions = unique
      ? {
          name,
          unique: true,
          // Like SQLite's UNIQUE over NULLs: documents lacking a field are not constrained.
          partialFilterExpression: Object.fromEntries(fields.map((field) => [field, { $exists: true }])),
        }
      : { name }
    const create = async (): Promise<void> => {
      await this.context.database.collection(this.name).createIndex({ ...keys }, indexOptions)
    }
    const transaction = this.context.transaction
    if (!transaction) {
      await this.context.store.use(this.name, create)
      return
    }
    transaction.afterCommit.delete(`drop:${this.name}`)
    transaction.afterCommit.set(`index:${this.name}:${name}`, create)
  }

  private read<R>(
    operation: (collection: DriverCollection<StoredDocument>, session: ClientSession | undefined) => Promise<R>,
  ): Promise<R> {
    return this.context.run(this.name, (session) => operation(this.context.database.collection<StoredDocument>(this.name), session))
  }

  private write<R>(
    operation: (collection: DriverCollection<StoredDocument>, session: ClientSession | undefined) => Promise<R>,
  ): Promise<R> {
    // A write after a dropCollection in the same transaction keeps the collection.
    this.context.transaction?.afterCommit.delete(`drop:${this.name}`)
    return this.read(operation)
  }
}

// --- change streams ---------------------------------------------------------------------------

const aborted = Symbol('aborted')

class MongoChangeStream implements ChangeStream {
  private readonly abort = new AbortController()
  private readonly store: MongoStore
  private readonly database: Db
  private readonly options: WatchOptions

  constructor(store: MongoStore, database: Db, options: WatchOptions) {
    this.store = store
    this.database = database
    this.options = options
    if (options.signal?.aborted) this.abort.abort()
    else options.signal?.addEventListener('abort', () => this.abort.abort(), { once: true })
  }

  async close(): Promise<void> {
    this.abort.abort()
  }

  async *[Symbol.asyncIterator](): AsyncIterator<ChangeEvent> {
    const signal = this.abort.signal
    let position = this.options.after === undefined ? undefined : parseToken(this.options.after)
    let resetPending = false
    let failures = 0
    this.store.streams.add(this)
    try {
      this.store.assertOpen()
      while (!signal.aborted) {
        let stream: DriverChangeStream<Document, Document> | null = null
        try {
          if ((await untilAborted(this.store.connect(), signal)) === aborted) return
          stream = this.open(position)
          while (!signal.aborted) {
            const change = await untilAborted(stream.tryNext(), signal)
            if (change === aborted) return
            failures = 0
            if (resetPending) {
              // The position after which nothing is missed once the consumer has reloaded.
              const token = change?._id ?? stream.resumeToken
              if (token == null) continue
              resetPending = false
              yield { type: 'reset', token: JSON.stringify(token) }
            }
            if (change === null) continue
            position = change._id
            const event = toChangeEvent(change)
            if (event) yield event
            if (change.operationType === 'invalidate') break
          }
        } catch (error) {
          if (signal.aborted || this.store.closed) return
          if (isHistoryLost(error)) {
            position = undefined
            resetPending = true
            continue
          }
          if (!isUnavailable(error)) throw mapMongoError(error, '', this.store.closed)
          position = stream?.resumeToken ?? position
          failures++
          const delay = Math.min(100 * 2 ** (failures - 1), this.store.maxReconnectDelayMs)
          try {
            await sleep(delay, undefined, { signal })
          } catch {
            return
          }
        } finally {
          await stream?.close().catch(() => {})
        }
      }
    } finally {
      this.store.streams.delete(this)
    }
  }

  /** `startAfter` rather than `resumeAfter`: it also continues behind an invalidate event. */
  private open(position: unknown): DriverChangeStream<Document, Document> {
    const collections = this.options.collections
    const pipeline: Document[] = collections
      ? [
          {
            $match: {
              $or: [
                { 'ns.coll': { $in: collections } },
                { 'to.coll': { $in: collections } },
                { operationType: { $in: ['dropDatabase', 'invalidate'] } },
              ],
            },
          },
        ]
      : []
    return this.database.watch<Document, Document>(pipeline, {
      fullDocument: 'updateLookup',
      ...(position === undefined ? {} : { startAfter: position }),
    })
  }
}

function toChangeEvent(change: Document): ChangeEvent | null {
  const token = JSON.stringify(change._id)
  const type = change.operationType as string
  switch (type) {
    case 'insert':
    case 'update':
    case 'replace':
    case 'delete': {
      const event: ChangeEvent = {
        type,
        token,
        collection: String(change.ns?.coll),
        id: String(change.documentKey?._id),
      }
      if (type !== 'delete' && change.fullDocument) event.document = fromStored(change.fullDocument as Document)
      return event
    }
    case 'drop':
    case 'rename':
    case 'dropDatabase':
    case 'invalidate':
      return { type: 'reset', token }
    default:
      return null
  }
}

function parseToken(token: string): unknown {
  let parsed: unknown
  try {
    parsed = JSON.parse(token)
  } catch {
    parsed = undefined
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ImprunError('bad_request', 'invalid change-feed token')
  }
  return parsed
}

function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T | typeof aborted> {
  promise.catch(() => {})
  if (signal.aborted) return Promise.resolve(aborted)
  return new Promise((resolve, reject) => {
    const onAbort = (): void => resolve(aborted)
    signal.addEventListener('abort', onAbort, { once: true })
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort)
        resolve(value)
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort)
        reject(error)
      },
    )
  })
}

// --- documents, filters, updates --------------------------------------------------------------

function withSession<O extends object>(options: O, session: ClientSession | undefined): O & { session?: ClientSession } {
  return session ? { ...options, session } : options
}

function checkFilter(filter: Filter): void {
  if (filter === null || typeof filter !== 'object' || Array.isArray(filter)) {
    throw new ImprunError('bad_request', 'a filter must be an object')
  }
  assertNoCodeOperators(filter)
}

function checkSort(sort: Record<string, unknown>): Record<string, 1 | -1> {
  if (sort === null || typeof sort !== 'object' || Object.values(sort).some((value) => value !== 1 && value !== -1)) {
    throw new ImprunError('bad_request', 'sort directions must be 1 or -1')
  }
  return sort as Record<string, 1 | -1>
}

function driverFindOptions(options: FindOptions): {
  sort?: Record<string, 1 | -1>
  skip?: number
  limit?: number
  projection?: Document
} {
  const result: { sort?: Record<string, 1 | -1>; skip?: number; limit?: number; projection?: Document } = {}
  if (options.sort && Object.keys(options.sort).length > 0) result.sort = checkSort(options.sort)
  if (options.skip !== undefined && options.skip !== 0) {
    if (!Number.isInteger(options.skip) || options.skip < 0) throw new ImprunError('bad_request', 'skip must be a non-negative integer')
    result.skip = options.skip
  }
  if (options.limit !== undefined && Number.isFinite(options.limit) && options.limit > 0) {
    if (!Number.isInteger(options.limit)) throw new ImprunError('bad_request', 'limit must be an integer')
    result.limit = options.limit
  }
  if (options.projection && Object.keys(options.projection).length > 0) {
    const values = Object.values(options.projection)
    if (values.some((value) => value !== 0 && value !== 1 && value !== true && value !== false)) {
      throw new ImprunError('bad_request', 'projection values must be 0, 1, true or false')
    }
    result.projection = options.projection
  }
  return result
}

function assertDocumentId(id: unknown): void {
  if (typeof id !== 'string' || id.length === 0 || id.length > 512) {
    throw new ImprunError('bad_request', '_id must be a non-empty string of at most 512 characters')
  }
}

/**
 * The update as MongoDB gets it: JSON form, `$currentDate` as `$set` (the store holds no BSON
 * dates), and for an upsert a string `_id` for the document it may insert.
 */
function prepareUpdate(update: Update, upsertFilter: Filter | null): UpdateFilter<StoredDocument> {
  assertUpdateOperators(update)
  const json = toJsonValue(update) as Record<string, Record<string, unknown>>
  const { $currentDate: currentDate, ...modifier } = json
  if (currentDate) {
    const now = new Date()
    const set: Record<string, unknown> = { ...modifier.$set }
    for (const [field, spec] of Object.entries(currentDate)) {
      const type = spec === true ? 'date' : (spec as { $type?: unknown } | null)?.$type
      if (type !== 'date' && type !== 'timestamp') {
        throw new ImprunError('bad_request', `$currentDate takes true or {$type: 'date' | 'timestamp'} (at ${field})`)
      }
      set[field] = type === 'date' ? now.toISOString() : now.getTime()
    }
    modifier.$set = set
  }
  if (upsertFilter) {
    const seedId = upsertSeed(upsertFilter)._id
    const setOnInsert = modifier.$setOnInsert
    if (seedId !== undefined) assertDocumentId(seedId)
    else if (setOnInsert && '_id' in setOnInsert) assertDocumentId(setOnInsert._id)
    else modifier.$setOnInsert = { ...setOnInsert, _id: newDocumentId() }
  }
  return modifier as UpdateFilter<StoredDocument>
}

function toUpdateResult(result: DriverUpdateResult<StoredDocument>): UpdateResult {
  return {
    matchedCount: result.matchedCount,
    modifiedCount: result.modifiedCount,
    upsertedId: result.upsertedId == null ? null : String(result.upsertedId),
  }
}

/** A document as read from MongoDB, with any BSON value that is not plain JSON made JSON. */
function fromStored(document: Document): StoredDocument {
  return plainValue(document) as StoredDocument
}

function plainValue(value: unknown): unknown {
  if (value === null || typeof value !== 'object') {
    return typeof value === 'number' && !Number.isFinite(value) ? null : value
  }
  if (Array.isArray(value)) {
    for (let index = 0; index < value.length; index++) value[index] = plainValue(value[index])
    return value
  }
  if (value instanceof Date) return value.toJSON()
  const bsonType = (value as { _bsontype?: unknown })._bsontype
  if (typeof bsonType === 'string') {
    if (bsonType === 'Long' || bsonType === 'Decimal128' || bsonType === 'Double' || bsonType === 'Int32') {
      return plainValue(Number(String(value)))
    }
    return toJsonValue(value)
  }
  const record = value as Record<string, unknown>
  for (const key of Object.keys(record)) record[key] = plainValue(record[key])
  return record
}

// --- errors -----------------------------------------------------------------------------------

/** Server errors that describe a bad filter, update, projection or document. */
const badRequestCodes = new Set([
  2, // BadValue
  4, // NoSuchKey
  9, // FailedToParse
  14, // TypeMismatch
  15, // Overflow
  16, // InvalidLength
  28, // PathNotViable
  30, // InvalidPath
  40, // ConflictingUpdateOperators
  52, // DollarPrefixedFieldName
  53, // InvalidIdField
  54, // NotSingleValueField
  55, // InvalidDBRef
  56, // EmptyFieldName
  57, // DottedFieldName
  66, // ImmutableField (_id changed)
  67, // CannotCreateIndex
  72, // InvalidOptions
  73, // InvalidNamespace
  168, // InvalidPipelineOperator
  260, // InvalidResumeToken
  10334, // BSONObjectTooLarge
])

/** Index definitions that clash with an existing index of the same name or keys. */
const conflictCodes = new Set([
  68, // IndexAlreadyExists
  85, // IndexOptionsConflict
  86, // IndexKeySpecsConflict
])

/** Server errors that pass: elections, shutdowns, lock and write conflicts, lost connections. */
const unavailableCodes = new Set([
  6, // HostUnreachable
  7, // HostNotFound
  24, // LockTimeout
  46, // LockBusy
  89, // NetworkTimeout
  91, // ShutdownInProgress
  112, // WriteConflict
  189, // PrimarySteppedDown
  251, // NoSuchTransaction
  262, // ExceededTimeLimit
  9001, // SocketException
  10107, // NotWritablePrimary
  11600, // InterruptedAtShutdown
  11602, // InterruptedDueToReplStateChange
  13435, // NotPrimaryNoSecondaryOk
  13436, // NotPrimaryOrSecondary
])

const retryableLabels = [
  'RetryableWriteError',
  'TransientTransactionError',
  'UnknownTransactionCommitResult',
  'ResumableChangeStreamError',
  'RetryableError',
  'SystemOverloadedError',
]

function isTransientTransactionError(error: unknown): boolean {
  return (
    error instanceof MongoError &&
    (error.hasErrorLabel('TransientTransactionError') || error.hasErrorLabel('UnknownTransactionCommitResult'))
  )
}

function isUnavailable(error: unknown): boolean {
  if (error instanceof MongoServerSelectionError || error instanceof MongoNetworkError) return true
  if (!(error instanceof MongoError)) return false
  if (retryableLabels.some((label) => error.hasErrorLabel(label))) return true
  return typeof error.code === 'number' && unavailableCodes.has(error.code)
}

/** The change stream's position is no longer in the oplog. */
function isHistoryLost(error: unknown): boolean {
  return error instanceof MongoServerError && (error.code === 286 || error.code === 280)
}

function isDuplicateKey(error: MongoError): boolean {
  if (error.code === 11000 || error.code === 11001 || error.code === 12582) return true
  const writeErrors = (error as { writeErrors?: unknown }).writeErrors
  const list = Array.isArray(writeErrors) ? writeErrors : writeErrors ? [writeErrors] : []
  return list.some((writeError) => (writeError as { code?: unknown }).code === 11000)
}

/**
 * The one mapping from driver errors to ImprunError. Errors that did not come from the driver
 * (those thrown by a transaction's `work`, ImprunErrors) pass through unchanged.
 */
function mapMongoError(error: unknown, collection: string, storeClosed: boolean): unknown {
  if (error instanceof ImprunError) return error
  if (BSON.BSONError.isBSONError(error)) {
    return new ImprunError('bad_request', `invalid value: ${error.message}`, { cause: error })
  }
  if (!(error instanceof MongoError)) return error
  if (storeClosed || error instanceof MongoClientClosedError || error instanceof MongoTopologyClosedError) {
    return new ImprunError('store_unavailable', 'the store is closed', { cause: error })
  }
  if (isDuplicateKey(error)) return duplicateKeyError(collection, error.message, error)
  if (error instanceof MongoWriteConcernError || isUnavailable(error)) {
    return new ImprunError('store_unavailable', `MongoDB is unavailable: ${error.message}`, {
      retryable: true,
      cause: error,
    })
  }
  if (error instanceof MongoInvalidArgumentError) {
    return new ImprunError('bad_request', error.message, { cause: error })
  }
  if (error instanceof MongoServerError && typeof error.code === 'number') {
    if (conflictCodes.has(error.code)) return new ImprunError('conflict', error.message, { cause: error })
    // Codes from 15000 up are the server's parse and expression errors ("location" codes).
    if (badRequestCodes.has(error.code) || error.code >= 15000) {
      return new ImprunError('bad_request', error.message, { cause: error })
    }
  }
  return new ImprunError('internal', `MongoDB error: ${error.message}`, { cause: error })
}
