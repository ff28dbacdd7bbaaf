/**
 * A bounded mixed load on loopback: function calls over HTTP, MCP tools/call on the function
 * endpoint and admin reads, while a new version is published every second. Reports throughput,
 * p99 and errors per kind; errors must be zero (no rate limit is configured here), every publish
 * must land, and memory must level off (the last third of the run grows less than the first).
 * IMPRUN_LOAD_SECONDS lengthens it (default 12 s in the test suite).
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { until } from './support/platform-client.ts'
import { useTestPlatform } from './support/test-platform.ts'

const token = 'load-token'
const seconds = Number(process.env.IMPRUN_LOAD_SECONDS ?? 12)
const { admin, call, platform } = useTestPlatform({ token, gateways: [{ id: 'load', pipeline: false }] })


interface Tally {
  ok: number
  errors: Map<string, number>
  latencies: number[]
}

function tally(): Tally {
  return { ok: 0, errors: new Map(), latencies: [] }
}

async function timed(into: Tally, work: () => Promise<string | null>): Promise<void> {
  const started = performance.now()
  let failure: string | null
  try {
    failure = await work()
  } catch (error) {
    failure = error instanceof Error ? error.message.slice(0, 80) : String(error)
  }
  into.latencies.push(performance.now() - started)
  if (failure === null) into.ok++
  else into.errors.set(failure, (into.errors.get(failure) ?? 0) + 1)
}

function summary(name: string, into: Tally): string {
  const sorted = [...into.latencies].sort((a, b) => a - b)
  const p99 = sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))] ?? 0
  const errors = [...into.errors.values()].reduce((sum, count) => sum + count, 0)
  return `${name}: ${(into.ok / seconds).toFixed(0)}/s ok, p99 ${p99.toFixed(1)} ms, ${errors} errors${errors ? ` ${JSON.stringify([...into.errors])}` : ''}`
}

test(`mixed load for ${seconds} s while publishing every second: no errors, memory levels off`, { timeout: 120_000 + seconds * 1000 }, async (t) => {
  await admin('PUT', '/admin/gateways/load/functions/work', { source: `import { z } from 'zod'\nexport const input = z.object({ n: z.coerce.number() })\nexport default async (ctx: any) => { await ctx.imp.db().collection('hits').insertOne({ n: ctx.input.n }); return { n: ctx.input.n, v: 0 } }` })
  await admin('PUT', '/admin/gateways/load/functions/churn', { source: 'export default () => ({ v: 0 })' })
  for (const name of ['work', 'churn']) await admin('POST', `/admin/gateways/load/functions/${name}/publish`, {})
  await until(() => call('/load/dev/work?n=0'), (response) => response.status === 200, 'work live')
  await admin('POST', '/admin/applications', { name: 'loader' })
  const grant = await admin('POST', '/admin/grants', { application: 'loader', gateway: 'load', stage: 'dev' })
  const mcp = new Client({ name: 'load', version: '1.0.0' })
  await mcp.connect(new StreamableHTTPClientTransport(new URL(`${platform().url}/mcp/load/dev`), { requestInit: { headers: { authorization: `Bearer ${grant.body.apiKey}` } } }))

  const http = tally()
  const tools = tally()
  const reads = tally()
  const publishes = tally()
  const memory: number[] = []
  const end = performance.now() + seconds * 1000
  let n = 0
  const loop = async (work: () => Promise<void>) => {
    while (performance.now() < end) await work()
  }
  await Promise.all([
    ...Array.from({ length: 6 }, () => loop(() => timed(http, async () => {
      const response = await call(`/load/dev/work?n=${++n}`)
      return response.status === 200 ? null : `${response.status} ${response.body?.error?.code}`
    }))),
    ...Array.from({ length: 2 }, () => loop(() => timed(tools, async () => {
      const result = await mcp.callTool({ name: 'work', arguments: { n: ++n } })
      return result.isError ? `isError ${JSON.stringify(result.content).slice(0, 60)}` : null
    }))),
    loop(() => timed(reads, async () => {
      const responses = await Promise.all([admin('GET', '/admin/gateways/load'), admin('GET', '/admin/gateways/load/functions'), admin('GET', '/admin/gateways/load/history?limit=20')])
      const bad = responses.find((response) => response.status !== 200)
      return bad ? `${bad.status}` : null
    })),
    (async () => {
      for (let version = 1; performance.now() < end; version++) {
        const started = performance.now()
        await timed(publishes, async () => {
          await admin('PUT', '/admin/gateways/load/functions/churn', { source: `export default () => ({ v: ${version} })` })
          const published = await admin('POST', '/admin/gateways/load/functions/churn/publish', {})
          return published.status === 200 ? null : `${published.status}`
        })
        memory.push(process.memoryUsage().rss)
        await new Promise((resolve) => setTimeout(resolve, Math.max(0, 1000 - (performance.now() - started))))
      }
    })(),
  ])
  await mcp.close()
  for (const line of [summary('HTTP function calls', http), summary('MCP tools/call', tools), summary('admin reads (3 each)', reads), summary('publishes', publishes)]) t.diagnostic(line)
  const third = Math.max(1, Math.floor(memory.length / 3))
  const firstGrowth = memory[third]! - memory[0]!
  const lastGrowth = memory.at(-1)! - memory[memory.length - 1 - third]!
  t.diagnostic(`RSS ${(memory[0]! / 1048576).toFixed(0)} → ${(memory.at(-1)! / 1048576).toFixed(0)} MiB; growth first third ${(firstGrowth / 1048576).toFixed(1)} MiB, last third ${(lastGrowth / 1048576).toFixed(1)} MiB`)

  for (const [name, into] of [['http', http], ['mcp', tools], ['reads', reads], ['publishes', publishes]] as const) {
    assert.equal(into.errors.size, 0, `${name}: ${JSON.stringify([...into.errors])}`)
    assert.ok(into.ok > 0, `${name}: some succeeded`)
  }
  assert.ok(publishes.ok >= seconds - 2, `a publish every second: ${publishes.ok}`)
  assert.ok(lastGrowth <= Math.max(firstGrowth, 0) + 64 * 1048576, 'memory levels off')
  const served = await call('/load/dev/churn')
  assert.equal(served.body.v, publishes.ok, 'the last publish is what serves')
  const hits = await platform().store.gateway('load').collection('data.hits').countDocuments({})
  assert.equal(hits, http.ok + tools.ok + 1, 'every acknowledged call wrote its row')
})
