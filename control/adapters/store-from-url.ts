/**
 * Opens the Store a URL names: `sqlite:<directory>` (embedded, one machine) or
 * `mongodb://…` / `mongodb+srv://…` (cluster mode: a replica set, for transactions and change
 * streams). Used by `imprun runtime` and `imprun control`.
 */
import { resolve } from 'node:path'
import { ImprunError } from '../errors.ts'
import type { Store } from '../ports.ts'
import { createMongoStore } from './mongodb/mongodb-store.ts'
import { createSqliteStore } from './sqlite/sqlite-store.ts'

export interface StoreFromUrlOptions {
  /** MongoDB: name of the system database and prefix of gateway databases (default `imprun`). */
  databasePrefix?: string
}

export function storeFromUrl(url: string, options: StoreFromUrlOptions = {}): Store {
  const text = url.trim()
  if (text.startsWith('mongodb://') || text.startsWith('mongodb+srv://')) {
    return createMongoStore({ url: text, ...(options.databasePrefix ? { databasePrefix: options.databasePrefix } : {}) })
  }
  if (text.startsWith('sqlite:')) {
    const path = text.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '')
    if (path === '') throw new ImprunError('bad_request', 'a sqlite store URL names a directory: sqlite:./data or sqlite:///var/lib/imprun')
    return createSqliteStore({ directory: resolve(path) })
  }
  throw new ImprunError('bad_request', `unsupported store URL '${redact(text)}': use sqlite:<directory> or mongodb://host/?replicaSet=…`)
}

/** The URL without its password, for messages. */
export function redact(url: string): string {
  return url.replace(/\/\/([^:/@]+):[^@/]*@/, '//$1:***@')
}

/**
 * The indexes the platform's queries need, created when a cluster process starts (the embedded
 * platform creates them lazily on first use). Idempotent.
 */
export async function ensurePlatformIndexes(store: Store): Promise<void> {
  const system = store.system()
  await system.collection('gateways').createIndex({ nextAttemptAt: 1 })
  await system.collection('gateways').createIndex({ state: 1, phase: 1 })
  await system.collection('applications').createIndex({ name: 1 }, { unique: true })
  await system.collection('grants').createIndex({ keyId: 1 }, { unique: true })
  await system.collection('grants').createIndex({ applicationId: 1, gatewayId: 1, stage: 1 }, { unique: true })
  await system.collection('grants').createIndex({ gatewayId: 1 })
  await system.collection('edge_syncs').createIndex({ nextAttemptAt: 1 })
}
