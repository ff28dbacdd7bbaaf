/**
 * Scale benchmarks, measured in one run:
 *  1. first request after publish: publish request time, then the first call (context built
 *     or pre-warmed) against a warm call of the same function;
 *  2. request latency on a gateway environment with 10 vs N (default 10,000) published
 *     functions: the same hot function, and a random one (its context usually cold);
 *  3. memory per published-but-idle function: heap and RSS growth per function after GC.
 * Publishing N functions goes through the FunctionService in-process (no HTTP) with a compiler
 * that memoizes identical source, so the bench measures the runtime, not N esbuild runs.
 * Run: node --expose-gc bench/scale-bench.ts [--functions 10000] [--samples 2000]
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { Agent, request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { startEmbeddedPlatform } from '../control/platform.ts'
import type { CompiledFunction, Compiler, CompileRequest } from '../control/ports.ts'
import { createDefaultCompiler } from '../runtime/compile/index.ts'

const { values } = parseArgs({ options: { functions: { type: 'string', default: '10000' }, samples: { type: 'string', default: '2000' } } })
const functionCount = Number(values.functions)
const samples = Number(values.samples)
const gc = (globalThis as { gc?: () => void }).gc
if (!gc) console.log('(run with --expose-gc for the memory figures)')

const real = createDefaultCompiler()
const compiled = new Map<string, Promise<CompiledFunction>>()
const memoizingCompiler: Compiler = {
  compile(compileRequest: CompileRequest) {
    const key = JSON.stringify(compileRequest.files)
    let result = compiled.get(key)
    if (!result) compiled.set(key, (result = real.compile(compileRequest)))
    return result
  },
}

const directory = await mkdtemp(join(tmpdir(), 'imprun-scale-'))
const platform = await startEmbeddedPlatform({ dataDirectory: directory, port: 0, adminToken: 'scale', compiler: memoizingCompiler, reconciler: { idlePollMs: 20 } })
const agent = new Agent({ keepAlive: true, maxSockets: 8 })
const { control } = platform

function get(path: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const outgoing = request(`${platform.url}${path}`, { agent }, (response) => {
      let text = ''
      response.setEncoding('utf8')
      response.on('data', (chunk) => (text += chunk))
      response.on('end', () => resolve({ status: response.statusCode ?? 0, text }))
    })
    outgoing.on('error', reject)
    outgoing.end()
  })
}

async function waitStarted(id: string): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if ((await control.gateways.get(id)).phase === 'Started') return
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  throw new Error(`${id} did not start`)
}

const source = (n: number) => `import { z } from 'zod'\nexport const description = 'function ${n}'\nexport const input = z.object({ x: z.coerce.number().optional() })\nexport default (ctx) => ({ n: ${n % 10}, x: ctx.input.x ?? null })`

async function publishMany(gatewayId: string, count: number): Promise<void> {
  for (let n = 0; n < count; n++) {
    await control.functions.write(gatewayId, `f${n}`, { files: { 'index.ts': source(n) } })
    await control.functions.publish(gatewayId, `f${n}`)
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
}

async function latencies(paths: () => string, count: number): Promise<{ p50: number; p99: number }> {
  const measured: number[] = []
  for (let i = 0; i < count; i++) {
    const path = paths()
    const started = performance.now()
    const answer = await get(path)
    measured.push(performance.now() - started)
    if (answer.status !== 200) throw new Error(`${path}: ${answer.status} ${answer.text}`)
  }
  measured.sort((a, b) => a - b)
  return { p50: percentile(measured, 50), p99: percentile(measured, 99) }
}

function memory(): { heap: number; rss: number } {
  gc?.()
  gc?.()
  const usage = process.memoryUsage()
  return { heap: usage.heapUsed, rss: usage.rss }
}

const ms = (value: number) => `${value.toFixed(2)} ms`
try {
  await control.gateways.create({ id: 'small' })
  await control.gateways.create({ id: 'large' })
  await waitStarted('small')
  await waitStarted('large')

  // 1. first request after publish
  await publishMany('small', 10)
  await latencies(() => '/small/dev/f1', 200)
  const firsts: number[] = []
  const publishes: number[] = []
  for (let round = 0; round < 20; round++) {
    await control.functions.write('small', 'fresh', { files: { 'index.ts': `export default () => ({ round: ${round} })` } })
    compiled.clear()
    const started = performance.now()
    await control.functions.publish('small', 'fresh')
    publishes.push(performance.now() - started)
    const called = performance.now()
    for (;;) {
      const answer = await get('/small/dev/fresh')
      if (answer.status === 200 && JSON.parse(answer.text).round === round) break
    }
    firsts.push(performance.now() - called)
  }
  firsts.sort((a, b) => a - b)
  publishes.sort((a, b) => a - b)
  const warm = await latencies(() => '/small/dev/fresh', 500)
  console.log(`publish (compile + metadata + durable write), in-process: p50 ${ms(percentile(publishes, 50))}, p99 ${ms(percentile(publishes, 99))}`)
  console.log(`first request after publish: p50 ${ms(percentile(firsts, 50))}, p99 ${ms(percentile(firsts, 99))}; warm request p50 ${ms(warm.p50)} → first ÷ warm ${(percentile(firsts, 50) / warm.p50).toFixed(2)}`)

  // 2 + 3. 10 vs N functions, memory per idle function
  const before = memory()
  const publishStarted = performance.now()
  await publishMany('large', functionCount)
  const publishSeconds = (performance.now() - publishStarted) / 1000
  await get('/large/dev/f0')
  const after = memory()
  console.log(`published ${functionCount} functions in-process in ${publishSeconds.toFixed(1)} s (${(functionCount / publishSeconds).toFixed(0)}/s, memoized compile)`)

  const hotSmall = await latencies(() => '/small/dev/f1', samples)
  const hotLarge = await latencies(() => `/large/dev/f${functionCount - 1}`, samples)
  const randomSmall = await latencies(() => `/small/dev/f${Math.floor(Math.random() * 10)}`, samples)
  const randomLarge = await latencies(() => `/large/dev/f${Math.floor(Math.random() * functionCount)}`, Math.min(samples, 1000))
  console.log(`same function, 10 vs ${functionCount} published: p50 ${ms(hotSmall.p50)} vs ${ms(hotLarge.p50)} (ratio ${(hotLarge.p50 / hotSmall.p50).toFixed(2)}), p99 ${ms(hotSmall.p99)} vs ${ms(hotLarge.p99)}`)
  console.log(`random function, 10 vs ${functionCount} published: p50 ${ms(randomSmall.p50)} vs ${ms(randomLarge.p50)} (ratio ${(randomLarge.p50 / randomSmall.p50).toFixed(2)}; with ${functionCount} most calls build a context: at most 48 stay warm per gateway), p99 ${ms(randomSmall.p99)} vs ${ms(randomLarge.p99)}`)
  const after2 = memory()
  const stats = platform.runtime.sandbox.stats()
  console.log(`memory per published-but-idle function: heap ${((after.heap - before.heap) / functionCount / 1024).toFixed(2)} KiB, RSS ${((after.rss - before.rss) / functionCount / 1024).toFixed(2)} KiB (after random calls: RSS ${(after2.rss / 1024 / 1024).toFixed(0)} MiB total, ${stats.contexts} warm contexts, isolate heaps ${(stats.heapBytes / 1024 / 1024).toFixed(1)} MiB)`)
} finally {
  agent.destroy()
  await platform.close()
  await rm(directory, { recursive: true, force: true })
}
