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
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js'
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
