/**
 * MCP benchmarks, measured in one run against one embedded platform:
 *  1. tools/call of a function vs the same function over HTTP (POST /{gateway}/{stage}/{fn}),
 *     one call at a time on keep-alive connections: p50 / p99 / mean and the overhead per call,
 *     for the Streamable HTTP session transport, the stateless mode, and in-memory (the MCP
 *     server's own cost without any HTTP);
 *  2. tools/list of an environment holding N functions (default 1,000): first listing (built
 *     from the catalog) and warm listings.
 * Run: node bench/mcp-bench.ts [--calls 2000] [--functions 1000]
 */
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { Agent, request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js'
import { startEmbeddedPlatform } from '../control/platform.ts'
import { createFunctionServer, EnvironmentToolDirectory, mcpServicesOf } from '../mcp-server/index.ts'
import { createDefaultCompiler } from '../runtime/compile/index.ts'

const { values } = parseArgs({ options: { calls: { type: 'string', default: '2000' }, functions: { type: 'string', default: '1000' } } })
const calls = Number(values.calls)
const functionCount = Number(values.functions)
const directory = await mkdtemp(join(tmpdir(), 'imprun-mcp-bench-'))
const platform = await startEmbeddedPlatform({ dataDirectory: directory, port: 0, adminToken: 'bench', compiler: createDefaultCompiler(), reconciler: { idlePollMs: 20 } })
const { control } = platform
const agent = new Agent({ keepAlive: true, maxSockets: 1 })
const input = { income: 50_000_000, deductions: 10_000_000 }

function post(url: string, body: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const outgoing = request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json', ...headers } }, (response) => {
      response.resume()
      response.on('end', () => resolve(response.statusCode ?? 0))
    })
    outgoing.on('error', reject)
    outgoing.end(body)
  })
}

interface Stats {
  p50: number
  p99: number
  mean: number
}

async function measure(count: number, once: () => Promise<unknown>): Promise<Stats> {
  for (let i = 0; i < Math.min(200, count); i++) await once()
  const samples: number[] = []
  for (let i = 0; i < count; i++) {
    const started = performance.now()
    await once()
    samples.push(performance.now() - started)
  }
  samples.sort((left, right) => left - right)
  const at = (p: number) => samples[Math.min(samples.length - 1, Math.floor((p / 100) * samples.length))]!
  return { p50: at(50), p99: at(99), mean: samples.reduce((sum, value) => sum + value, 0) / samples.length }
}

const ms = (value: number) => `${value.toFixed(3)} ms`
const row = (label: string, stats: Stats, base?: Stats) =>
  console.log(
    `  ${label.padEnd(30)} p50 ${ms(stats.p50).padStart(10)}  p99 ${ms(stats.p99).padStart(10)}  mean ${ms(stats.mean).padStart(10)}` +
      (base ? `   overhead p50 ${ms(stats.p50 - base.p50).padStart(10)}  ratio ${(stats.p50 / base.p50).toFixed(2)}×` : ''),
  )

const clients: Client[] = []
try {
  await control.gateways.create({ id: 'bench', pipeline: false })
  while ((await control.gateways.get('bench')).phase !== 'Started') await new Promise((resolve) => setTimeout(resolve, 20))
  await control.functions.write('bench', 'calculateTax', { files: { 'index.ts': readFileSync(join(import.meta.dirname, '..', 'examples', 'hometax', 'calculateTax.ts'), 'utf8') } })
  await control.functions.publish('bench', 'calculateTax', { stage: 'dev' })
  await control.access.createApplication({ name: 'bench' })
  const { apiKey } = await control.access.grant({ application: 'bench', gatewayId: 'bench', stage: 'dev' })
  const body = JSON.stringify(input)
  while ((await post(`${platform.url}/bench/dev/calculateTax`, body, {})) !== 200) await new Promise((resolve) => setTimeout(resolve, 20))

  const connect = async (path: string) => {
    const client = new Client({ name: 'bench', version: '1' })
    await client.connect(new StreamableHTTPClientTransport(new URL(`${platform.url}${path}`), { requestInit: { headers: { authorization: `Bearer ${apiKey}` } } }))
    clients.push(client)
    return client
  }
  const session = await connect('/mcp/bench/dev')
  const stateless = await connect('/mcp/bench/dev?stateless=1')
  const services = mcpServicesOf(platform.services)
  const memory = new Client({ name: 'bench', version: '1' })
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair()
  const memoryDirectory = new EnvironmentToolDirectory(services.catalog)
  await createFunctionServer({ services, directory: memoryDirectory }, { gatewayId: 'bench', stage: 'dev', consumer: null }).connect(serverSide)
  await memory.connect(clientSide)
  clients.push(memory)
  const callTool = (client: Client) => () => client.callTool({ name: 'calculateTax', arguments: input })
  const direct = () => services.catalog.call({ gatewayId: 'bench', stage: 'dev', name: 'calculateTax', input, source: 'mcp' })

  console.log(`\n1. calculateTax, ${calls} sequential calls each (keep-alive, one connection)`)
  const http = await measure(calls, () => post(`${platform.url}/bench/dev/calculateTax`, body, {}))
  const httpKeyed = await measure(calls, () => post(`${platform.url}/bench/dev/calculateTax`, body, { authorization: `Bearer ${apiKey}` }))
  row('HTTP POST (no key)', http)
  row('HTTP POST (grant key)', httpKeyed, http)
  row('catalog.call (no transport)', await measure(calls, direct), http)
  row('MCP in-memory', await measure(calls, callTool(memory)), http)
  row('MCP Streamable HTTP session', await measure(calls, callTool(session)), http)
  row('MCP Streamable HTTP stateless', await measure(calls, callTool(stateless)), http)

  console.log(`\n2. tools/list with ${functionCount} functions on one environment`)
  await control.gateways.create({ id: 'many', pipeline: false })
  while ((await control.gateways.get('many')).phase !== 'Started') await new Promise((resolve) => setTimeout(resolve, 20))
  const started = performance.now()
  for (let i = 0; i < functionCount; i++) {
    const name = `fn${String(i).padStart(4, '0')}`
    const source = `import { z } from 'zod'\nexport const description = 'Function ${i}'\nexport const input = z.object({ n: z.number().describe('A number') })\nexport default async function (ctx) { return { n: ctx.input.n + ${i} } }\n`
    await control.functions.write('many', name, { files: { 'index.ts': source } })
    await control.functions.publish('many', name, { stage: 'dev' })
  }
  console.log(`  (published ${functionCount} functions in ${((performance.now() - started) / 1000).toFixed(1)} s)`)
  const manyGrant = await control.access.grant({ application: 'bench', gatewayId: 'many', stage: 'dev' })
  while ((await services.catalog.list('many', 'dev')).length < functionCount) await new Promise((resolve) => setTimeout(resolve, 20))
  const many = new Client({ name: 'bench', version: '1' })
  await many.connect(new StreamableHTTPClientTransport(new URL(`${platform.url}/mcp/many/dev`), { requestInit: { headers: { authorization: `Bearer ${manyGrant.apiKey}` } } }))
  clients.push(many)
  const coldDirectory = new EnvironmentToolDirectory(services.catalog)
  const coldStarted = performance.now()
  const listing = await coldDirectory.tools('many', 'dev')
  console.log(`  first listing (catalog → ${listing.tools.length} tools)  ${ms(performance.now() - coldStarted)}`)
  coldDirectory.close()
  const first = performance.now()
  const listed = await many.listTools()
  console.log(`  first tools/list over HTTP (${listed.tools.length} tools, ${(JSON.stringify(listed).length / 1024).toFixed(0)} KiB)  ${ms(performance.now() - first)}`)
  row('tools/list over HTTP, warm', await measure(200, () => many.listTools()))
  row('tools/list in-process, warm', await measure(200, () => memoryDirectory.tools('many', 'dev')))
  const oneOfMany = await measure(Math.min(calls, 1000), () => many.callTool({ name: 'fn0500', arguments: { n: 1 } }))
  row('tools/call fn0500 of 1000', oneOfMany)
  memoryDirectory.close()
} finally {
  for (const client of clients) await client.close().catch(() => {})
  agent.destroy()
  await platform.close()
  await rm(directory, { recursive: true, force: true })
}
