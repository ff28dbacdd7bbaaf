import assert from 'node:assert/strict'
import { setImmediate as idle } from 'node:timers/promises'
import { test, type TestContext } from 'node:test'
import { isImprunError } from '../../control/errors.ts'
import { bundle } from '../compile/esbuild-compiler.ts'
import { createMetadataExtractor, type MetadataExtractorOptions } from './metadata-extractor.ts'

/** An extractor disposed when the test ends. */
function extractor(t: TestContext, options?: MetadataExtractorOptions) {
  const extract = createMetadataExtractor(options)
  t.after(() => extract.close())
  return extract
}

const compiled = (source: string) => bundle({ gatewayId: 'g', name: 'subject', files: { 'index.ts': source } })
const withInput = "import { z } from 'zod'\nexport const input = z.object({ n: z.number() })\nexport default () => null\n"

test('every context is released: many extractions in a row stay under a small memory limit', async (t) => {
  // A context costs about 1 MiB of the isolate's heap: one left alive per extraction (unreleased,
  // or kept by an unreleased Reference) fills 32 MiB after about 30. Modules that keep large
  // values alive would only measure how soon V8 collects released contexts, so this one keeps none.
  const extract = extractor(t, { memoryLimitMb: 32 })
  const code = await compiled(withInput)
  for (let n = 0; n < 60; n++) {
    const metadata = await extract(code)
    assert.equal(metadata.inputSchema?.type, 'object')
    // Lets the spare context be built between extractions, as between publishes.
    if (n % 2 === 0) await idle()
  }
})

test('a module cannot reach the next one through the spare context or shared globals', async (t) => {
  const extract = extractor(t)
  await extract(await compiled(withInput))
  await idle()
  await extract(await compiled("globalThis.__imprun_zod = null\nObject.prototype.type = 'string'\nexport default () => 1\n"))
  await idle()
  const metadata = await extract(await compiled(withInput))
  assert.equal(metadata.inputSchema?.type, 'object')
})

test('after hostile modules (endless loop, memory bomb) the extractor and its spare context still work', async (t) => {
  const extract = extractor(t, { memoryLimitMb: 32, timeoutMs: 200 })
  const good = await compiled(withInput)
  await extract(good)
  await idle()
  await assert.rejects(extract(await compiled('while (true) {}\nexport default () => 1')), (error) => {
    assert.ok(isImprunError(error, 'compile_failed'))
    assert.match(error.message, /too long/)
    return true
  })
  await idle()
  await assert.rejects(extract(await compiled('const a: string[] = []\nwhile (true) a.push("x".repeat(1e6))\nexport default () => 1')), (error) => {
    assert.ok(isImprunError(error, 'compile_failed'))
    assert.match(error.message, /too much memory|too long/)
    return true
  })
  // The spare is rebuilt in a new isolate once the old one is gone.
  await idle()
  assert.equal((await extract(good)).inputSchema?.type, 'object')
  await idle()
  assert.equal((await extract(good)).inputSchema?.type, 'object')
})

test('concurrent extractions each get their own context', async (t) => {
  const extract = extractor(t)
  const sources = Array.from({ length: 8 }, (_, n) => compiled(`export const description = 'n${n}'\nexport default () => ${n}\n`))
  const results = await Promise.all(sources.map(async (source) => extract(await source)))
  assert.deepEqual(
    results.map((metadata) => metadata.description),
    Array.from({ length: 8 }, (_, n) => `n${n}`),
  )
})
