import assert from 'node:assert/strict'
import { test } from 'node:test'
import { clientToolSchema } from './tool-schema.ts'

const schema = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  type: 'object',
  properties: {
    tags: { type: 'object', propertyNames: { type: 'string' }, additionalProperties: { type: 'array', items: { type: 'object', propertyNames: { type: 'string' } } } },
    codes: { type: 'object', propertyNames: { type: 'string', pattern: '^[A-Z]{3}$' } },
  },
}

test('the no-op propertyNames goes at every depth; a constraining one stays; the input is not changed', () => {
  const before = structuredClone(schema)
  const cleaned = clientToolSchema(schema)
  assert.deepEqual(cleaned, {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    type: 'object',
    properties: {
      tags: { type: 'object', additionalProperties: { type: 'array', items: { type: 'object' } } },
      codes: { type: 'object', propertyNames: { type: 'string', pattern: '^[A-Z]{3}$' } },
    },
  })
  assert.deepEqual(schema, before)
})

test('dropDefaultDialect removes only a top-level draft 2020-12 $schema', () => {
  assert.equal('$schema' in clientToolSchema(schema, { dropDefaultDialect: true }), false)
  const draft7 = { $schema: 'http://json-schema.org/draft-07/schema#', type: 'object' }
  assert.deepEqual(clientToolSchema(draft7, { dropDefaultDialect: true }), draft7)
})
