import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { isImprunError, type ImprunError } from '../../control/errors.ts'
import { createDefaultCompiler } from './index.ts'

const compiler = createDefaultCompiler()
// Its isolate (and the spare context in it) disposed before the process exits.
after(() => compiler.close?.())
const hometax = readFileSync(join(import.meta.dirname, '../../examples/hometax/calculateTax.ts'), 'utf8')
const request = (files: Record<string, string>, resolveFunction?: (name: string) => Promise<Record<string, string> | null>) => ({
  gatewayId: 'g',
  name: 'subject',
  files,
  resolveFunction,
})

function diagnostics(error: unknown): Array<{ file: string; line: number; message: string }> {
  assert.ok(isImprunError(error, 'compile_failed'), `expected compile_failed, got ${String(error)}`)
  return (error as ImprunError).details!.diagnostics as Array<{ file: string; line: number; message: string }>
}

test('compiles the hometax function and extracts description and JSON Schemas', async () => {
  const compiled = await compiler.compile(request({ 'index.ts': hometax }))
  assert.match(compiled.code, /__imprun_module/)
  assert.ok(compiled.code.length < 20_000, `zod itself is not bundled into the version (${compiled.code.length} bytes)`)
  assert.equal(compiled.metadata.description, 'Income tax for a year: 22% of income after deductions')
  const input = compiled.metadata.inputSchema as { type: string; properties: Record<string, { type: string; description: string }>; required: string[] }
  assert.equal(input.type, 'object')
  assert.deepEqual(input.required.sort(), ['deductions', 'income'])
  assert.equal(input.properties.income!.description, 'Gross income for the year')
  assert.equal((compiled.metadata.outputSchema as { type: string }).type, 'object')
})

test('a function without input or description gets null schema and empty description', async () => {
  const compiled = await compiler.compile(request({ 'index.ts': 'export default () => "hi"' }))
  assert.deepEqual(compiled.metadata, { description: '', inputSchema: null, outputSchema: null })
})

test('bundles relative files, JSON and namespace imports of zod', async () => {
  const compiled = await compiler.compile(
    request({
      'index.ts': "import * as zod from 'zod'\nimport { rate } from './lib/rates.ts'\nimport table from './lib/table.json'\nexport const input = zod.object({ n: zod.number() })\nexport default (ctx: any) => ctx.input.n * rate + table.base",
      'lib/rates.ts': 'export const rate = 0.5',
      'lib/table.json': '{"base": 1}',
    }),
  )
  assert.equal((compiled.metadata.inputSchema as { type: string }).type, 'object')
})

test('imports another function of the same gateway through @functions/<name>', async () => {
  const compiled = await compiler.compile(
    request({ 'index.ts': "import { double } from '@functions/math/helpers'\nexport default () => double(2)" }, async (name) =>
      name === 'math/helpers' ? { 'index.ts': 'export const double = (n: number) => n * 2\nexport default () => 0' } : null,
    ),
  )
  assert.match(compiled.code, /n \* 2/)
  await assert.rejects(
    compiler.compile(request({ 'index.ts': "import x from '@functions/missing'\nexport default x" }, async () => null)),
    (error) => diagnostics(error)[0]!.message.includes("no function 'missing'"),
  )
})

test('a syntax error fails with file, line and message', async () => {
  await assert.rejects(
    compiler.compile(request({ 'index.ts': "import './util.ts'\nexport default () => 1", 'util.ts': 'const a = 1\nconst b = (\n' })),
    (error) => {
      const [first] = diagnostics(error)
      assert.equal(first!.file, 'util.ts')
      assert.ok(first!.line >= 2, `line ${first!.line}`)
      assert.match((error as Error).message, /^util\.ts:\d+:\d+: /)
      return true
    },
  )
})

test('refuses imports of node built-ins and packages', async () => {
  for (const specifier of ['node:fs', 'fs', 'child_process', 'lodash', '../../etc/passwd']) {
    await assert.rejects(compiler.compile(request({ 'index.ts': `import x from '${specifier}'\nexport default () => x` })), (error) => {
      assert.match(diagnostics(error)[0]!.message, /cannot (import|find)/)
      return true
    })
  }
})

test('shape errors: no default export, input not zod, input not an object, description not a string', async () => {
  const cases: Array<[string, RegExp]> = [
    ['export const x = 1', /export a default function/],
    ["export const input = { income: 'number' }\nexport default () => 1", /input must be a zod schema/],
    ["import { z } from 'zod'\nexport const input = z.string()\nexport default () => 1", /z\.object/],
    ['export const description = 42\nexport default () => 1', /description must be a string/],
  ]
  for (const [source, expected] of cases) {
    await assert.rejects(compiler.compile(request({ 'index.ts': source })), (error) => {
      assert.match(diagnostics(error).map((entry) => entry.message).join('\n'), expected)
      return true
    })
  }
})

test('hostile top-level code fails the compile instead of hanging or crashing the host', async () => {
  await assert.rejects(compiler.compile(request({ 'index.ts': 'while (true) {}\nexport default () => 1' })), (error) => {
    assert.match(diagnostics(error)[0]!.message, /too long/)
    return true
  })
  await assert.rejects(
    compiler.compile(request({ 'index.ts': 'const a: string[] = []\nwhile (true) a.push("x".repeat(1e6))\nexport default () => 1' })),
    (error) => {
      assert.match(diagnostics(error)[0]!.message, /too much memory|too long/)
      return true
    },
  )
  await assert.rejects(compiler.compile(request({ 'index.ts': "throw new Error('boom')\nexport default () => 1" })), (error) => {
    assert.match(diagnostics(error)[0]!.message, /boom/)
    return true
  })
  // The compiler still works afterwards.
  const compiled = await compiler.compile(request({ 'index.ts': hometax }))
  assert.ok(compiled.metadata.inputSchema)
})
