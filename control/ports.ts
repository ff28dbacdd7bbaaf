/**
 * Ports: the interfaces the control core talks through. Adapters under `control/adapters/…`
 * implement them; the domain never imports a driver, and no driver type appears here.
 */

// ---------------------------------------------------------------------------------------------
// Store
// ---------------------------------------------------------------------------------------------

/**
 * A stored document: plain JSON (strings, finite numbers, booleans, null, arrays, objects).
 * `_id` is always a string. Dates are stored as ISO-8601 strings or epoch milliseconds.
 */
export type StoredDocument = { _id: string } & { [field: string]: unknown }

/** A MongoDB query filter (the subset that mingo and MongoDB agree on). */
export type Filter = Record<string, unknown>

/** A MongoDB update document with operators (`$set`, `$unset`, `$inc`, `$push`, `$pull`, …). */
export type Update = Record<string, unknown>

export type SortSpec = Record<string, 1 | -1>
export type Projection = Record<string, 0 | 1 | boolean>

export interface FindOptions {
  sort?: SortSpec
  skip?: number
  limit?: number
  projection?: Projection
}

export interface FindOneAndUpdateOptions {
  sort?: SortSpec
  upsert?: boolean
  /** Which version of the document to return; default `after`. */
  returnDocument?: 'before' | 'after'
}

export interface UpdateResult {
  matchedCount: number
  modifiedCount: number
  /** Set when the update inserted a document because of `upsert`. */
  upsertedId: string | null
}

export interface IndexOptions {
  unique?: boolean
}

/**
 * A collection of documents with MongoDB semantics.
 *
 * Contract (checked by `store-contract.ts` against every adapter):
 * - `insertOne` / `insertMany` assign a random string `_id` when missing and fail with
 *   `already_exists` when `_id` or a unique index is taken; `insertMany` is all-or-nothing.
 * - Each single-document write is atomic; `findOneAndUpdate` is an atomic find-and-modify, so two
 *   callers racing for the same document with the same filter never both win.
 * - Reads return copies: mutating a returned document never changes the stored one.
 * - A write acknowledged by a resolved promise survives a crash of the process.
 */
export interface Collection<T extends StoredDocument = StoredDocument> {
  readonly name: string
  insertOne(document: Omit<T, '_id'> & { _id?: string }): Promise<T>
  insertMany(documents: Array<Omit<T, '_id'> & { _id?: string }>): Promise<T[]>
  findOne(filter: Filter, options?: FindOptions): Promise<T | null>
  find(filter: Filter, options?: FindOptions): Promise<T[]>
  countDocuments(filter?: Filter): Promise<number>
  updateOne(filter: Filter, update: Update, options?: { upsert?: boolean }): Promise<UpdateResult>
  updateMany(filter: Filter, update: Update): Promise<UpdateResult>
  findOneAndUpdate(filter: Filter, update: Update, options?: FindOneAndUpdateOptions): Promise<T | null>
  /** Replaces the whole document (keeping `_id`); with `upsert` inserts it when missing. */
  replaceOne(filter: Filter, replacement: Omit<T, '_id'>, options?: { upsert?: boolean }): Promise<UpdateResult>
  deleteOne(filter: Filter): Promise<number>
  deleteMany(filter: Filter): Promise<number>
  /** Idempotent. Fields of an index hold scalars (the SQLite adapter indexes them as such). */
  createIndex(keys: Record<string, 1 | -1>, options?: IndexOptions): Promise<void>
}

/** One change to a watched database, in commit order. */
export type ChangeEvent =
  | {
      type: 'insert' | 'update' | 'replace' | 'delete'
      /** Opaque resume position: pass it as `after` to continue behind this event. */
      token: string
      collection: string
      id: string
      /** The document as it is now (looked up after the change); absent for deletes. */
      document?: StoredDocument
    }
  | {
      /** The feed lost its position (history pruned, stream invalidated): reload everything. */
      type: 'reset'
      token: string
    }

export interface WatchOptions {
  /** Only changes to these collections; all collections when omitted. */
  collections?: string[]
  /** Resume behind this token; when omitted, start at the current end of the feed. */
  after?: string
  signal?: AbortSignal
}

/** A change feed. Iterate it; it ends when closed or when the signal aborts. */
export interface ChangeStream extends AsyncIterable<ChangeEvent> {
  close(): Promise<void>
}

/**
 * One database: the system database or one gateway's database.
 *
 * `transaction` runs `work` with a handle whose writes commit together or not at all;
 * writes made through other handles are not part of it. A transaction may be retried by the
 * adapter on a transient conflict, so `work` must not have effects outside the store.
 */
export interface Database {
  readonly name: string
  collection<T extends StoredDocument = StoredDocument>(name: string): Collection<T>
  transaction<R>(work: (transaction: Database) => Promise<R>): Promise<R>
  listCollections(): Promise<string[]>
  dropCollection(name: string): Promise<void>
  /**
   * Follows committed changes. Events arrive in commit order, in the same process within
   * milliseconds of the commit, and in other processes on the same store as well.
   */
  watch(options?: WatchOptions): ChangeStream
}

/** The whole store: a system database plus one database per gateway. */
export interface Store {
  readonly kind: 'sqlite' | 'mongodb'
  system(): Database
  gateway(gatewayId: string): Database
  /** Removes a gateway's database and everything in it. Idempotent. */
  dropGateway(gatewayId: string): Promise<void>
  close(): Promise<void>
}

// ---------------------------------------------------------------------------------------------
// Provisioner
// ---------------------------------------------------------------------------------------------

export type Stage = 'dev' | 'staging' | 'prod'

export interface ProvisionTarget {
  gatewayId: string
  stages: readonly Stage[]
}

/**
 * Brings a gateway's infrastructure up and down: in embedded mode in-process workers, in
 * cluster mode Kubernetes objects. Every method is idempotent: the reconciler may call it again
 * after a crash or a lost lease. `isReady` reports whether what `start` asked for is serving.
 */
export interface Provisioner {
  readonly kind: string
  /** Creates what the gateway needs while stopped (namespace, database, quotas …). */
  create(target: ProvisionTarget): Promise<void>
  /** Starts serving every stage. */
  start(target: ProvisionTarget): Promise<void>
  isReady(target: ProvisionTarget): Promise<boolean>
  /** Stops serving; keeps data. */
  stop(target: ProvisionTarget): Promise<void>
  /** Removes everything `create` and `start` made. */
  destroy(target: ProvisionTarget): Promise<void>
}

// ---------------------------------------------------------------------------------------------
// Compiler
// ---------------------------------------------------------------------------------------------

/** A function's source: file path (relative, `/`-separated) → text. `index.ts` is the entry. */
export type SourceFiles = Record<string, string>

export interface FunctionMetadata {
  description: string
  /** JSON Schema of `input` (draft 2020-12), or null when the function declares none. */
  inputSchema: Record<string, unknown> | null
  outputSchema: Record<string, unknown> | null
}

export interface CompiledFunction {
  /** JavaScript (ESM) bundle ready for the sandbox. */
  code: string
  metadata: FunctionMetadata
}

export interface CompileRequest {
  gatewayId: string
  name: string
  files: SourceFiles
  /** Other functions of the same gateway that `files` may import, by name. */
  resolveFunction?: (name: string) => Promise<SourceFiles | null>
}

/**
 * Turns source into a runnable bundle plus metadata. Fails with `compile_failed` and
 * `details.diagnostics: [{file, line, column, message}]` on syntax or shape errors.
 */
export interface Compiler {
  compile(request: CompileRequest): Promise<CompiledFunction>
  /**
   * Pays the one-time costs of the first compile (starting a bundler, building a sandbox
   * snapshot) now, so the first publish after a start does not. Optional; idempotent; a failure
   * is not an error (the first publish reports it).
   */
  warm?(): Promise<void>
  /**
   * Frees what the compiler keeps between compiles (the metadata sandbox's isolate). Optional;
   * not final: a later compile builds them again, so closing a shared compiler is harmless.
   * Called by the platform that warmed it when it closes.
   */
  close?(): void
}

// ---------------------------------------------------------------------------------------------
// Clock, secrets
// ---------------------------------------------------------------------------------------------

export interface Clock {
  now(): number
}

export const systemClock: Clock = { now: () => Date.now() }

/**
 * Seals secret values (environment secrets, provider keys) before they are stored.
 * `open(seal(x)) === x`; a sealed value reveals nothing about `x` without the key.
 */
export interface SecretBox {
  seal(plaintext: string): string
  open(sealed: string): string
}
