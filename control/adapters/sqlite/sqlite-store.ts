/**
 * The embedded store: one SQLite file for the system database and one per gateway, in WAL mode
 * with `synchronous=FULL`, so that a write is on disk before its promise resolves. Query and
 * update semantics come from mingo; equality on `_id` and on indexed fields is pushed down to SQL.
 *
 * Every collection is a table `(seq INTEGER PRIMARY KEY, id TEXT UNIQUE, doc TEXT)`; every write
 * also appends to `_changes` in the same transaction, which is the change feed that watchers in
 * this process (woken at commit) and in other processes (polling `PRAGMA data_version`) follow.
 */
import { mkdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { DatabaseSync, type StatementSync } from 'node:sqlite'
import { Query, update as applyUpdateWithExpressions } from 'mingo'
import { Context } from 'mingo/core'
import { update as applyUpdate } from 'mingo/updater'
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
  prepareInsert,
  toJsonValue,
  upsertSeed,
} from '../document-helpers.ts'

export interface SqliteStoreOptions {
  /** Folder holding `system.db` and `gateways/<id>.db`; created when missing. */
  directory: string
  /** How many change-feed entries each database keeps (default 20,000). */
  changeRetention?: number
  /** How often watchers look for commits made by other processes, in ms (default 25). */
  pollIntervalMs?: number
  /** Busy timeout for cross-process locks, in ms (default 10,000). */
  busyTimeoutMs?: number
}

export function createSqliteStore(options: SqliteStoreOptions): Store {
  return new SqliteStore(options)
}

const gatewayIdPattern = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/

class SqliteStore implements Store {
  readonly kind = 'sqlite' as const
  private readonly databases = new Map<string, SqliteConnection>()
  private closed = false
  private readonly options: SqliteStoreOptions

  constructor(options: SqliteStoreOptions) {
    this.options = options
    mkdirSync(join(options.directory, 'gateways'), { recursive: true })
  }

  system(): Database {
    return this.open('system', join(this.options.directory, 'system.db'))
  }

  gateway(gatewayId: string): Database {
    if (!gatewayIdPattern.test(gatewayId)) throw new ImprunError('invalid_name', `invalid gateway id '${gatewayId}'`)
    return this.open(`gateway:${gatewayId}`, this.gatewayPath(gatewayId))
  }

  async dropGateway(gatewayId: string): Promise<void> {
    const key = `gateway:${gatewayId}`
    const connection = this.databases.get(key)
    if (connection) {
      await connection.close()
      this.databases.delete(key)
    }
    const path = this.gatewayPath(gatewayId)
    for (const suffix of ['', '-wal', '-shm', '-journal']) rmSync(path + suffix, { force: true })
  }

  async close(): Promise<void> {
    this.closed = true
    for (const connection of this.databases.values()) await connection.close()
    this.databases.clear()
  }

  private gatewayPath(gatewayId: string): string {
    return join(this.options.directory, 'gateways', `${gatewayId}.db`)
  }

  private open(key: string, path: string): Database {
    if (this.closed) throw new ImprunError('store_unavailable', 'the store is closed')
    let connection = this.databases.get(key)
    if (!connection) {
      connection = new SqliteConnection(key, path, this.options)
      this.databases.set(key, connection)
    }
    return connection.handle
  }
}

interface Row {
  seq: number
  id: string
  doc: string
}

type Waiter = () => void

/** One open database file: the connection, its statement cache, its lock and its feed. */
class SqliteConnection {
  readonly handle: SqliteDatabase
  readonly database: DatabaseSync
  private readonly statements = new Map<string, StatementSync>()
  private readonly tables = new Set<string>()
  private readonly indexedFields = new Map<string, Set<string>>()
  private readonly waiters = new Set<Waiter>()
  private transactionTail: Promise<void> = Promise.resolve()
  private transactionOpen = false

  /** True while a transaction of some handle is open (its sequence numbers are not final). */
  get busy(): boolean {
    return this.transactionOpen || this.closed
  }
  private writesSincePrune = 0
  private checkpointTimer: NodeJS.Timeout | null = null
  private firstUncheckpointedAt = 0
  private lastDataVersion = -1
  private pollTimer: NodeJS.Timeout | null = null
  private watcherCount = 0
  closed = false
  readonly name: string
  private readonly options: SqliteStoreOptions

  constructor(name: string, path: string, options: SqliteStoreOptions) {
    this.name = name
    this.options = options
    this.database = new DatabaseSync(path)
    this.database.exec(`PRAGMA busy_timeout = ${options.busyTimeoutMs ?? 10_000}`)
    enableWal(this.database, path, options.busyTimeoutMs ?? 10_000)
    this.database.exec('PRAGMA synchronous = FULL')
    // SQLite's own checkpoint runs inside the COMMIT that crosses the threshold (1,000 pages by
    // default): copying the WAL into the file and fsyncing it, 10–20 ms on this machine, paid by
    // whichever write (a publish) happens to cross it. Checkpoints run from a timer instead, when
    // writes pause (see scheduleCheckpoint); the threshold stays as a backstop. Durability does
    // not depend on checkpoints: a commit is durable once its WAL frames are synced.
    this.database.exec(`PRAGMA wal_autocheckpoint = ${backstopCheckpointPages}`)
    this.writeTransaction(() => {
      this.database.exec(
        'CREATE TABLE IF NOT EXISTS _changes (seq INTEGER PRIMARY KEY AUTOINCREMENT, coll TEXT NOT NULL, id TEXT NOT NULL, op TEXT NOT NULL)',
      )
      this.database.exec('CREATE TABLE IF NOT EXISTS _meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)')
      this.database.exec(
        'CREATE TABLE IF NOT EXISTS _indexes (coll TEXT NOT NULL, name TEXT NOT NULL, fields TEXT NOT NULL, is_unique INTEGER NOT NULL, PRIMARY KEY (coll, name))',
      )
    })
    this.handle = new SqliteDatabase(this, false)
  }

  statement(sql: string): StatementSync {
    let statement = this.statements.get(sql)
    if (!statement) {
      statement = this.database.prepare(sql)
      this.statements.set(sql, statement)
    }
    return statement
  }

  /** Waits until no transaction of another handle is open on this connection. */
  async idle(inTransaction: boolean): Promise<void> {
    if (this.closed) throw new ImprunError('store_unavailable', `database ${this.name} is closed`)
    if (inTransaction) return
    while (this.transactionOpen) await this.transactionTail
  }

  /** Runs `work` as one SQLite write transaction, or inside the open one. */
  writeTransaction<R>(work: () => R, inTransaction = false): R {
    if (inTransaction) return work()
    this.database.exec('BEGIN IMMEDIATE')
    let result: R
    try {
      result = work()
      this.database.exec('COMMIT')
    } catch (error) {
      this.rollback()
      throw error
    }
    this.committed()
    return result
  }

  async transaction<R>(work: (transaction: Database) => Promise<R>): Promise<R> {
    let release!: () => void
    const previous = this.transactionTail
    this.transactionTail = new Promise<void>((resolve) => (release = resolve))
    await previous
    await this.idle(false).catch((error) => {
      release()
      throw error
    })
    this.transactionOpen = true
    try {
      this.database.exec('BEGIN IMMEDIATE')
      let result: R
      try {
        result = await work(new SqliteDatabase(this, true))
        this.database.exec('COMMIT')
      } catch (error) {
        this.rollback()
        throw error
      }
      this.committed()
      return result
    } finally {
      this.transactionOpen = false
      release()
    }
  }

  private rollback(): void {
    if (this.database.isTransaction) this.database.exec('ROLLBACK')
    // DDL may have been rolled back with it.
    this.tables.clear()
    this.indexedFields.clear()
  }

  private committed(): void {
    this.writesSincePrune++
    if (this.writesSincePrune >= 1000) {
      this.writesSincePrune = 0
      this.pruneChanges()
    }
    this.wake()
    this.scheduleCheckpoint()
  }

  /**
   * A passive checkpoint once writes have paused for `checkpointQuietMs`, or at the latest
   * `checkpointMaxDelayMs` after the first write since the last one, so each copies a few pages
   * and never runs inside a write's transaction.
   */
  private scheduleCheckpoint(): void {
    const now = Date.now()
    if (this.checkpointTimer) clearTimeout(this.checkpointTimer)
    else this.firstUncheckpointedAt = now
    const delay = Math.max(0, Math.min(checkpointQuietMs, this.firstUncheckpointedAt + checkpointMaxDelayMs - now))
    this.checkpointTimer = setTimeout(() => this.checkpoint(), delay)
    this.checkpointTimer.unref()
  }

  private checkpoint(): void {
    this.checkpointTimer = null
    if (this.closed) return
    if (this.transactionOpen) {
      this.scheduleCheckpoint()
      return
    }
    try {
      // PASSIVE: copies what no reader still needs, never waits for a lock.
      this.database.exec('PRAGMA wal_checkpoint(PASSIVE)')
    } catch {
      // Left to the next write's timer, or to the backstop.
    }
  }

  private pruneChanges(): void {
    const keep = this.options.changeRetention ?? 20_000
    const row = this.statement('SELECT MAX(seq) AS max FROM _changes').get() as { max: number | null }
    if (row.max === null || row.max <= keep) return
    const through = row.max - keep
    this.writeTransaction(() => {
      this.statement('DELETE FROM _changes WHERE seq <= ?').run(through)
      this.statement(
        "INSERT INTO _meta (key, value) VALUES ('pruned_through', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value WHERE CAST(value AS INTEGER) < CAST(excluded.value AS INTEGER)",
      ).run(String(through))
    })
  }

  ensureTable(collection: string): string {
    const table = tableName(collection)
    if (!this.tables.has(collection)) {
      this.database.exec(
        `CREATE TABLE IF NOT EXISTS ${table} (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, doc TEXT NOT NULL)`,
      )
      this.tables.add(collection)
    }
    return table
  }

  tableExists(collection: string): boolean {
    if (this.tables.has(collection)) return true
    const row = this.statement("SELECT 1 AS found FROM sqlite_master WHERE type = 'table' AND name = ?").get(
      `c_${collection}`,
    )
    if (row) this.tables.add(collection)
    return row !== undefined
  }

  indexed(collection: string): Set<string> {
    let fields = this.indexedFields.get(collection)
    if (!fields) {
      fields = new Set()
      const rows = this.statement('SELECT fields FROM _indexes WHERE coll = ?').all(collection) as Array<{ fields: string }>
      for (const row of rows) {
        const first = (JSON.parse(row.fields) as string[])[0]
        if (first) fields.add(first)
      }
      this.indexedFields.set(collection, fields)
    }
    return fields
  }

  forgetIndexes(collection: string): void {
    this.indexedFields.delete(collection)
  }

  forgetTable(collection: string): void {
    this.tables.delete(collection)
    this.indexedFields.delete(collection)
  }

  recordChange(collection: string, id: string, operation: string): void {
    this.statement('INSERT INTO _changes (coll, id, op) VALUES (?, ?, ?)').run(collection, id, operation)
  }

  // --- change feed ---------------------------------------------------------------------------

  currentSeq(): number {
    const row = this.statement("SELECT seq FROM sqlite_sequence WHERE name = '_changes'").get() as
      | { seq: number }
      | undefined
    return row?.seq ?? 0
  }

  prunedThrough(): number {
    const row = this.statement("SELECT value FROM _meta WHERE key = 'pruned_through'").get() as
      | { value: string }
      | undefined
    return row ? Number(row.value) : 0
  }

  changesAfter(seq: number, limit: number): Array<{ seq: number; coll: string; id: string; op: string }> {
    return this.statement('SELECT seq, coll, id, op FROM _changes WHERE seq > ? ORDER BY seq LIMIT ?').all(
      seq,
      limit,
    ) as Array<{ seq: number; coll: string; id: string; op: string }>
  }

  waitForChange(signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        this.waiters.delete(done)
        signal.removeEventListener('abort', done)
        resolve()
      }
      this.waiters.add(done)
      signal.addEventListener('abort', done, { once: true })
    })
  }

  addWatcher(): void {
    this.watcherCount++
    if (this.pollTimer) return
    this.lastDataVersion = this.dataVersion()
    this.pollTimer = setInterval(() => {
      if (this.closed || this.transactionOpen) return
      const version = this.dataVersion()
      if (version !== this.lastDataVersion) {
        this.lastDataVersion = version
        this.wake()
      }
    }, this.options.pollIntervalMs ?? 25)
    this.pollTimer.unref()
  }

  removeWatcher(): void {
    this.watcherCount--
    if (this.watcherCount <= 0 && this.pollTimer) {
      clearInterval(this.pollTimer)
      this.pollTimer = null
    }
  }

  private dataVersion(): number {
    return (this.statement('PRAGMA data_version').get() as { data_version: number }).data_version
  }

  private wake(): void {
    for (const waiter of [...this.waiters]) waiter()
  }

  async close(): Promise<void> {
    if (this.closed) return
    while (this.transactionOpen) await this.transactionTail
    this.closed = true
    this.wake()
    if (this.pollTimer) clearInterval(this.pollTimer)
    if (this.checkpointTimer) clearTimeout(this.checkpointTimer)
    this.statements.clear()
    this.database.close()
  }
}

/**
 * Switches the file to WAL. The switch takes an exclusive lock without going through the busy
 * handler, so when two processes open the same new file at once, one of them gets SQLITE_BUSY
 * at once whatever `busy_timeout` says: retry it here, within the same time budget.
 */
function enableWal(database: DatabaseSync, path: string, timeoutMs: number): void {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      database.exec('PRAGMA journal_mode = WAL')
      return
    } catch (error) {
      const busy = ((error as { errcode?: number }).errcode ?? 0) % 256 === 5
      if (!busy) throw error
      if (Date.now() >= deadline) {
        throw new ImprunError('store_unavailable', `could not open ${path} in WAL mode: ${(error as Error).message}`, {
          retryable: true,
          cause: error,
        })
      }
      // A synchronous pause, as SQLite's own busy handler makes.
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5)
    }
  }
}

/** WAL size (pages) at which a commit checkpoints anyway: the timer is expected to run first. */
const backstopCheckpointPages = 4000
const checkpointQuietMs = 100
const checkpointMaxDelayMs = 250

function tableName(collection: string): string {
  return `"c_${collection}"`
}

function jsonPath(field: string): string {
  return `'$.${field}'`
}

class SqliteDatabase implements Database {
  private readonly connection: SqliteConnection
  private readonly inTransaction: boolean

  constructor(connection: SqliteConnection, inTransaction: boolean) {
    this.connection = connection
    this.inTransaction = inTransaction
  }

  get name(): string {
    return this.connection.name
  }

  collection<T extends StoredDocument = StoredDocument>(name: string): Collection<T> {
    assertCollectionName(name)
    return new SqliteCollection<T>(this.connection, name, this.inTransaction)
  }

  transaction<R>(work: (transaction: Database) => Promise<R>): Promise<R> {
    if (this.inTransaction) return work(this)
    return this.connection.transaction(work)
  }

  async listCollections(): Promise<string[]> {
    await this.connection.idle(this.inTransaction)
    const rows = this.connection
      .statement("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'c\\_%' ESCAPE '\\' ORDER BY name")
      .all() as Array<{ name: string }>
    return rows.map((row) => row.name.slice(2))
  }

  async dropCollection(name: string): Promise<void> {
    assertCollectionName(name)
    await this.connection.idle(this.inTransaction)
    this.connection.writeTransaction(() => {
      this.connection.database.exec(`DROP TABLE IF EXISTS ${tableName(name)}`)
      this.connection.statement('DELETE FROM _indexes WHERE coll = ?').run(name)
      this.connection.recordChange(name, '*', 'drop')
    }, this.inTransaction)
    this.connection.forgetTable(name)
  }

  watch(options: WatchOptions = {}): ChangeStream {
    return new SqliteChangeStream(this.connection, options)
  }
}

class SqliteChangeStream implements ChangeStream {
  private readonly abort = new AbortController()
  private readonly connection: SqliteConnection
  private readonly options: WatchOptions
  /** The feed position when watch() was called, so no change after that call is missed. */
  private readonly start: number | null

  constructor(connection: SqliteConnection, options: WatchOptions) {
    this.connection = connection
    this.options = options
    this.start = options.after === undefined && !connection.busy ? connection.currentSeq() : null
    options.signal?.addEventListener('abort', () => this.abort.abort(), { once: true })
  }

  async close(): Promise<void> {
    this.abort.abort()
  }

  async *[Symbol.asyncIterator](): AsyncIterator<ChangeEvent> {
    const connection = this.connection
    const signal = this.abort.signal
    const only = this.options.collections ? new Set(this.options.collections) : null
    connection.addWatcher()
    try {
      await connection.idle(false)
      let cursor = this.options.after !== undefined ? Number(this.options.after) : (this.start ?? connection.currentSeq())
      if (!Number.isInteger(cursor) || cursor < 0) throw new ImprunError('bad_request', 'invalid change-feed token')
      while (!signal.aborted && !connection.closed) {
        await connection.idle(false)
        if (cursor < connection.prunedThrough()) {
          cursor = connection.currentSeq()
          yield { type: 'reset', token: String(cursor) }
          continue
        }
        const changes = connection.changesAfter(cursor, 500)
        if (changes.length === 0) {
          await connection.waitForChange(signal)
          continue
        }
        for (const change of changes) {
          cursor = change.seq
          if (only && !only.has(change.coll)) continue
          const token = String(change.seq)
          if (change.op === 'drop') {
            yield { type: 'reset', token }
            continue
          }
          const type = change.op as 'insert' | 'update' | 'replace' | 'delete'
          if (type === 'delete') {
            yield { type, token, collection: change.coll, id: change.id }
            continue
          }
          await connection.idle(false)
          const row = connection.tableExists(change.coll)
            ? (connection.statement(`SELECT doc FROM ${tableName(change.coll)} WHERE id = ?`).get(change.id) as
                | { doc: string }
                | undefined)
            : undefined
          const event: ChangeEvent = { type, token, collection: change.coll, id: change.id }
          if (row) event.document = JSON.parse(row.doc) as StoredDocument
          yield event
          if (signal.aborted) return
        }
      }
    } finally {
      connection.removeWatcher()
    }
  }
}

class SqliteCollection<T extends StoredDocument> implements Collection<T> {
  readonly name: string
  private readonly connection: SqliteConnection
  private readonly inTransaction: boolean

  constructor(connection: SqliteConnection, name: string, inTransaction: boolean) {
    this.connection = connection
    this.name = name
    this.inTransaction = inTransaction
  }

  async insertOne(document: Omit<T, '_id'> & { _id?: string }): Promise<T> {
    const [inserted] = await this.insertMany([document])
    return inserted!
  }

  async insertMany(documents: Array<Omit<T, '_id'> & { _id?: string }>): Promise<T[]> {
    const prepared = documents.map((document) => prepareInsert(document as Record<string, unknown>))
    await this.connection.idle(this.inTransaction)
    return this.write(() => {
      for (const document of prepared) this.insertRow(document)
      // Fresh copies already (prepareInsert) and kept nowhere: the caller may have them.
      return prepared as T[]
    })
  }

  async findOne(filter: Filter, options: FindOptions = {}): Promise<T | null> {
    const [first] = await this.find(filter, { ...options, limit: 1 })
    return first ?? null
  }

  async find(filter: Filter, options: FindOptions = {}): Promise<T[]> {
    await this.connection.idle(this.inTransaction)
    return this.select(filter, options).map((entry) => entry.document as T)
  }

  async countDocuments(filter: Filter = {}): Promise<number> {
    await this.connection.idle(this.inTransaction)
    if (filter !== null && typeof filter === 'object' && !Array.isArray(filter) && Object.keys(filter).length === 0) {
      // Nothing to match: count rows in SQL instead of parsing every document.
      if (!this.connection.tableExists(this.name)) return 0
      return (this.connection.statement(`SELECT COUNT(*) AS count FROM ${tableName(this.name)}`).get() as { count: number }).count
    }
    return this.select(filter, {}).length
  }

  async updateOne(filter: Filter, update: Update, options: { upsert?: boolean } = {}): Promise<UpdateResult> {
    assertUpdateOperators(update)
    await this.connection.idle(this.inTransaction)
    return this.write(() => this.updateWhere(filter, update, options.upsert ?? false, 1).result)
  }

  async updateMany(filter: Filter, update: Update): Promise<UpdateResult> {
    assertUpdateOperators(update)
    await this.connection.idle(this.inTransaction)
    return this.write(() => this.updateWhere(filter, update, false, Infinity).result)
  }

  async findOneAndUpdate(filter: Filter, update: Update, options: FindOneAndUpdateOptions = {}): Promise<T | null> {
    assertUpdateOperators(update)
    await this.connection.idle(this.inTransaction)
    return this.write(() => {
      const outcome = this.updateWhere(filter, update, options.upsert ?? false, 1, options.sort)
      const pick = options.returnDocument === 'before' ? outcome.before : outcome.after
      return (pick ?? null) as T | null
    })
  }

  async replaceOne(filter: Filter, replacement: Omit<T, '_id'>, options: { upsert?: boolean } = {}): Promise<UpdateResult> {
    const { _id: replacementId, ...fields } = toJsonValue(replacement) as Record<string, unknown>
    if (Object.keys(fields).some((key) => key.startsWith('$'))) {
      throw new ImprunError('bad_request', 'a replacement document cannot contain update operators')
    }
    await this.connection.idle(this.inTransaction)
    return this.write(() => {
      const [match] = this.select(filter, { limit: 1 })
      if (match) {
        if (replacementId !== undefined && replacementId !== match.document._id) {
          throw new ImprunError('bad_request', '_id cannot be changed')
        }
        const next = { ...fields, _id: match.document._id }
        const changed = JSON.stringify(next) !== JSON.stringify(match.document)
        if (changed) this.updateRow(match.document._id, next, 'replace')
        return { matchedCount: 1, modifiedCount: changed ? 1 : 0, upsertedId: null }
      }
      if (!options.upsert) return { matchedCount: 0, modifiedCount: 0, upsertedId: null }
      const seed = upsertSeed(filter)
      const document = prepareInsert({ ...fields, _id: replacementId ?? seed._id })
      this.insertRow(document)
      return { matchedCount: 0, modifiedCount: 0, upsertedId: document._id }
    })
  }

  async deleteOne(filter: Filter): Promise<number> {
    await this.connection.idle(this.inTransaction)
    return this.write(() => this.deleteWhere(filter, 1))
  }

  async deleteMany(filter: Filter): Promise<number> {
    await this.connection.idle(this.inTransaction)
    return this.write(() => this.deleteWhere(filter, Infinity))
  }

  async createIndex(keys: Record<string, 1 | -1>, options: IndexOptions = {}): Promise<void> {
    const fields = Object.keys(keys)
    if (fields.length === 0 || fields.some((field) => !indexFieldPattern.test(field))) {
      throw new ImprunError('bad_request', `invalid index fields: ${fields.join(', ')}`)
    }
    const name = `${fields.join('_').replaceAll('.', '__')}${options.unique ? '_unique' : ''}`
    await this.connection.idle(this.inTransaction)
    this.write(() => {
      const table = this.connection.ensureTable(this.name)
      const expressions = fields.map((field) => `json_extract(doc, ${jsonPath(field)})`).join(', ')
      this.connection.database.exec(
        `CREATE ${options.unique ? 'UNIQUE ' : ''}INDEX IF NOT EXISTS "ix_${this.name}_${name}" ON ${table} (${expressions})`,
      )
      this.connection
        .statement('INSERT OR REPLACE INTO _indexes (coll, name, fields, is_unique) VALUES (?, ?, ?, ?)')
        .run(this.name, name, JSON.stringify(fields), options.unique ? 1 : 0)
    })
    this.connection.forgetIndexes(this.name)
  }

  // --- synchronous internals (run inside one SQLite transaction) ------------------------------

  private write<R>(work: () => R): R {
    try {
      return this.connection.writeTransaction(work, this.inTransaction)
    } catch (error) {
      throw mapSqliteError(error, this.name)
    }
  }

  private insertRow(document: StoredDocument): void {
    const table = this.connection.ensureTable(this.name)
    this.connection.statement(`INSERT INTO ${table} (id, doc) VALUES (?, ?)`).run(document._id, JSON.stringify(document))
    this.connection.recordChange(this.name, document._id, 'insert')
  }

  private updateRow(id: string, document: StoredDocument, operation: 'update' | 'replace'): void {
    const table = this.connection.ensureTable(this.name)
    this.connection.statement(`UPDATE ${table} SET doc = ? WHERE id = ?`).run(JSON.stringify(document), id)
    this.connection.recordChange(this.name, id, operation)
  }

  private updateWhere(
    filter: Filter,
    update: Update,
    upsert: boolean,
    limit: number,
    sort?: FindOptions['sort'],
  ): { result: UpdateResult; before?: StoredDocument; after?: StoredDocument } {
    const json = toJsonValue(update)
    const { $setOnInsert: setOnInsert, ...modifier } = json as Record<string, unknown>
    const matches = this.select(filter, sort ? { sort, limit } : { limit })
    if (matches.length === 0) {
      if (!upsert) return { result: { matchedCount: 0, modifiedCount: 0, upsertedId: null } }
      const document = upsertSeed(filter)
      if (setOnInsert) applyModifier(document, { $set: setOnInsert })
      if (Object.keys(modifier).length > 0) applyModifier(document, modifier)
      const inserted = prepareInsert(document)
      this.insertRow(inserted)
      return { result: { matchedCount: 0, modifiedCount: 0, upsertedId: inserted._id }, after: inserted }
    }
    let modified = 0
    let first: { before: StoredDocument; after: StoredDocument } | undefined
    for (const match of matches) {
      const before = match.document
      const after = structuredClone(before)
      const changed = Object.keys(modifier).length > 0 ? applyModifier(after, modifier) : false
      if (after._id !== before._id) throw new ImprunError('bad_request', '_id cannot be changed')
      if (changed) {
        this.updateRow(before._id, toJsonValue(after), 'update')
        modified++
      }
      first ??= { before, after }
    }
    return { result: { matchedCount: matches.length, modifiedCount: modified, upsertedId: null }, ...first }
  }

  private deleteWhere(filter: Filter, limit: number): number {
    const matches = this.select(filter, { limit })
    if (matches.length === 0) return 0
    const table = this.connection.ensureTable(this.name)
    const remove = this.connection.statement(`DELETE FROM ${table} WHERE id = ?`)
    for (const match of matches) {
      remove.run(match.document._id)
      this.connection.recordChange(this.name, match.document._id, 'delete')
    }
    return matches.length
  }

  /** Candidate rows from SQL (pushed-down equality), then mingo for the exact semantics. */
  private select(filter: Filter, options: FindOptions): Array<{ document: StoredDocument }> {
    if (filter === null || typeof filter !== 'object' || Array.isArray(filter)) {
      throw new ImprunError('bad_request', 'a filter must be an object')
    }
    assertNoCodeOperators(filter)
    if (!this.connection.tableExists(this.name)) return []
    const { where, parameters } = this.pushDown(filter)
    const table = tableName(this.name)
    // No filter, or one on `_id` alone (a string or `$in` of strings), is answered exactly by the
    // SQL; mingo then only sorts, skips, limits and projects (its `$in` is quadratic in big lists).
    const keys = Object.keys(filter)
    const exact = keys.length === 0 || (keys.length === 1 && (typeof filter._id === 'string' || isInOfStrings(filter._id)))
    // In insertion order, skip and limit go to SQL as well: only the rows returned are parsed
    // (the invocation log trims its oldest entries this way, a few thousand rows per table).
    const limit = options.limit !== undefined && Number.isFinite(options.limit) && options.limit > 0 ? Math.floor(options.limit) : undefined
    const skip = options.skip && Number.isFinite(options.skip) && options.skip > 0 ? Math.floor(options.skip) : 0
    const paged = exact && !(options.sort && Object.keys(options.sort).length > 0) && (limit !== undefined || skip > 0)
    const page = paged ? ` LIMIT ${limit ?? -1} OFFSET ${skip}` : ''
    const rows = this.connection
      .statement(`SELECT seq, id, doc FROM ${table}${where} ORDER BY seq${page}`)
      .all(...parameters) as unknown as Row[]
    const documents = rows.map((row) => JSON.parse(row.doc) as StoredDocument)
    let query: Query
    try {
      query = exact ? matchAll : new Query(filter, {})
    } catch (error) {
      throw new ImprunError('bad_request', `invalid filter: ${(error as Error).message}`, { cause: error })
    }
    let cursor = query.find<StoredDocument>(documents)
    if (options.sort && Object.keys(options.sort).length > 0) cursor = cursor.sort(options.sort)
    if (!paged) {
      if (options.skip) cursor = cursor.skip(options.skip)
      if (options.limit !== undefined && Number.isFinite(options.limit) && options.limit > 0) {
        cursor = cursor.limit(options.limit)
      }
    }
    let results: StoredDocument[]
    try {
      results = cursor.all() as StoredDocument[]
    } catch (error) {
      // Some operators ($expr with a malformed expression …) only fail when evaluated.
      throw new ImprunError('bad_request', `invalid filter: ${(error as Error).message}`, { cause: error })
    }
    if (options.projection && Object.keys(options.projection).length > 0) {
      const projected = matchAll.find<StoredDocument>(results, options.projection)
      results = projected.all() as StoredDocument[]
    }
    return results.map((document) => ({ document }))
  }

  private pushDown(filter: Filter): { where: string; parameters: Array<string | number | null> } {
    const clauses: string[] = []
    const parameters: Array<string | number | null> = []
    const indexed = this.connection.indexed(this.name)
    for (const [field, value] of Object.entries(filter)) {
      if (field === '_id') {
        if (typeof value === 'string') {
          clauses.push('id = ?')
          parameters.push(value)
        } else if (isInOfStrings(value)) {
          clauses.push(`id IN (${value.$in.map(() => '?').join(', ')})`)
          parameters.push(...value.$in)
        }
        continue
      }
      if (!indexed.has(field)) continue
      if (typeof value === 'string' || (typeof value === 'number' && Number.isFinite(value))) {
        clauses.push(`json_extract(doc, ${jsonPath(field)}) = ?`)
        parameters.push(value)
      } else if (isInOfStrings(value)) {
        // A pre-filter like the equality above: mingo still applies the exact semantics.
        clauses.push(`json_extract(doc, ${jsonPath(field)}) IN (${value.$in.map(() => '?').join(', ')})`)
        parameters.push(...value.$in)
      }
    }
    return { where: clauses.length ? ` WHERE ${clauses.join(' AND ')}` : '', parameters }
  }
}

function isInOfStrings(value: unknown): value is { $in: string[] } {
  if (value === null || typeof value !== 'object') return false
  const keys = Object.keys(value)
  const list = (value as { $in?: unknown }).$in
  return keys.length === 1 && Array.isArray(list) && list.length > 0 && list.every((item) => typeof item === 'string')
}

/**
 * mingo copies the operator tables of a query's context for every query and update; its default
 * entry point puts all of them (about 300 operators) in that context. A Query holds its copy, so
 * one that matches everything serves every filter answered by the SQL alone, and projections.
 */
const matchAll = new Query({}, {})

/**
 * An update needs the query operators and the boolean and comparison expressions, which mingo's
 * updater adds itself to the context it is given; the other expression operators are reachable
 * only through `$expr` in a condition ($pull, arrayFilters). Starting from an empty context
 * instead of the default one is about 20 µs per update instead of 80.
 */
const updateContext = Context.init()

function applyModifier(document: Record<string, unknown>, modifier: Record<string, unknown>): boolean {
  try {
    const changed = hasKey(modifier, '$expr')
      ? applyUpdateWithExpressions(document, modifier as never, undefined, undefined, { cloneMode: 'deep' })
      : applyUpdate(document, modifier as never, undefined, undefined, { cloneMode: 'deep', queryOptions: { context: updateContext } })
    return changed.length > 0
  } catch (error) {
    throw new ImprunError('bad_request', `invalid update: ${(error as Error).message}`, { cause: error })
  }
}

function hasKey(value: unknown, key: string): boolean {
  if (Array.isArray(value)) return value.some((item) => hasKey(item, key))
  if (value === null || typeof value !== 'object') return false
  for (const [name, inner] of Object.entries(value)) if (name === key || hasKey(inner, key)) return true
  return false
}

function mapSqliteError(error: unknown, collection: string): unknown {
  const code = (error as { errcode?: number }).errcode
  if (code === 1555 || code === 2067) {
    return duplicateKeyError(collection, (error as Error).message, error)
  }
  if (code === 5 || code === 6) {
    return new ImprunError('store_unavailable', `database is busy: ${(error as Error).message}`, {
      retryable: true,
      cause: error,
    })
  }
  return error
}
