/** Helpers shared by the store adapters so that both behave the same at the edges. */
import { randomBytes } from 'node:crypto'
import { ImprunError } from '../errors.ts'
import type { Filter, StoredDocument, Update } from '../ports.ts'

/** A random document id: 20 url-safe characters (120 bits). */
export function newDocumentId(): string {
  return randomBytes(15).toString('base64url')
}

const collectionNamePattern = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,119}$/

export function assertCollectionName(name: string): void {
  if (!collectionNamePattern.test(name) || name.includes('..') || name.startsWith('system.')) {
    throw new ImprunError('bad_request', `invalid collection name '${name}': 1-120 of A-Z a-z 0-9 _ . -`)
  }
}

/**
 * The JSON form of a value, as every adapter stores it: `undefined` fields dropped, Dates as
 * ISO strings, non-finite numbers as null. Both adapters store exactly this, so a document reads
 * back the same from SQLite and from MongoDB.
 */
export function toJsonValue<T>(value: T): T {
  const text = JSON.stringify(value)
  if (text === undefined) throw new ImprunError('bad_request', 'document is not JSON-serializable')
  return JSON.parse(text) as T
}

export function prepareInsert(document: Record<string, unknown>): StoredDocument {
  if (document === null || typeof document !== 'object' || Array.isArray(document)) {
    throw new ImprunError('bad_request', 'a document must be an object')
  }
  const json = toJsonValue(document) as Record<string, unknown>
  const id = json._id ?? newDocumentId()
  if (typeof id !== 'string' || id.length === 0 || id.length > 512) {
    throw new ImprunError('bad_request', '_id must be a non-empty string of at most 512 characters')
  }
  return { ...json, _id: id }
}

/** Throws unless every top-level key of `update` is an update operator. */
export function assertUpdateOperators(update: Update): void {
  assertNoCodeOperators(update)
  const keys = Object.keys(update)
  if (keys.length === 0 || keys.some((key) => !key.startsWith('$'))) {
    throw new ImprunError('bad_request', 'an update must use update operators only ($set, $inc, …)')
  }
  for (const key of keys) {
    const fields = update[key]
    if (fields === null || typeof fields !== 'object') {
      throw new ImprunError('bad_request', `${key} takes an object of fields`)
    }
    if (key !== '$setOnInsert' && Object.keys(fields).some((field) => field === '_id' || field.startsWith('_id.'))) {
      throw new ImprunError('bad_request', '_id cannot be changed')
    }
  }
}

/**
 * The document an upsert starts from when nothing matched: the filter's equality conditions
 * (`{a: 1}`, `{a: {$eq: 1}}`, dotted paths, inside a top-level `$and`), as MongoDB does.
 */
export function upsertSeed(filter: Filter): Record<string, unknown> {
  const seed: Record<string, unknown> = {}
  const visit = (conditions: Filter): void => {
    for (const [key, value] of Object.entries(conditions)) {
      if (key === '$and' && Array.isArray(value)) {
        for (const part of value) visit(part as Filter)
        continue
      }
      if (key.startsWith('$')) continue
      if (isOperatorObject(value)) {
        if ('$eq' in value) setPath(seed, key, (value as Record<string, unknown>).$eq)
        continue
      }
      setPath(seed, key, value)
    }
  }
  visit(filter)
  return seed
}

function isOperatorObject(value: unknown): value is Record<string, unknown> {
  return (
    value !== null &&
    typeof value === 'object' &&
    !Array.isArray(value) &&
    Object.keys(value).some((key) => key.startsWith('$'))
  )
}

function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split('.')
  let cursor = target
  for (const part of parts.slice(0, -1)) {
    const next = cursor[part]
    if (next === null || typeof next !== 'object') cursor[part] = {}
    cursor = cursor[part] as Record<string, unknown>
  }
  cursor[parts[parts.length - 1]!] = structuredClone(value)
}

/** A unique-index or primary-key violation, reported the same way by every adapter. */
export function duplicateKeyError(collection: string, detail: string, cause?: unknown): ImprunError {
  return new ImprunError('already_exists', `duplicate key in ${collection}: ${detail}`, {
    details: { collection },
    cause,
  })
}

/** Field paths an index may name: identifiers joined by dots. */
export const indexFieldPattern = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/

const forbiddenOperators = new Set(['$where', '$function', '$accumulator', '$eval'])

/**
 * Rejects operators that run code (`$where`, `$function`, `$accumulator`) anywhere in a filter
 * or update: no store evaluates caller-supplied JavaScript.
 */
export function assertNoCodeOperators(value: unknown, path = ''): void {
  if (value === null || typeof value !== 'object') return
  if (Array.isArray(value)) {
    value.forEach((item, index) => assertNoCodeOperators(item, `${path}[${index}]`))
    return
  }
  for (const [key, inner] of Object.entries(value)) {
    if (forbiddenOperators.has(key)) {
      throw new ImprunError('bad_request', `operator ${key} is not allowed${path ? ` (at ${path})` : ''}`)
    }
    assertNoCodeOperators(inner, path ? `${path}.${key}` : key)
  }
}
