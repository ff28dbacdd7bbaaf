/**
 * The function server over the in-memory transport with a scripted catalog: tool naming and
 * schemas from stored metadata, result mapping, errors, log forwarding, progress, cancellation
 * reaching the call, and list_changed fan-out.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js'
import { ErrorCode, LoggingMessageNotificationSchema, McpError, ToolListChangedNotificationSchema, type CallToolResult } from '@modelcontextprotocol/sdk/types.js'
import type { ControlPlane } from '../control/control-plane.ts'
import type { AdminTokens } from '../control/admin-token.ts'
import { ImprunError } from '../control/errors.ts'
import type { CatalogFunction, EnvironmentChange, FunctionCall, FunctionCallResult, FunctionCatalog } from '../runtime/function-catalog.ts'
import type { InvocationOutcome, LogLine } from '../runtime/sandbox/function-sandbox.ts'
import { EnvironmentToolDirectory } from './environment-tools.ts'
import { createFunctionServer } from './function-server.ts'
import type { McpServices } from './mcp-services.ts'

type Behaviour = (call: FunctionCall) => Promise<{ outcome: InvocationOutcome; logs?: LogLine[] }>

function scriptedCatalog(functions: CatalogFunction[], behaviours: Record<string, Behaviour>) {
  const listeners = new Set<(change: EnvironmentChange) => void>()
  const calls: FunctionCall[] = []
  const catalog: FunctionCatalog = {
    list: async () => [...functions],
    isServing: () => true,
    call: async (call): Promise<FunctionCallResult> => {
      calls.push(call)
      const behaviour = behaviours[call.name]
      if (!behaviour) throw new ImprunError('not_found', `no function '${call.name}'`)
      const { outcome, logs = [] } = await behaviour(call)
      return { requestId: 'r', version: 1, outcome, logs, durationMs: 1 }
    },
    runDraft: async () => {
      throw new Error('not used')
    },
    onChange: (listener) => {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },
  }
  return { catalog, calls, change: (change: EnvironmentChange) => listeners.forEach((listener) => listener(change)), functions }
}

const value = (result: unknown): InvocationOutcome => ({ ok: true, status: 200, headers: {}, value: result, empty: false })
const objectSchema = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  type: 'object',
  properties: { n: { type: 'number' }, tags: { type: 'object', propertyNames: { type: 'string' }, additionalProperties: { type: 'string' } }, code: { type: 'object', propertyNames: { pattern: '^[a-z]+$' } } },
  required: ['n'],
  additionalProperties: false,
}

async function connect(catalog: FunctionCatalog) {
  const services = { catalog, control: {} as ControlPlane, tokens: {} as AdminTokens, logs: { query: async () => [] } } satisfies McpServices
  const directory = new EnvironmentToolDirectory(catalog)
  const server = createFunctionServer({ services, directory }, { gatewayId: 'shop', stage: 'prod', consumer: 'app_1' })
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair()
  await server.connect(serverSide)
  const client = new Client({ name: 'test', version: '1.0.0' })
  await client.connect(clientSide)
  return { client, directory }
}

test('tools come from stored metadata; results map by shape', async () => {
  const scripted = scriptedCatalog(
    [
      { name: 'cart/total', version: 3, metadata: { description: 'Cart total', inputSchema: objectSchema, outputSchema: { type: 'object', properties: { total: { type: 'number' } } } } },
      { name: 'hello', version: 1, metadata: { description: '', inputSchema: null, outputSchema: null } },
      { name: 'picture', version: 1, metadata: { description: 'A picture', inputSchema: null, outputSchema: null } },
      { name: 'list', version: 1, metadata: { description: 'A list', inputSchema: null, outputSchema: { type: 'array' } } },
    ],
    {
      'cart/total': async (call) => ({ outcome: value({ total: (call.input as { n: number }).n * 2 }) }),
      hello: async () => ({ outcome: value('hi') }),
      picture: async () => ({ outcome: value({ content: [{ type: 'image', data: 'iVBORw0KGgo=', mimeType: 'image/png' }] }) }),
      list: async () => ({ outcome: value([1, 2]) }),
    },
  )
  const { client } = await connect(scripted.catalog)
  const { tools } = await client.listTools()
  assert.deepEqual(tools.map((tool) => tool.name), ['cart.total', 'hello', 'picture', 'list'])
  assert.deepEqual(
    tools[0]!.inputSchema,
    {
      $schema: 'https://json-schema.org/draft/2020-12/schema',
      type: 'object',
      properties: { n: { type: 'number' }, tags: { type: 'object', additionalProperties: { type: 'string' } }, code: { type: 'object', propertyNames: { pattern: '^[a-z]+$' } } },
      required: ['n'],
      additionalProperties: false,
    },
    '$schema, required, additionalProperties and constraining propertyNames are kept; the no-op propertyNames is dropped',
  )
  assert.equal(tools[0]!.outputSchema?.type, 'object')
  assert.deepEqual(tools[1]!.inputSchema, { type: 'object' }, 'no input schema → any object')
  assert.equal(tools[1]!.description, 'Function hello of shop/prod')
  assert.equal(tools[3]!.outputSchema, undefined, 'non-object output schemas are not MCP output schemas')

  const total = (await client.callTool({ name: 'cart.total', arguments: { n: 4 } })) as CallToolResult
  assert.deepEqual(total.structuredContent, { total: 8 })
  assert.equal(scripted.calls[0]!.name, 'cart/total')
  assert.equal(scripted.calls[0]!.source, 'mcp')
  assert.equal(scripted.calls[0]!.consumer, 'app_1')
  assert.deepEqual(((await client.callTool({ name: 'hello' })) as CallToolResult).content, [{ type: 'text', text: 'hi' }])
  assert.deepEqual(((await client.callTool({ name: 'picture' })) as CallToolResult).content, [{ type: 'image', data: 'iVBORw0KGgo=', mimeType: 'image/png' }])
  const list = (await client.callTool({ name: 'list' })) as CallToolResult
  assert.deepEqual(list.content, [{ type: 'text', text: '[1,2]' }])
  assert.equal(list.structuredContent, undefined)
  await client.close()
})

test('user errors are results; invalid input and unknown tools are InvalidParams', async () => {
  const scripted = scriptedCatalog(
    [
      { name: 'fails', version: 1, metadata: { description: 'd', inputSchema: null, outputSchema: null } },
      { name: 'strict', version: 1, metadata: { description: 'd', inputSchema: objectSchema, outputSchema: null } },
      { name: 'gone', version: 1, metadata: { description: 'd', inputSchema: null, outputSchema: null } },
    ],
    {
      fails: async () => ({ outcome: { ok: false, status: 500, code: 'function_error', message: 'it broke', details: { stack: 'secret frames' } } }),
      strict: async () => ({ outcome: { ok: false, status: 400, code: 'invalid_input', message: 'invalid input: n: expected number', details: { issues: [{ path: 'n', message: 'expected number' }] } } }),
    },
  )
  const { client } = await connect(scripted.catalog)
  const failed = (await client.callTool({ name: 'fails' })) as CallToolResult
  assert.equal(failed.isError, true)
  assert.deepEqual(JSON.parse((failed.content[0] as { text: string }).text), { error: { code: 'function_error', message: 'it broke' } })
  await assert.rejects(client.callTool({ name: 'strict', arguments: { n: 'x' } }), (error: unknown) => {
    assert.ok(error instanceof McpError && error.code === ErrorCode.InvalidParams)
    assert.deepEqual((error.data as { issues: unknown }).issues, [{ path: 'n', message: 'expected number' }])
    return true
  })
  await assert.rejects(client.callTool({ name: 'missing' }), (error: unknown) => error instanceof McpError && error.code === ErrorCode.InvalidParams)
  await assert.rejects(client.callTool({ name: 'gone' }), (error: unknown) => error instanceof McpError && error.code === ErrorCode.InvalidParams, 'unpublished since listing')
  await client.close()
})

test('log lines and the function\'s own progress reach the client while it runs, above the level', async () => {
  let release!: () => void
  const released = new Promise<void>((resolve) => (release = resolve))
  const scripted = scriptedCatalog([{ name: 'work', version: 1, metadata: { description: 'd', inputSchema: null, outputSchema: null } }], {
    work: async (call) => {
      const at = new Date().toISOString()
      await new Promise((resolve) => setTimeout(resolve, 60))
      call.observer?.log?.({ level: 'debug', message: 'detail', at })
      call.observer?.log?.({ level: 'info', message: 'started', at })
      call.observer?.progress?.({ progress: 1, total: 4, message: 'step 1' })
      await released
      call.observer?.progress?.({ progress: 4, total: 4, message: 'step 4' })
      call.observer?.log?.({ level: 'error', message: 'bad', at })
      return { outcome: value('done') }
    },
  })
  const { client } = await connect(scripted.catalog)
  const messages: Array<{ level: string; data: unknown; logger?: string }> = []
  client.setNotificationHandler(LoggingMessageNotificationSchema, (notification) => {
    messages.push(notification.params)
    if (notification.params.data === 'started') release()
  })
  await client.setLoggingLevel('info')
  const progress: Array<{ progress: number; total?: number; message?: string }> = []
  await client.callTool({ name: 'work' }, undefined, { onprogress: (notification) => progress.push(notification) })
  assert.deepEqual(messages.map((message) => [message.level, message.data, message.logger]), [['info', 'started', 'work'], ['error', 'bad', 'work']], 'the call could only finish because "started" arrived while it ran')
  const values = progress.map((report) => report.progress)
  assert.deepEqual([...values].sort((left, right) => left - right), values, 'progress keeps increasing')
  const first = progress.findIndex((report) => report.message === 'step 1')
  const fourth = progress.find((report) => report.message === 'step 4')!
  assert.ok(first >= 1 && fourth, JSON.stringify(progress))
  const base = progress[first]!.progress - 1
  assert.deepEqual([progress[first]!.total, fourth.progress, fourth.total], [base + 4, base + 4, base + 4], 'the function\'s figures, offset past the reports before them')
  assert.ok(!progress.slice(first + 1).some((report) => report.message?.startsWith('running')), 'no "still running" reports once the function reports itself')
  await client.close()
})

test('cancelling the request aborts the call\'s signal', async () => {
  let aborted: Promise<void> | null = null
  const scripted = scriptedCatalog([{ name: 'hang', version: 1, metadata: { description: 'd', inputSchema: null, outputSchema: null } }], {
    hang: (call) => {
      aborted = new Promise((resolve) => call.signal!.addEventListener('abort', () => resolve(), { once: true }))
      return aborted.then(() => ({ outcome: { ok: false as const, status: 499, code: 'cancelled', message: 'cancelled' } }))
    },
  })
  const { client } = await connect(scripted.catalog)
  const abort = new AbortController()
  const pending = client.callTool({ name: 'hang' }, undefined, { signal: abort.signal })
  await new Promise((resolve) => setTimeout(resolve, 50))
  abort.abort()
  await assert.rejects(pending)
  assert.ok(aborted)
  await aborted
  await client.close()
})

test('a change of the environment notifies its sessions and refreshes the listing', async () => {
  const scripted = scriptedCatalog([{ name: 'a', version: 1, metadata: { description: 'd', inputSchema: null, outputSchema: null } }], {})
  const { client } = await connect(scripted.catalog)
  assert.equal((await client.listTools()).tools.length, 1)
  let notified = 0
  client.setNotificationHandler(ToolListChangedNotificationSchema, () => void notified++)
  scripted.functions.push({ name: 'b', version: 1, metadata: { description: 'd', inputSchema: null, outputSchema: null } })
  scripted.change({ gatewayId: 'shop', stage: 'dev' })
  await new Promise((resolve) => setTimeout(resolve, 20))
  assert.equal(notified, 0, 'another environment')
  assert.equal((await client.listTools()).tools.length, 1, 'its listing is still cached')
  scripted.change({ gatewayId: 'shop', stage: 'prod' })
  await new Promise((resolve) => setTimeout(resolve, 20))
  assert.equal(notified, 1)
  assert.deepEqual((await client.listTools()).tools.map((tool) => tool.name), ['a', 'b'])
  await client.close()
})
