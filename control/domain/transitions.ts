/**
 * One state transition = one conditional write filtered on id + expected state (+ lease). When
 * the write matches nothing, `explainMiss` reads the record once and names what went wrong, so
 * every store reports the same error for the same miss.
 */
import { ImprunError, notFound } from '../errors.ts'
import type { Collection, Filter, StoredDocument, Update } from '../ports.ts'

export interface Expectation {
  /** Field → value the record must still have (e.g. phase, lockedBy, revision). */
  [field: string]: unknown
}

export async function conditionalUpdate<T extends StoredDocument>(
  collection: Collection<T>,
  kind: string,
  id: string,
  expected: Expectation,
  update: Update,
): Promise<T> {
  const filter: Filter = { _id: id, ...expected }
  const updated = await collection.findOneAndUpdate(filter, update, { returnDocument: 'after' })
  if (updated) return updated
  throw explainMiss(kind, id, expected, await collection.findOne({ _id: id }))
}

/** Names the reason a conditional write on `id` missed, given the record as it is now. */
export function explainMiss(kind: string, id: string, expected: Expectation, current: StoredDocument | null): ImprunError {
  if (!current) return notFound(kind, id)
  if ('lockedBy' in expected && current.lockedBy !== expected.lockedBy) {
    return new ImprunError('lease_lost', `${kind} '${id}': the lease was lost to ${String(current.lockedBy ?? 'nobody')}`, {
      details: { kind, id, holder: current.lockedBy ?? null },
    })
  }
  if ('lockedAt' in expected && current.lockedAt !== expected.lockedAt) {
    return new ImprunError('lease_lost', `${kind} '${id}': the lease expired and was taken again`, { details: { kind, id } })
  }
  const differing = Object.keys(expected).filter((field) => JSON.stringify(current[field]) !== JSON.stringify(expected[field]))
  const field = differing[0] ?? 'state'
  return new ImprunError(
    'conflict',
    `${kind} '${id}' changed concurrently: ${field} is ${JSON.stringify(current[field])}, expected ${JSON.stringify(expected[field])}`,
    { retryable: true, details: { kind, id, field, expected: expected[field], actual: current[field] } },
  )
}
