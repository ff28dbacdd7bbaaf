/**
 * Chat gateway overhead over a loopback stub provider, same client, same run:
 *  1. non-stream chat completion: stub directly vs through /v1/chat/completions (auth, alias
 *     resolution, validation, adaptor, usage write) — p50 / p99 and their difference;
 *  2. streaming time to first byte: stub directly vs through the gateway;
 *  3. for scale, one agent-loop round trip (two model calls + calculateTax in the sandbox).
 * Sequential requests (one in flight), keep-alive sockets, warm-up first.
 * Run: node bench/chat-bench.ts [--requests 2000] [--provider openai|anthropic|ollama]
 */
import { Agent, request } from 'node:http'
import { parseArgs } from 'node:util'
import { startChatPlatform } from '../adaptors/testing/chat-platform-fixture.ts'
import { scriptedReplies } from '../adaptors/testing/stub-model-script.ts'

const { values } = parseArgs({ options: { requests: { type: 'string', default: '2000' }, provider: { type: 'string', default: 'openai' } } })
const requests = Number(values.requests)
const kind = values.provider as 'openai' | 'anthropic' | 'ollama'
const fixture = await startChatPlatform()
const stub = fixture.stubs[kind]
stub.script = scriptedReplies({ kind: 'answer', text: 'The quick brown fox jumps over the lazy dog.', usage: { input: 12, output: 10 } })
const agent = new Agent({ keepAlive: true, maxSockets: 1 })

/** Resolves at the first body byte (ttfb) and at the end (total), in ms. */
function timed(url: string, body: string, headers: Record<string, string>): Promise<{ status: number; ttfb: number; total: number }> {
  return new Promise((resolve, reject) => {
    const started = performance.now()
    let ttfb = 0
    const outgoing = request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json', ...headers } }, (response) => {
      response.on('data', () => {
        if (ttfb === 0) ttfb = performance.now() - started
      })
      response.on('end', () => resolve({ status: response.statusCode ?? 0, ttfb, total: performance.now() - started }))
    })
    outgoing.on('error', reject)
    outgoing.end(body)
  })
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
}

async function measure(url: string, body: unknown, headers: Record<string, string>, count: number): Promise<{ ttfb: number[]; total: number[] }> {
  const text = JSON.stringify(body)
  const ttfb: number[] = []
  const total: number[] = []
  for (let index = 0; index < count; index++) {
    const result = await timed(url, text, headers)
    if (result.status !== 200) throw new Error(`${url} answered ${result.status}`)
    ttfb.push(result.ttfb)
    total.push(result.total)
  }
  return { ttfb: ttfb.sort((a, b) => a - b), total: total.sort((a, b) => a - b) }
}

// Each provider's own endpoint and body for the direct calls; the gateway always gets OpenAI's.
const direct = {
  openai: { path: '/v1/chat/completions', body: (stream: boolean) => ({ model: 'stub-gpt', messages: [{ role: 'user', content: 'hello' }], stream, ...(stream ? { stream_options: { include_usage: true } } : {}) }) },
  anthropic: { path: '/v1/messages', body: (stream: boolean) => ({ model: 'stub-claude', max_tokens: 100, messages: [{ role: 'user', content: 'hello' }], stream }) },
  ollama: { path: '/api/chat', body: (stream: boolean) => ({ model: 'stub-llama', messages: [{ role: 'user', content: 'hello' }], stream }) },
}[kind]
const gatewayBody = (stream: boolean) => ({ model: fixture.aliases[kind], messages: [{ role: 'user', content: 'hello' }], stream, ...(stream ? { stream_options: { include_usage: true } } : {}) })
const key = { authorization: `Bearer ${fixture.apiKey}` }
const fmt = (ms: number) => `${ms.toFixed(3)} ms`

const results: Record<string, { p50: number; p99: number }> = {}
for (const stream of [false, true]) {
  const label = stream ? 'stream' : 'non-stream'
  await measure(`${stub.url}${direct.path}`, direct.body(stream), {}, 200)
  await measure(`${fixture.platform.url}/v1/chat/completions`, gatewayBody(stream), key, 200)
  // Interleave the two in blocks so that drift (GC, the other engineers' processes) hits both.
  const directRuns: { ttfb: number[]; total: number[] } = { ttfb: [], total: [] }
  const gatewayRuns: { ttfb: number[]; total: number[] } = { ttfb: [], total: [] }
  for (let block = 0; block < 10; block++) {
    const a = await measure(`${stub.url}${direct.path}`, direct.body(stream), {}, requests / 10)
    const b = await measure(`${fixture.platform.url}/v1/chat/completions`, gatewayBody(stream), key, requests / 10)
    directRuns.ttfb.push(...a.ttfb)
    directRuns.total.push(...a.total)
    gatewayRuns.ttfb.push(...b.ttfb)
    gatewayRuns.total.push(...b.total)
  }
  const metric = stream ? 'ttfb' : 'total'
  const d = directRuns[metric].sort((x, y) => x - y)
  const g = gatewayRuns[metric].sort((x, y) => x - y)
  results[`${label} direct`] = { p50: percentile(d, 50), p99: percentile(d, 99) }
  results[`${label} gateway`] = { p50: percentile(g, 50), p99: percentile(g, 99) }
  if (stream) {
    const dt = directRuns.total.sort((x, y) => x - y)
    const gt = gatewayRuns.total.sort((x, y) => x - y)
    results['stream complete direct'] = { p50: percentile(dt, 50), p99: percentile(dt, 99) }
    results['stream complete gateway'] = { p50: percentile(gt, 50), p99: percentile(gt, 99) }
  }
}

// One agent round trip for scale (not an overhead figure: it includes two model calls and a sandboxed function).
stub.script = (await import('../adaptors/testing/stub-model-script.ts')).taxAgentScript
const journey = { ...gatewayBody(false), messages: [{ role: 'user', content: 'tax on 50,000,000 with 10,000,000 deductions?' }], imprun: { functions: 'all' } }
await measure(`${fixture.platform.url}/v1/chat/completions`, journey, key, 50)
const loop = await measure(`${fixture.platform.url}/v1/chat/completions`, journey, key, Math.max(100, requests / 10))

console.log(`chat gateway overhead, provider ${kind}, ${requests} sequential requests each (Node ${process.version})`)
for (const [name, value] of Object.entries(results)) console.log(`  ${name.padEnd(26)} p50 ${fmt(value.p50)}  p99 ${fmt(value.p99)}`)
const overhead = (label: string) => ({ p50: results[`${label} gateway`]!.p50 - results[`${label} direct`]!.p50, p99: results[`${label} gateway`]!.p99 - results[`${label} direct`]!.p99 })
const nonStream = overhead('non-stream')
const ttfb = overhead('stream')
console.log(`  overhead non-stream        p50 ${fmt(nonStream.p50)}  p99 ${fmt(nonStream.p99)}   (target: p50 < 1 ms)`)
console.log(`  overhead stream TTFB       p50 ${fmt(ttfb.p50)}  p99 ${fmt(ttfb.p99)}`)
console.log(`  agent loop (2 model calls + calculateTax in the sandbox)  p50 ${fmt(percentile(loop.total, 50))}  p99 ${fmt(percentile(loop.total, 99))}`)
agent.destroy()
await fixture.close()
