/**
 * Runtime benchmarks, measured in one run and printed as ratios and percentiles:
 *  1. publish → new code answering (embedded mode), p50 / p99 over N publishes;
 *  2. warm throughput of a sandboxed function through the whole edge path (plugin chain with
 *     CORS, key-auth and a generous limit-count) ÷ a bare fastify hello-world, same client (its
 *     own process, bench/load-client.ts), same run.
 * Run: node bench/runtime-bench.ts [--publishes 50] [--seconds 3] [--concurrency 32]
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { Agent, request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs, promisify } from 'node:util'
import { execFile } from 'node:child_process'
import Fastify from 'fastify'
import { startEmbeddedPlatform } from '../control/platform.ts'
import { createDefaultCompiler } from '../runtime/compile/index.ts'

const { values } = parseArgs({ options: { publishes: { type: 'string', default: '50' }, seconds: { type: 'string', default: '3' }, concurrency: { type: 'string', default: '32' } } })
const publishes = Number(values.publishes)
const seconds = Number(values.seconds)
const concurrency = Number(values.concurrency)
const token = 'bench'
const run = promisify(execFile)
const directory = await mkdtemp(join(tmpdir(), 'imprun-bench-'))
const platform = await startEmbeddedPlatform({ dataDirectory: directory, port: 0, adminToken: token, compiler: createDefaultCompiler(), reconciler: { idlePollMs: 20 } })
const agent = new Agent({ keepAlive: true, maxSockets: concurrency })

function httpCall(url: string, method = 'GET', body?: string, headers: Record<string, string> = {}): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const outgoing = request(url, { method, agent, headers: body ? { 'content-type': 'application/json', ...headers } : headers }, (response) => {
      let text = ''
      response.setEncoding('utf8')
      response.on('data', (chunk) => (text += chunk))
      response.on('end', () => resolve({ status: response.statusCode ?? 0, text }))
    })
    outgoing.on('error', reject)
    outgoing.end(body)
  })
}
const admin = (method: string, path: string, body?: unknown) =>
  httpCall(`${platform.url}${path}`, method, body === undefined ? undefined : JSON.stringify(body), { authorization: `Bearer ${token}` })

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
}

interface LoadResult {
  done: number
  failed: number
  seconds: number
  latencies: { p50: number; p99: number }
}

/** Requests per second from a load client in its own process (see load-client.ts). */
async function throughput(url: string, headers: Record<string, string>): Promise<LoadResult & { rate: number }> {
  const { stdout } = await run(process.execPath, [join(import.meta.dirname, 'load-client.ts'), url, String(seconds), String(concurrency), JSON.stringify(headers)])
  const result = JSON.parse(stdout) as LoadResult
  if (result.failed > 0) console.log(`  (${result.failed} non-2xx answers from ${url})`)
  return { ...result, rate: result.done / result.seconds }
}

try {
  await admin('POST', '/admin/gateways', { id: 'bench' })
  for (let i = 0; i < 500 && !JSON.parse((await admin('GET', '/admin/gateways/bench')).text).phase?.startsWith('Started'); i++) await new Promise((resolve) => setTimeout(resolve, 10))

  // 1. publish → serving
  const latencies: number[] = []
  for (let n = 1; n <= publishes; n++) {
    await admin('PUT', '/admin/gateways/bench/functions/version', { source: `export default () => ({ n: ${n} })` })
    const started = performance.now()
    const published = await admin('POST', '/admin/gateways/bench/functions/version/publish', {})
    if (published.status !== 200) throw new Error(published.text)
    for (;;) {
      const answer = await httpCall(`${platform.url}/bench/dev/version`)
      if (answer.status === 200 && JSON.parse(answer.text).n === n) break
    }
    latencies.push(performance.now() - started)
  }
  latencies.sort((a, b) => a - b)
  console.log(`publish → new code answering (${publishes} publishes, publish request included): p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${percentile(latencies, 99).toFixed(1)} ms`)

  // 2. throughput ratio
  await admin('PUT', '/admin/gateways/bench/functions/hello', { source: `export default () => ({ hello: 'world' })` })
  await admin('POST', '/admin/gateways/bench/functions/hello/publish', {})
  await admin('PUT', '/admin/gateways/bench/environments/dev/plugins', { plugins: { 'key-auth': {}, 'limit-count': { count: 100_000_000, time_window: 60 } } })
  await admin('POST', '/admin/applications', { name: 'bench' })
  const grant = JSON.parse((await admin('POST', '/admin/grants', { application: 'bench', gateway: 'bench', stage: 'dev' })).text)
  const headers = { apikey: grant.apiKey, origin: 'https://bench.example' }
  for (let i = 0; i < 200; i++) await httpCall(`${platform.url}/bench/dev/hello`, 'GET', undefined, headers)

  const bare = Fastify()
  bare.get('/hello', async () => ({ hello: 'world' }))
  await bare.listen({ port: 0, host: '127.0.0.1' })
  const bareUrl = `http://127.0.0.1:${(bare.server.address() as { port: number }).port}/hello`
  const bareRun = await throughput(bareUrl, {})
  const sandboxRun = await throughput(`${platform.url}/bench/dev/hello`, headers)
  await bare.close()
  const ms = (value: number) => `${value.toFixed(2)} ms`
  console.log(`bare fastify hello-world: ${bareRun.rate.toFixed(0)} req/s (p50 ${ms(bareRun.latencies.p50)}, p99 ${ms(bareRun.latencies.p99)})`)
  console.log(`sandboxed function through edge (cors + key-auth + limit-count): ${sandboxRun.rate.toFixed(0)} req/s (p50 ${ms(sandboxRun.latencies.p50)}, p99 ${ms(sandboxRun.latencies.p99)})`)
  console.log(`ratio sandboxed ÷ bare: ${(sandboxRun.rate / bareRun.rate).toFixed(2)} (concurrency ${concurrency}, ${seconds} s each, load client in its own process)`)
} finally {
  agent.destroy()
  await platform.close()
  await rm(directory, { recursive: true, force: true })
}
