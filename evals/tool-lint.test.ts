import assert from 'node:assert/strict'
import { test } from 'node:test'
import { formatReport, lintFreshPlatform, lintTools, refCycle } from './tool-lint.ts'

test('the tool surface has no lint errors', async () => {
  const report = await lintFreshPlatform()
  console.log(formatReport(report))
  assert.deepEqual(report.errors, [])
  assert.ok(report.sizes.every((size) => size.tools > 0))
  const management = report.sizes[0]!
  assert.ok(management.modelTokens > 0 && management.modelTokens < management.listTokens)
})

test('the lint catches what it is meant to catch', () => {
  const report = lintTools('test', [
    { name: 'bad name!', inputSchema: { type: 'object', properties: { a: { type: 'string' } } } },
    { name: 'user.greet', description: 'ok', inputSchema: { type: 'object', properties: { a: { type: 'string', description: 'A', oneOf: [] } } } },
  ])
  const messages = report.errors.map((finding) => `${finding.tool}: ${finding.message}`)
  assert.ok(messages.some((message) => message.startsWith('bad name!: name does not match')))
  assert.ok(messages.includes('bad name!: no description'))
  assert.ok(messages.includes("bad name!: input property 'a' has no description"))
  assert.ok(report.notes.some((note) => note.tool === 'user.greet' && /mapped/.test(note.message)))
  assert.ok(report.notes.some((note) => note.tool === 'user.greet' && /oneOf/.test(note.message)))
  const strict = lintTools('ours', [{ name: 'pick', description: 'Pick', inputSchema: { type: 'object', properties: { a: { description: 'A', propertyNames: { pattern: 'x' } } } } }], { strict: true, modelTokenBudget: 5 })
  assert.deepEqual(
    strict.errors.map((finding) => finding.message),
    [`the model-visible tool surface is ${strict.sizes[0]!.modelTokens} tokens, over its budget of 5`, 'input schema uses propertyNames (not supported by every major client)'],
  )
  assert.match(refCycle({ $defs: { a: { properties: { b: { $ref: '#/$defs/b' } } }, b: { items: { $ref: '#/$defs/a' } } }, $ref: '#/$defs/a' }) ?? '', /#\/\$defs\/a -> #\/\$defs\/b -> #\/\$defs\/a/)
  assert.equal(refCycle({ $defs: { a: { type: 'string' } }, properties: { x: { $ref: '#/$defs/a' } } }), null)
})
