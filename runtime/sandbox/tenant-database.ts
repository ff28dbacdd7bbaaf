/**
 * `ctx.imp.db()` on the host side: the gateway's own database, nothing else. The gateway id is
 * bound by the sandbox (user code cannot name another), user collections live under `data.` so
 * they never meet the platform's collections, every argument is checked, and code-running
 * operators are refused by the store itself.
 */
import { ImprunError } from '../../control/errors.ts'
import type { Filter, FindOptions, Store } from '../../control/ports.ts'

export const userCollectionPrefix = 'data.'
const collectionPattern = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/
const maxFindResults = 1000

const operations = new Set([
  'find', 'findOne', 'insertOne', 'insertMany', 'updateOne', 'updateMany', 'replaceOne',
  'deleteOne', 'deleteMany', 'countDocuments', 'findOneAndUpdate',
])

export function createTenantDatabase(store: Store) {
  return async function tenantDatabase(gatewayId: string, operation: string, collection: string, args: unknown[]): Promise<unknown> {
    if (!operations.has(operation)) throw new ImprunError('bad_request', `db().collection().${operation} is not supported`)
    if (!collectionPattern.test(collection)) {
      throw new ImprunError('bad_request', `invalid collection name '${collection}': a letter, then letters, digits, _ or -, at most 64`)
    }
    const target = store.gateway(gatewayId).collection(userCollectionPrefix + collection)
    const object = (value: unknown, what: string): Record<string, unknown> => {
      if (value === undefined) return {}
      if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new ImprunError('bad_request', `${what} must be an object`)
      return value as Record<string, unknown>
    }
    const findOptions = (value: unknown): FindOptions => {
      const options = object(value, 'options') as FindOptions
      const limit = options.limit ?? maxFindResults
      if (!Number.isInteger(limit) || limit < 0 || limit > maxFindResults) {
        throw new ImprunError('bad_request', `limit must be an integer from 1 to ${maxFindResults}`)
      }
      return { sort: options.sort, skip: options.skip, projection: options.projection, limit: limit === 0 ? maxFindResults : limit }
    }
    const [first, second, third] = args
    switch (operation) {
      case 'find':
        return target.find(object(first, 'filter') as Filter, findOptions(second))
      case 'findOne':
        return target.findOne(object(first, 'filter') as Filter, findOptions(second))
      case 'countDocuments':
        return target.countDocuments(object(first, 'filter') as Filter)
      case 'insertOne':
        return { insertedId: (await target.insertOne(object(first, 'document')))._id }
      case 'insertMany': {
        if (!Array.isArray(first) || first.length > maxFindResults) throw new ImprunError('bad_request', `insertMany takes an array of at most ${maxFindResults} documents`)
        const inserted = await target.insertMany(first.map((document) => object(document, 'document')))
        return { insertedCount: inserted.length, insertedIds: inserted.map((document) => document._id) }
      }
      case 'updateOne':
        return target.updateOne(object(first, 'filter'), object(second, 'update'), { upsert: object(third, 'options').upsert === true })
      case 'updateMany':
        return target.updateMany(object(first, 'filter'), object(second, 'update'))
      case 'replaceOne':
        return target.replaceOne(object(first, 'filter'), object(second, 'replacement'), { upsert: object(third, 'options').upsert === true })
      case 'deleteOne':
        return { deletedCount: await target.deleteOne(object(first, 'filter')) }
      case 'deleteMany':
        return { deletedCount: await target.deleteMany(object(first, 'filter')) }
      case 'findOneAndUpdate': {
        const options = object(third, 'options')
        return target.findOneAndUpdate(object(first, 'filter'), object(second, 'update'), {
          upsert: options.upsert === true,
          returnDocument: options.returnDocument === 'before' ? 'before' : 'after',
          sort: options.sort as FindOptions['sort'],
        })
      }
    }
    throw new ImprunError('bad_request', `db().collection().${operation} is not supported`)
  }
}
