/**
 * Reference resolution and end-state matching for scenario data (see scenario.ts for the
 * syntax): `${setup.NAME.path}` / `${steps.N.path}` / `${checks.NAME.path}` and `{ "$file": … }`.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

export const repositoryRoot = join(import.meta.dirname, '..')

export interface References {
  setup: Record<string, unknown>
  steps: unknown[]
  checks: Record<string, unknown>
}

export function emptyReferences(): References {
  return { setup: {}, steps: [], checks: {} }
}

const referencePattern = /\$\{((?:setup|steps|checks)(?:\.[^}.]+)+)\}/g

function lookup(references: References, path: string): unknown {
  let value: unknown = references
  for (const part of path.split('.')) {
    if (value === null || typeof value !== 'object') throw new Error(`unresolved reference \${${path}}`)
    value = (value as Record<string, unknown>)[part]
  }
  if (value === undefined) throw new Error(`unresolved reference \${${path}}`)
  return value
}

/** A deep copy of `value` with references and `$file` objects replaced. Throws on a missing reference. */
export function resolveValue(value: unknown, references: References): unknown {
  if (typeof value === 'string') {
    const whole = /^\$\{([^}]+)\}$/.exec(value)
    if (whole && referencePattern.test(value)) {
      referencePattern.lastIndex = 0
      return lookup(references, whole[1]!)
    }
    referencePattern.lastIndex = 0
    return value.replace(referencePattern, (_, path: string) => {
      const found = lookup(references, path)
      return typeof found === 'string' ? found : JSON.stringify(found)
    })
  }
  if (Array.isArray(value)) return value.map((item) => resolveValue(item, references))
  if (value !== null && typeof value === 'object') {
    const record = value as Record<string, unknown>
    if (typeof record.$file === 'string' && Object.keys(record).length === 1) return readFileSync(join(repositoryRoot, record.$file), 'utf8')
    return Object.fromEntries(Object.entries(record).map(([key, item]) => [key, resolveValue(item, references)]))
  }
  return value
}

/** Why `actual` does not match `expected` (null when it does). */
export function mismatch(actual: unknown, expected: unknown, at = '$'): string | null {
  if (expected === '$any') return actual === undefined || actual === null ? `${at}: expected a value, got ${show(actual)}` : null
  if (expected === '$absent') return actual === undefined ? null : `${at}: expected nothing, got ${show(actual)}`
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual)) return `${at}: expected an array, got ${show(actual)}`
    if (actual.length !== expected.length) return `${at}: expected ${expected.length} items, got ${actual.length}`
    for (const [index, item] of expected.entries()) {
      const problem = mismatch(actual[index], item, `${at}[${index}]`)
      if (problem) return problem
    }
    return null
  }
  if (expected !== null && typeof expected === 'object') {
    const record = expected as Record<string, unknown>
    if ('$contains' in record && Object.keys(record).length === 1) {
      if (!Array.isArray(actual)) return `${at}: expected an array, got ${show(actual)}`
      return actual.some((item) => mismatch(item, record.$contains) === null) ? null : `${at}: no item matches ${show(record.$contains)} in ${show(actual)}`
    }
    if (actual === null || typeof actual !== 'object' || Array.isArray(actual)) return `${at}: expected an object, got ${show(actual)}`
    for (const [key, item] of Object.entries(record)) {
      const problem = mismatch((actual as Record<string, unknown>)[key], item, `${at}.${key}`)
      if (problem) return problem
    }
    return null
  }
  return Object.is(actual, expected) ? null : `${at}: expected ${show(expected)}, got ${show(actual)}`
}

function show(value: unknown): string {
  const text = value === undefined ? 'undefined' : JSON.stringify(value)
  return text.length > 300 ? `${text.slice(0, 300)}…` : text
}
