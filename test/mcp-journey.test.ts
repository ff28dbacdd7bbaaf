/**
 * The agent journey of the design as MCP tool calls over Streamable HTTP on loopback, with the
 * SDK's own Client: build hometax through the management endpoint, then call calculateTax as a
 * tool of the prod function endpoint with a grant key; list_changed after a promotion; bad
 * input, failing user code, cancellation, and the endpoints' auth and DNS-rebinding checks.
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { request as httpRequest } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { ErrorCode, McpError, ToolListChangedNotificationSchema, type CallToolResult } from '@modelcontextprotocol/sdk/types.js'
import { startEmbeddedPlatform, type EmbeddedPlatform } from '../control/platform.ts'
import { createDefaultCompiler } from '../runtime/compile/index.ts'

const token = 'mcp-journey-token'
let platform: EmbeddedPlatform
let directory: string
let admin: Client
let prodKey: string
const calculateTax = readFileSync(join(import.meta.dirname, '..', 'examples', 'hometax', 'calculateTax.ts'), 'utf8')

const greet = `import { z } from 'zod'
export const description = 'Greets someone; fails for "boom"'
export const input = z.object({ name: z.string().describe('Who to greet') })
export default async function (ctx) {
  if (ctx.input.name === 'boom') ctx.fail(418, 'boom is not a name')
  ctx.log.info('greeting', ctx.input.name)
  return 'Hello, ' + ctx.input.name
}
`

const slow = `export const description = 'Takes its time'
export default async function () {
  await new Promise((resolve) => setTimeout(resolve, 10000))
  return { done: true }
}
`

async function connect(path: string, credential: string): Promise<Client> {
  const client = new Client({ name: 'journey', version: '1.0.0' })
  await client.connect(new StreamableHTTPClientTransport(new URL(`${platform.url}${path}`), { requestInit: { headers: { authorization: `Bearer ${credential}` } } }))
  return client
}

async function ok<T = Record<string, unknown>>(name: string, args: Record<string, unknown> = {}): Promise<T> {
  const result = (await admin.callTool({ name, arguments: args })) as CallToolResult
  assert.ok(!result.isError, `${name}: ${JSON.stringify(result.content)}`)
  return result.structuredContent as T
}

before(async () => {
  directory = await mkdtemp(join(tmpdir(), 'imprun-mcp-journey-'))
  platform = await startEmbeddedPlatform({ dataDirectory: directory, port: 0, adminToken: token, compiler: createDefaultCompiler(), reconciler: { idlePollMs: 50 } })
  admin = await connect('/mcp', token)
})

after(async () => {
  await admin.close()
  await platform.close()
  await rm(directory, { recursive: true, force: true })
})

test('hometax end to end as tool calls', async () => {
  await ok('gateway_create', { id: 'hometax', description: 'Income tax' })
  const waited = await ok<{ reached: boolean }>('gateway_wait', { gateway: 'hometax' })
  assert.equal(waited.reached, true)

  await ok('function_write', { gateway: 'hometax', name: 'calculateTax', source: calculateTax })
  const tested = await ok<{ outcome: { ok: boolean; value: unknown } }>('function_test', { gateway: 'hometax', name: 'calculateTax', input: { income: 50_000_000, deductions: 10_000_000 } })
  assert.deepEqual(tested.outcome.value, { tax: 8_800_000 })
  await ok('function_publish', { gateway: 'hometax', name: 'calculateTax', message: 'first release' })
  assert.equal((await ok<{ toVersion: number }>('function_promote', { gateway: 'hometax', name: 'calculateTax', from: 'dev' })).toVersion, 1)
  assert.equal((await ok<{ stage: string }>('function_promote', { gateway: 'hometax', name: 'calculateTax', from: 'staging' })).stage, 'prod')

  const application = await ok<{ id: string }>('application_create', { name: 'mobile' })
  const grant = await ok<{ apiKey: string; stage: string }>('grant_create', { application: 'mobile', gateway: 'hometax', stage: 'prod' })
  assert.equal(grant.stage, 'prod')
  prodKey = grant.apiKey

  const prod = await connect('/mcp/hometax/prod', prodKey)
  try {
    const { tools } = await prod.listTools()
    assert.deepEqual(tools.map((tool) => tool.name), ['calculateTax'])
    const tool = tools[0]!
    assert.match(tool.description ?? '', /Income tax/)
    assert.deepEqual(tool.inputSchema.required, ['income', 'deductions'])
    assert.equal(tool.outputSchema?.type, 'object')

    const taxed = (await prod.callTool({ name: 'calculateTax', arguments: { income: 50_000_000, deductions: 10_000_000 } })) as CallToolResult
    assert.equal(taxed.isError, undefined)
    assert.deepEqual(taxed.structuredContent, { tax: 8_800_000 })
    assert.deepEqual(JSON.parse((taxed.content[0] as { text: string }).text), { tax: 8_800_000 })

    const logs = await ok<{ logs: Array<{ method: string; consumer: string | null; stage: string }> }>('logs_list', { gateway: 'hometax', stage: 'prod' })
    assert.equal(logs.logs[0]?.method, 'MCP')
    assert.equal(logs.logs[0]?.consumer, application.id, 'calls are attributed to the grant\'s application')

    // Bad input is a protocol error; the unknown tool too.
    await assert.rejects(prod.callTool({ name: 'calculateTax', arguments: { income: 'lots' } }), (error: unknown) => {
      assert.ok(error instanceof McpError && error.code === ErrorCode.InvalidParams, String(error))
      assert.ok(Array.isArray((error.data as { issues?: unknown[] }).issues))
      return true
    })
    await assert.rejects(prod.callTool({ name: 'nope', arguments: {} }), (error: unknown) => error instanceof McpError && error.code === ErrorCode.InvalidParams)

    // A new function reaching prod changes the tool list of connected clients.
    const changed = new Promise<void>((resolve) => prod.setNotificationHandler(ToolListChangedNotificationSchema, () => resolve()))
    await ok('function_write', { gateway: 'hometax', name: 'user/greet', source: greet })
    await ok('function_publish', { gateway: 'hometax', name: 'user/greet' })
    await ok('function_promote', { gateway: 'hometax', name: 'user/greet', from: 'dev' })
    await ok('function_promote', { gateway: 'hometax', name: 'user/greet', from: 'staging' })
    await withTimeout(changed, 5000, 'tools/list_changed')
    assert.deepEqual((await prod.listTools()).tools.map((tool) => tool.name), ['calculateTax', 'user.greet'])

    const greeted = (await prod.callTool({ name: 'user.greet', arguments: { name: 'Ada' } })) as CallToolResult
    assert.deepEqual(greeted.content, [{ type: 'text', text: 'Hello, Ada' }])
    const failed = (await prod.callTool({ name: 'user.greet', arguments: { name: 'boom' } })) as CallToolResult
    assert.equal(failed.isError, true)
    assert.match((failed.content[0] as { text: string }).text, /boom is not a name/)
  } finally {
    await prod.close()
  }
})

test('a cancelled call answers at once', async () => {
  // That the abort signal reaches catalog.call is checked in mcp-server/function-server.test.ts;
  // the sandbox currently ends only host calls (fetch, timers) on abort, not the invocation.
  await ok('function_write', { gateway: 'hometax', name: 'slow', source: slow })
  await ok('function_publish', { gateway: 'hometax', name: 'slow' })
  const abort = new AbortController()
  const started = Date.now()
  const pending = admin.callTool({ name: 'function_call', arguments: { gateway: 'hometax', stage: 'dev', name: 'slow' } }, undefined, { signal: abort.signal })
  setTimeout(() => abort.abort('enough'), 200)
  await assert.rejects(pending)
  assert.ok(Date.now() - started < 2000)
  // The session is still usable after a cancellation.
  assert.equal((await ok<{ gateways: unknown[] }>('gateway_list')).gateways.length, 1)
})

test('credentials: admin token for /mcp, the environment\'s own grant key for its endpoint', async () => {
  const initialize = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } }
  const post = (path: string, headers: Record<string, string>) =>
    fetch(`${platform.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers }, body: JSON.stringify(initialize) })

  const missing = await post('/mcp', {})
  assert.equal(missing.status, 401)
  assert.match(missing.headers.get('www-authenticate') ?? '', /^Bearer realm="imprun"/)
  assert.equal((await post('/mcp', { authorization: 'Bearer wrong' })).status, 401)
  assert.equal((await post('/mcp', { authorization: `Bearer ${prodKey}` })).status, 401, 'a grant key is not an admin token')
  assert.equal((await post('/mcp/hometax/prod', { authorization: `Bearer ${token}` })).status, 401, 'the admin token is not a grant key')
  assert.equal((await post('/mcp/hometax/prod', { 'x-api-key': 'imp_nope' })).status, 401)
  assert.equal((await post('/mcp/hometax/dev', { authorization: `Bearer ${prodKey}` })).status, 403, 'a prod key does not open dev')
  const accepted = await post('/mcp/hometax/prod', { 'x-api-key': prodKey })
  assert.equal(accepted.status, 200)
  await accepted.body?.cancel()

  assert.equal((await post('/mcp', { authorization: `Bearer ${token}`, origin: 'http://evil.example.com' })).status, 403)
  const rebound = await new Promise<number>((resolve, reject) => {
    const url = new URL(`${platform.url}/mcp`)
    const body = JSON.stringify(initialize)
    const request = httpRequest(
      { host: url.hostname, port: url.port, path: '/mcp', method: 'POST', headers: { host: 'evil.example.com', authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'content-length': Buffer.byteLength(body) } },
      (response) => {
        response.resume()
        resolve(response.statusCode ?? 0)
      },
    )
    request.on('error', reject)
    request.end(body)
  })
  assert.equal(rebound, 403, 'a foreign Host on a loopback listener is DNS rebinding')
})

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms)))
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}
