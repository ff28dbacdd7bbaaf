/**
 * JSON Schemas as tool clients receive them. zod writes `propertyNames: {"type": "string"}` for
 * every `z.record(z.string(), …)`; JSON object keys are always strings, so it says nothing, yet
 * some clients and LLM APIs reject the keyword. It is dropped wherever it is exactly that no-op;
 * any other `propertyNames` (a pattern, an enum) is kept because it constrains.
 *
 * `dropDefaultDialect` also removes a top-level `$schema` naming draft 2020-12, MCP's default
 * dialect, which costs a model some tokens per tool. Only for schemas we write ourselves: a
 * user's `$schema` is kept, as the MCP conformance suite requires.
 */
export function clientToolSchema<Schema>(schema: Schema, options: { dropDefaultDialect?: boolean } = {}): Schema {
  const stripped = strip(schema)
  if (options.dropDefaultDialect && stripped !== null && typeof stripped === 'object' && !Array.isArray(stripped) && (stripped as { $schema?: unknown }).$schema === draft2020) {
    delete (stripped as { $schema?: unknown }).$schema
  }
  return stripped as Schema
}

const draft2020 = 'https://json-schema.org/draft/2020-12/schema'

function strip(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(strip)
  if (value === null || typeof value !== 'object') return value
  const copy: Record<string, unknown> = {}
  for (const [key, item] of Object.entries(value)) {
    if (key === 'propertyNames' && isStringKeys(item)) continue
    copy[key] = strip(item)
  }
  return copy
}

function isStringKeys(value: unknown): boolean {
  return value !== null && typeof value === 'object' && !Array.isArray(value) && Object.keys(value).length === 1 && (value as { type?: unknown }).type === 'string'
}
