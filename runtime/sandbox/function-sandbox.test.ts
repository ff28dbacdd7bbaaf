import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { createSqliteStore } from '../../control/adapters/sqlite/sqlite-store.ts'
import { ImprunError } from '../../control/errors.ts'
import type { Store } from '../../control/ports.ts'
import { createDefaultCompiler } from '../compile/index.ts'
import { FunctionSandbox, type InvocationObserver, type InvocationRequest, type InvocationResult, type LogLine, type ProgressReport } from './function-sandbox.ts'
import { createTenantDatabase } from './tenant-database.ts'

const compiler = createDefaultCompiler()
let directory: string
let store: Store
let sandbox: FunctionSandbox
const codes = new Map<string, string>()

before(async () => {
  directory = await mkdtemp(join(tmpdir(), 'imprun-sandbox-'))
  store = createSqliteStore({ directory })
  sandbox = new FunctionSandbox({
    limits: { timeoutMs: 500, memoryLimitMb: 64, maxResponseBytes: 1024 * 1024 },
    services: {
      db: createTenantDatabase(store),
      fetch: async () => {
        throw new ImprunError('forbidden', 'egress refused in this test')
      },
      invoke: (caller, name, input) => run(caller.gatewayId, name, input, (caller.depth ?? 0) + 1),
    },
  })
})
after(async () => {
  await sandbox.close()
  await store.close()
  await rm(directory, { recursive: true, force: true })
})

async function deploy(gatewayId: string, name: string, source: string): Promise<void> {
  const compiled = await compiler.compile({ gatewayId, name, files: { 'index.ts': source } })
  codes.set(`${gatewayId}/${name}`, compiled.code)
}

let versions = 0
function run(gatewayId: string, name: string, input: unknown = {}, depth = 0, observer?: InvocationObserver): Promise<InvocationResult> {
  const code = codes.get(`${gatewayId}/${name}`)
  if (!code) throw new Error(`no ${name}`)
  const request: InvocationRequest = {
    gatewayId,
    stage: 'dev',
    functionName: name,
    versionId: `${name}@${code.length}`,
    loadCode: async () => code,
    input,
    request: { method: 'POST', path: `/${name}`, query: {}, headers: {}, body: input },
    env: { GREETING: 'hello' },
    requestId: `r${++versions}`,
    depth,
    ...(observer ? { observer } : {}),
  }
  return sandbox.invoke(request)
}

test('runs the hometax function with validated input', async () => {
  await deploy('hometax', 'calculateTax', (await import('node:fs')).readFileSync(join(import.meta.dirname, '../../examples/hometax/calculateTax.ts'), 'utf8'))
  const result = await run('hometax', 'calculateTax', { income: 50_000_000, deductions: 10_000_000 })
  assert.deepEqual(result.outcome, { ok: true, status: 200, headers: {}, value: { tax: 8_800_000 }, empty: false })
  const invalid = await run('hometax', 'calculateTax', { income: 'lots' })
  assert.equal(invalid.outcome.ok, false)
  assert.ok(!invalid.outcome.ok && invalid.outcome.status === 400 && invalid.outcome.code === 'invalid_input')
  assert.match(!invalid.outcome.ok ? invalid.outcome.message : '', /income/)
})

test('ctx: env, request, status, headers, logs, thrown status errors', async () => {
  await deploy('g', 'ctx', `export default async (ctx) => {
    ctx.log.info('about to answer', { n: 1 })
    console.warn('through console')
    ctx.setStatus(201)
    ctx.setHeader('X-Thing', 'yes')
    return { greeting: ctx.env.GREETING, method: ctx.request.method, gateway: ctx.gateway }
  }`)
  const result = await run('g', 'ctx')
  assert.deepEqual(result.outcome, { ok: true, status: 201, headers: { 'x-thing': 'yes' }, value: { greeting: 'hello', method: 'POST', gateway: 'g' }, empty: false })
  assert.deepEqual(result.logs.map((line) => [line.level, line.message]), [['info', 'about to answer {"n":1}'], ['warn', 'through console']])
  await deploy('g', 'fails', `export default (ctx) => { if (ctx.input.who) ctx.fail(404, 'no such person'); throw new Error('boom') }`)
  const notFound = await run('g', 'fails', { who: 'x' })
  assert.deepEqual(notFound.outcome.ok ? null : [notFound.outcome.status, notFound.outcome.message], [404, 'no such person'])
  const boom = await run('g', 'fails')
  assert.deepEqual(boom.outcome.ok ? null : [boom.outcome.status, boom.outcome.code, boom.outcome.message], [500, 'function_error', 'boom'])
})

test("imp.db() is the gateway's own database, with Mongo-style operations", async () => {
  await deploy('alpha', 'notes', `export default async (ctx) => {
    const notes = ctx.imp.db().collection('notes')
    if (ctx.input.op === 'add') return notes.insertOne({ text: ctx.input.text, n: ctx.input.n })
    if (ctx.input.op === 'bump') return notes.updateMany({ n: { $gte: 2 } }, { $inc: { n: 10 } })
    if (ctx.input.op === 'evil') return notes.find({ $where: 'true' }).toArray()
    return notes.find({}).sort({ n: 1 }).project({ _id: 0 }).toArray()
  }`)
  await deploy('beta', 'notes', codesSource('alpha'))
  await run('alpha', 'notes', { op: 'add', text: 'a', n: 1 })
  await run('alpha', 'notes', { op: 'add', text: 'b', n: 2 })
  const bumped = await run('alpha', 'notes', { op: 'bump' })
  assert.deepEqual(bumped.outcome.ok && bumped.outcome.value, { matchedCount: 1, modifiedCount: 1, upsertedId: null })
  const listed = await run('alpha', 'notes', { op: 'list' })
  assert.deepEqual(listed.outcome.ok && listed.outcome.value, [{ text: 'a', n: 1 }, { text: 'b', n: 12 }])
  const other = await run('beta', 'notes', { op: 'list' })
  assert.deepEqual(other.outcome.ok && other.outcome.value, [], 'another gateway sees none of it')
  const evil = await run('alpha', 'notes', { op: 'evil' })
  assert.ok(!evil.outcome.ok && evil.outcome.status === 400 && /\$where/.test(evil.outcome.message))
  assert.deepEqual(await store.gateway('alpha').listCollections(), ['data.notes'])
})

function codesSource(_: string): string {
  return `export default async (ctx) => ctx.imp.db().collection('notes').find({}).toArray()`
}

test('hostile: infinite loops (sync and after await) time out; the sandbox keeps serving', async () => {
  await deploy('hostile', 'spin', 'export default () => { while (true) {} }')
  await deploy('hostile', 'spinLater', 'export default async () => { await null; for (;;) {} }')
  await deploy('hostile', 'hang', 'export default () => new Promise(() => {})')
  await deploy('hostile', 'ok', 'export default () => "still here"')
  for (const name of ['spin', 'spinLater', 'hang']) {
    const result = await run('hostile', name)
    assert.ok(!result.outcome.ok && result.outcome.status === 504 && result.outcome.code === 'function_timeout', `${name}: ${JSON.stringify(result.outcome)}`)
  }
  assert.deepEqual((await run('hostile', 'ok')).outcome, { ok: true, status: 200, headers: {}, value: 'still here', empty: false })
})

test("hostile: a memory bomb loses only its own gateway's isolate", async () => {
  await deploy('bomb', 'grow', 'export default () => { const a = []; for (;;) a.push(new Array(1e6).fill(1)) }')
  await deploy('bomb', 'ok', 'export default () => 1')
  await deploy('bystander', 'ok', 'export default () => 2')
  assert.equal((await run('bystander', 'ok')).outcome.ok, true)
  const result = await run('bomb', 'grow')
  assert.ok(!result.outcome.ok && result.outcome.code === 'function_memory_limit', JSON.stringify(result.outcome))
  assert.deepEqual((await run('bomb', 'ok')).outcome.ok && (await run('bomb', 'ok')).outcome, { ok: true, status: 200, headers: {}, value: 1, empty: false })
  assert.equal((await run('bystander', 'ok')).outcome.ok, true)
})

test('hostile: huge responses are refused', async () => {
  await deploy('hostile', 'huge', 'export default () => "x".repeat(2 * 1024 * 1024)')
  const result = await run('hostile', 'huge')
  assert.ok(!result.outcome.ok && result.outcome.code === 'response_too_large', JSON.stringify(result.outcome))
})

test('hostile: nothing of the host is reachable', async () => {
  await deploy('hostile', 'probe', `export default () => {
    const found = {}
    found.process = typeof process
    // A literal require('fs') is already refused by the compiler; look it up dynamically.
    found.require = typeof (globalThis as any)['req' + 'uire']
    found.fs = typeof globalThis.fs
    found.buffer = typeof Buffer
    found.constructorEscape = (() => { try { return typeof this.constructor.constructor('return process')() } catch (e) { return 'threw' } })()
    found.functionEscape = (() => { try { return typeof Function('return process')() } catch (e) { return 'threw' } })()
    found.importMeta = (() => { try { return typeof eval('import.meta') } catch (e) { return 'threw' } })()
    found.globals = Object.getOwnPropertyNames(globalThis).filter((key) => /^(bridge|ivm|Reference|ExternalCopy|Callback|host.*)$|isolated/i.test(key))
    return found
  }`)
  const result = await run('hostile', 'probe')
  assert.ok(result.outcome.ok, JSON.stringify(result.outcome))
  const found = result.outcome.value as Record<string, unknown>
  assert.equal(found.process, 'undefined')
  assert.equal(found.require, 'undefined')
  assert.equal(found.fs, 'undefined')
  assert.equal(found.buffer, 'undefined')
  assert.ok(['undefined', 'threw'].includes(found.constructorEscape as string))
  assert.ok(['undefined', 'threw'].includes(found.functionEscape as string))
  assert.equal(found.importMeta, 'threw')
  assert.deepEqual(found.globals, [])
})

test('hostile: prototype tricks on bridged objects stay inside the isolate', async () => {
  await deploy('hostile', 'proto', `export default async (ctx) => {
    Object.prototype.polluted = 'yes'
    Array.prototype.map = function () { return ['hijacked'] }
    JSON.parse = () => ({ value: 'forged' })
    const db = ctx.imp.db()
    try { db.collection.constructor.constructor('return this')().process } catch {}
    return { ok: true }
  }`)
  const result = await run('hostile', 'proto')
  assert.ok(result.outcome.ok)
  assert.equal(({} as Record<string, unknown>).polluted, undefined, 'the host prototype is untouched')
  assert.deepEqual([1].map((n) => n + 1), [2])
})

test("fetch refused by the egress policy surfaces as the function's error", async () => {
  await deploy('hostile', 'ssrf', `export default async () => { await fetch('http://169.254.169.254/latest/meta-data') }`)
  const result = await run('hostile', 'ssrf')
  assert.ok(!result.outcome.ok && result.outcome.status === 403, JSON.stringify(result.outcome))
})

test('invoke calls another function of the same gateway and refuses runaway recursion', async () => {
  await deploy('g', 'double', `export default (ctx) => ({ n: ctx.input.n * 2 })`)
  await deploy('g', 'quad', `export default async (ctx) => { const once = await ctx.imp.invoke('double', { n: ctx.input.n }); return ctx.imp.invoke('double', once) }`)
  await deploy('g', 'forever', `export default (ctx) => ctx.imp.invoke('forever', {})`)
  assert.deepEqual((await run('g', 'quad', { n: 3 })).outcome, { ok: true, status: 200, headers: {}, value: { n: 12 }, empty: false })
  const runaway = await run('g', 'forever')
  assert.ok(!runaway.outcome.ok && runaway.outcome.status === 508, JSON.stringify(runaway.outcome))
})

test('concurrent invocations of one context keep their own state', async () => {
  await deploy('g', 'echo', `export default async (ctx) => { await new Promise((resolve) => setTimeout(resolve, ctx.input.wait)); ctx.setStatus(200 + ctx.input.n); return ctx.input.n }`)
  const results = await Promise.all(Array.from({ length: 20 }, (_, n) => run('g', 'echo', { n, wait: 20 - n })))
  results.forEach((result, n) => assert.deepEqual(result.outcome, { ok: true, status: 200 + n, headers: {}, value: n, empty: false }))
})

test('console, timers and fetch outside ctx belong to their own invocation while others overlap it', async () => {
  // A's second half (log, timer) runs after B has started and ended in the same context.
  await deploy('g', 'overlap', `export default async (ctx) => {
    await new Promise((resolve) => setTimeout(resolve, ctx.input.first))
    console.log('log of ' + ctx.input.n)
    await new Promise((resolve) => setTimeout(resolve, ctx.input.second))
    return ctx.input.n
  }`)
  const first = run('g', 'overlap', { n: 1, first: 60, second: 30 })
  await new Promise((resolve) => setTimeout(resolve, 10))
  const second = await run('g', 'overlap', { n: 2, first: 0, second: 0 })
  const [a, b] = [await first, second]
  assert.deepEqual(a.outcome, { ok: true, status: 200, headers: {}, value: 1, empty: false }, 'the timer set after the other invocation ended still fires')
  assert.deepEqual(a.logs.map((line) => line.message), ['log of 1'])
  assert.deepEqual(b.logs.map((line) => line.message), ['log of 2'])
})

test('an observer hears log lines and ctx.progress as they happen; bad progress is the function\'s error', async () => {
  await deploy('g', 'observed', `export default async (ctx) => {
    console.log('one')
    ctx.progress(1, 2, 'half')
    await new Promise((resolve) => setTimeout(resolve, 20))
    ctx.log.warn('two')
    ctx.progress(2, 2)
    try { ctx.progress('lots') } catch (error) { return error.message }
    return 'unreachable'
  }`)
  const heard: Array<LogLine | ProgressReport> = []
  const result = await run('g', 'observed', {}, 0, { log: (line) => heard.push(line), progress: (report) => heard.push(report) })
  assert.deepEqual(result.outcome, { ok: true, status: 200, headers: {}, value: 'progress needs a number: ctx.progress(done, total?, message?)', empty: false })
  assert.deepEqual(
    heard.map((item) => ('progress' in item ? item : item.message)),
    ['one', { progress: 1, total: 2, message: 'half' }, 'two', { progress: 2, total: 2 }],
  )
  const failing = await run('g', 'observed', {}, 0, { log: () => { throw new Error('observer broke') } })
  assert.equal(failing.outcome.ok, true, "an observer's failure does not fail the invocation")
})

test('many functions called in turn stay within the memory limit: released contexts are freed', async () => {
  // 150 versions × ~1 MiB per context is far beyond the 64 MiB isolate: only released (and
  // collected) contexts let this pass.
  const names = Array.from({ length: 150 }, (_, n) => `many${n}`)
  for (const name of names) await deploy('crowded', name, `import { z } from 'zod'\nexport const input = z.object({ n: z.number() })\nexport default (ctx) => ({ name: '${name}', n: ctx.input.n })`)
  for (const [n, name] of names.entries()) {
    const result = await run('crowded', name, { n })
    assert.deepEqual(result.outcome, { ok: true, status: 200, headers: {}, value: { name, n }, empty: false }, `${name}: ${JSON.stringify(result.outcome)}`)
  }
  const stats = sandbox.stats()
  assert.ok(stats.contexts <= 48, `warm contexts ${stats.contexts}`)
})

test('a cancelled invocation answers at once with 499 and the gateway keeps serving', async () => {
  await deploy('cancel', 'slow', `export default async () => { await new Promise((resolve) => setTimeout(resolve, 5000)); return 'late' }`)
  await deploy('cancel', 'quick', `export default () => 'quick'`)
  const code = codes.get('cancel/slow')!
  const controller = new AbortController()
  const started = performance.now()
  const pending = sandbox.invoke({
    gatewayId: 'cancel', stage: 'dev', functionName: 'slow', versionId: 'slow@1', loadCode: async () => code, input: {},
    request: { method: 'POST', path: '/slow', query: {}, headers: {}, body: null }, env: {}, requestId: 'cancel-1', signal: controller.signal,
  })
  setTimeout(() => controller.abort(), 50)
  const result = await pending
  assert.ok(performance.now() - started < 400, `answered after ${performance.now() - started} ms`)
  assert.deepEqual(result.outcome, { ok: false, status: 499, code: 'cancelled', message: 'the caller cancelled the invocation' })
  assert.equal((await run('cancel', 'quick')).outcome.ok, true)
})
