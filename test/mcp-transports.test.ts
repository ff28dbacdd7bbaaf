/**
 * The same MCP server over each transport with the SDK's own clients: stdio (`imprun mcp` as a
 * real process on a temp data directory), Streamable HTTP with sessions and stateless, and the
 * legacy HTTP+SSE transport for the management and the function endpoints.
 */
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js'
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { LoggingMessageNotificationSchema, type CallToolResult } from '@modelcontextprotocol/sdk/types.js'
import { startEmbeddedPlatform, type EmbeddedPlatform } from '../control/platform.ts'
import { createDefaultCompiler } from '../runtime/compile/index.ts'

const root = fileURLToPath(new URL('..', import.meta.url))
const token = 'transports-token'
let platform: EmbeddedPlatform
let directory: string
let key: string

const echo = `import { z } from 'zod'
export const description = 'Echoes its text'
export const input = z.object({ text: z.string().describe('Text to echo') })
export default async function (ctx) { return { echoed: ctx.input.text } }
`

const headers = (credential: string) => ({ authorization: `Bearer ${credential}` })

async function tool(client: Client, name: string, args: Record<string, unknown> = {}) {
  const result = (await client.callTool({ name, arguments: args })) as CallToolResult
  assert.ok(!result.isError, `${name}: ${JSON.stringify(result.content)}`)
  return result.structuredContent as Record<string, any>
}

before(async () => {
  directory = await mkdtemp(join(tmpdir(), 'imprun-mcp-transports-'))
  platform = await startEmbeddedPlatform({ dataDirectory: join(directory, 'server'), port: 0, adminToken: token, compiler: createDefaultCompiler(), reconciler: { idlePollMs: 50 } })
  const client = new Client({ name: 'setup', version: '1' })
  await client.connect(new StreamableHTTPClientTransport(new URL(`${platform.url}/mcp`), { requestInit: { headers: headers(token) } }))
  await tool(client, 'gateway_create', { id: 'echo' })
  await tool(client, 'gateway_wait', { gateway: 'echo' })
  await tool(client, 'function_write', { gateway: 'echo', name: 'echo', source: echo })
  await tool(client, 'function_publish', { gateway: 'echo', name: 'echo' })
  await tool(client, 'application_create', { name: 'tester' })
  key = (await tool(client, 'grant_create', { application: 'tester', gateway: 'echo', stage: 'dev' })).apiKey
  await client.close()
})

after(async () => {
  await platform.close()
  await rm(directory, { recursive: true, force: true })
})

test('stdio: imprun mcp runs the platform in-process and serves the management tools', async () => {
  const dataDirectory = join(directory, 'stdio')
  const transport = new StdioClientTransport({ command: process.execPath, args: [join(root, 'bin', 'imprun.ts'), 'mcp', '--data-dir', dataDirectory], cwd: directory, stderr: 'pipe' })
  let stderr = ''
  transport.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const client = new Client({ name: 'stdio', version: '1' })
  await client.connect(transport)
  try {
    assert.equal(client.getServerVersion()?.name, 'imprun')
    assert.ok((await client.listTools()).tools.some((entry) => entry.name === 'function_publish'))
    await tool(client, 'gateway_create', { id: 'local' })
    assert.equal((await tool(client, 'gateway_wait', { gateway: 'local' })).gateway.phase, 'Started')
    await tool(client, 'function_write', { gateway: 'local', name: 'echo', source: echo })
    await tool(client, 'function_publish', { gateway: 'local', name: 'echo' })
    const called = await tool(client, 'function_call', { gateway: 'local', stage: 'dev', name: 'echo', input: { text: 'over stdio' } })
    assert.deepEqual(called.outcome.value, { echoed: 'over stdio' })
  } finally {
    await client.close()
  }
  assert.match(stderr, /imprun mcp: platform running at http:\/\/127\.0\.0\.1:\d+/)
})

test('stdio bridge: imprun mcp --url relays to a running server', async () => {
  const run = (args: string[], env: Record<string, string>) => {
    const transport = new StdioClientTransport({ command: process.execPath, args: [join(root, 'bin', 'imprun.ts'), 'mcp', '--url', platform.url, ...args], cwd: directory, env, stderr: 'pipe' })
    const client = new Client({ name: 'bridge', version: '1' })
    return { client, connected: client.connect(transport) }
  }
  const management = run([], { IMPRUN_TOKEN: token })
  await management.connected
  assert.deepEqual((await tool(management.client, 'gateway_list')).gateways.map((gateway: { id: string }) => gateway.id), ['echo'])
  await management.client.close()

  const functions = run(['--gateway', 'echo', '--stage', 'dev', '--key', key], {})
  await functions.connected
  assert.deepEqual(await tool(functions.client, 'echo', { text: 'bridged' }), { echoed: 'bridged' })
  await functions.client.close()
})

test('Streamable HTTP, stateless: no session, every request stands alone', async () => {
  const transport = new StreamableHTTPClientTransport(new URL(`${platform.url}/mcp?stateless=1`), { requestInit: { headers: headers(token) } })
  const client = new Client({ name: 'stateless', version: '1' })
  await client.connect(transport)
  assert.equal(transport.sessionId, undefined)
  assert.deepEqual((await tool(client, 'gateway_list')).gateways.map((gateway: { id: string }) => gateway.id), ['echo'])
  await client.close()

  const functions = new Client({ name: 'stateless-functions', version: '1' })
  await functions.connect(new StreamableHTTPClientTransport(new URL(`${platform.url}/mcp/echo/dev?stateless=1`), { requestInit: { headers: headers(key) } }))
  assert.deepEqual(await tool(functions, 'echo', { text: 'hi' }), { echoed: 'hi' })
  await functions.close()
})

test('Streamable HTTP, sessions: the session id is required and bound to its credential', async () => {
  const transport = new StreamableHTTPClientTransport(new URL(`${platform.url}/mcp/echo/dev`), { requestInit: { headers: { 'x-api-key': key } } })
  const client = new Client({ name: 'session', version: '1' })
  await client.connect(transport)
  assert.ok(transport.sessionId)
  assert.deepEqual(await tool(client, 'echo', { text: 'x' }), { echoed: 'x' })
  // The session of a function endpoint is not a management session.
  const stolen = await fetch(`${platform.url}/mcp`, {
    method: 'POST',
    headers: { ...headers(token), 'mcp-session-id': transport.sessionId!, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-06-18' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'tools/list' }),
  })
  assert.equal(stolen.status, 404)
  await transport.terminateSession()
  await client.close()
})

test('legacy HTTP+SSE: management and function endpoints', async () => {
  const management = new Client({ name: 'sse', version: '1' })
  await management.connect(new SSEClientTransport(new URL(`${platform.url}/mcp/sse`), { requestInit: { headers: headers(token) }, eventSourceInit: { fetch: (url, init) => fetch(url, { ...init, headers: { ...(init?.headers as Record<string, string>), ...headers(token) } }) } }))
  assert.deepEqual((await tool(management, 'function_list', { gateway: 'echo' })).functions.map((entry: { name: string }) => entry.name), ['echo'])
  await management.close()

  const functions = new Client({ name: 'sse-functions', version: '1' })
  await functions.connect(new SSEClientTransport(new URL(`${platform.url}/mcp/echo/dev/sse`), { requestInit: { headers: headers(key) }, eventSourceInit: { fetch: (url, init) => fetch(url, { ...init, headers: { ...(init?.headers as Record<string, string>), ...headers(key) } }) } }))
  assert.deepEqual((await functions.listTools()).tools.map((entry) => entry.name), ['echo'])
  assert.deepEqual(await tool(functions, 'echo', { text: 'sse' }), { echoed: 'sse' })
  await functions.close()

  const refused = await fetch(`${platform.url}/mcp/sse`)
  assert.equal(refused.status, 401)
})

/** Reads SSE events from a response until `until` says stop; returns them. */
async function readEvents(response: Response, until: (event: { id?: string; data: string }) => boolean): Promise<Array<{ id?: string; data: string }>> {
  const events: Array<{ id?: string; data: string }> = []
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader()
  let buffer = ''
  for (;;) {
    const { value, done } = await reader.read()
    if (done) return events
    buffer += value
    let end: number
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end)
      buffer = buffer.slice(end + 2)
      const event: { id?: string; data: string } = { data: '' }
      for (const line of block.split('\n')) {
        if (line.startsWith('id: ')) event.id = line.slice(4)
        else if (line.startsWith('data: ')) event.data += line.slice(6)
      }
      events.push(event)
      if (until(event)) {
        await reader.cancel()
        return events
      }
    }
  }
}

test('Streamable HTTP, sessions: a client whose connection dropped resumes with Last-Event-ID and gets the result it missed', async () => {
  const admin = { ...headers(token), 'content-type': 'application/json' }
  const slow = "export const description = 'Answers after a while'\nexport default async function () { await new Promise((resolve) => setTimeout(resolve, 400)); return { done: true } }\n"
  assert.equal((await fetch(`${platform.url}/admin/gateways/echo/functions/slow`, { method: 'PUT', headers: admin, body: JSON.stringify({ source: slow }) })).status, 200)
  assert.equal((await fetch(`${platform.url}/admin/gateways/echo/functions/slow/publish`, { method: 'POST', headers: admin, body: '{}' })).status, 200)

  const url = `${platform.url}/mcp/echo/dev`
  const base = { 'x-api-key': key, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-11-25' }
  const initialized = await fetch(url, {
    method: 'POST',
    headers: base,
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } }),
  })
  const session = initialized.headers.get('mcp-session-id')!
  await readEvents(initialized, (event) => event.data.includes('"id":1'))
  const withSession = { ...base, 'mcp-session-id': session }
  await fetch(url, { method: 'POST', headers: withSession, body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }) })

  // The call starts; the client reads the stream's first event, then loses its connection.
  const dropped = new AbortController()
  const call = await fetch(url, { method: 'POST', headers: withSession, body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'slow', arguments: {} } }), signal: dropped.signal })
  const [priming] = await readEvents(call, (event) => event.id !== undefined)
  assert.ok(priming?.id, 'the stream opens with an event id to resume from')
  dropped.abort()
  await new Promise((resolve) => setTimeout(resolve, 700))

  const resumed = await fetch(url, { method: 'GET', headers: { ...withSession, accept: 'text/event-stream', 'last-event-id': priming.id } })
  assert.equal(resumed.status, 200)
  const events = await readEvents(resumed, (event) => event.data.includes('"id":2'))
  const result = JSON.parse(events.at(-1)!.data) as { id: number; result: { structuredContent?: unknown; content: unknown } }
  assert.equal(result.id, 2)
  assert.match(JSON.stringify(result.result.content), /done/)

  const unknown = await fetch(url, { method: 'GET', headers: { ...withSession, accept: 'text/event-stream', 'last-event-id': 'nope~1' } })
  assert.equal(unknown.status, 400)
  await unknown.body?.cancel()
  await fetch(url, { method: 'DELETE', headers: withSession })
})

test('a function\'s console lines and ctx.progress reach the MCP client while it runs', async () => {
  const admin = { ...headers(token), 'content-type': 'application/json' }
  const steps = "export const description = 'Works in steps'\nexport default async function (ctx) {\n  for (let step = 1; step <= 3; step++) {\n    console.log('step ' + step)\n    ctx.progress(step, 3, 'step ' + step + ' of 3')\n    await new Promise((resolve) => setTimeout(resolve, 150))\n  }\n  return { steps: 3 }\n}\n"
  assert.equal((await fetch(`${platform.url}/admin/gateways/echo/functions/steps`, { method: 'PUT', headers: admin, body: JSON.stringify({ source: steps }) })).status, 200)
  assert.equal((await fetch(`${platform.url}/admin/gateways/echo/functions/steps/publish`, { method: 'POST', headers: admin, body: '{}' })).status, 200)
  const client = new Client({ name: 'live', version: '1' })
  await client.connect(new StreamableHTTPClientTransport(new URL(`${platform.url}/mcp/echo/dev`), { requestInit: { headers: headers(key) } }))
  const started = performance.now()
  const lines: Array<[string, number]> = []
  client.setNotificationHandler(LoggingMessageNotificationSchema, (notification) => void lines.push([String(notification.params.data), performance.now() - started]))
  const reports: Array<{ progress: number; total?: number; message?: string }> = []
  const result = (await client.callTool({ name: 'steps' }, undefined, { onprogress: (report) => reports.push(report) })) as CallToolResult
  const finished = performance.now() - started
  assert.deepEqual(result.structuredContent, { steps: 3 })
  assert.deepEqual(lines.map(([text]) => text), ['step 1', 'step 2', 'step 3'])
  assert.ok(lines[0]![1] < finished - 250, `the first line came ${Math.round(finished - lines[0]![1])} ms before the result, not with it`)
  const own = reports.filter((report) => report.message?.endsWith('of 3'))
  assert.deepEqual(own.map((report) => report.message), ['step 1 of 3', 'step 2 of 3', 'step 3 of 3'])
  assert.equal(own.at(-1)!.progress, own.at(-1)!.total, 'the last step is all of it')
  await client.close()

  // The management tools that run functions (function_call, function_test) relay the same way.
  const management = new Client({ name: 'live-admin', version: '1' })
  await management.connect(new StreamableHTTPClientTransport(new URL(`${platform.url}/mcp`), { requestInit: { headers: headers(token) } }))
  const adminLines: string[] = []
  management.setNotificationHandler(LoggingMessageNotificationSchema, (notification) => void adminLines.push(`${notification.params.logger}: ${String(notification.params.data)}`))
  const adminReports: string[] = []
  const called = (await management.callTool({ name: 'function_call', arguments: { gateway: 'echo', name: 'steps', stage: 'dev' } }, undefined, { onprogress: (report) => void adminReports.push(report.message ?? '') })) as CallToolResult
  assert.equal(called.isError, undefined)
  assert.deepEqual(adminLines, ['steps: step 1', 'steps: step 2', 'steps: step 3'])
  assert.ok(adminReports.includes('step 3 of 3'), JSON.stringify(adminReports))
  await management.close()
})
