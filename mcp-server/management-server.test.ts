/**
 * The management server through the SDK's own Client over the in-memory transport, on a real
 * embedded platform (SQLite, compiler, sandbox) in a temp directory.
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js'
import { ErrorCode, McpError, type CallToolResult } from '@modelcontextprotocol/sdk/types.js'
import { startEmbeddedPlatform, type EmbeddedPlatform } from '../control/platform.ts'
import { createDefaultCompiler } from '../runtime/compile/index.ts'
import { createManagementServer } from './management-server.ts'
import { mcpServicesOf } from './mcp-services.ts'
import { toolNamePattern } from './tool-definition.ts'

let platform: EmbeddedPlatform
let directory: string
let client: Client
const calculateTax = readFileSync(join(import.meta.dirname, '..', 'examples', 'hometax', 'calculateTax.ts'), 'utf8')

before(async () => {
  directory = await mkdtemp(join(tmpdir(), 'imprun-mcp-management-'))
  platform = await startEmbeddedPlatform({ dataDirectory: directory, port: 0, adminToken: 'token', compiler: createDefaultCompiler(), reconciler: { idlePollMs: 50 } })
  const server = createManagementServer(mcpServicesOf(platform.services))
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair()
  await server.connect(serverSide)
  client = new Client({ name: 'test', version: '1.0.0' })
  await client.connect(clientSide)
})

after(async () => {
  await client.close()
  await platform.close()
  await rm(directory, { recursive: true, force: true })
})

async function call(name: string, args: Record<string, unknown> = {}) {
  return (await client.callTool({ name, arguments: args })) as CallToolResult
}

async function ok<T = Record<string, unknown>>(name: string, args: Record<string, unknown> = {}): Promise<T> {
  const result = await call(name, args)
  assert.ok(!result.isError, `${name} failed: ${JSON.stringify(result.content)}`)
  return result.structuredContent as T
}

test('every tool is named, described, schema-complete and annotated', async () => {
  const { tools } = await client.listTools()
  assert.ok(tools.length >= 30, `only ${tools.length} tools`)
  for (const tool of tools) {
    assert.match(tool.name, toolNamePattern)
    assert.ok(tool.description && tool.description.length > 20, `${tool.name} description`)
    assert.equal(tool.inputSchema.type, 'object')
    assert.equal(tool.outputSchema?.type, 'object', `${tool.name} outputSchema`)
    for (const [property, schema] of Object.entries(tool.inputSchema.properties ?? {})) {
      assert.ok((schema as { description?: string }).description, `${tool.name}.${property} has no description`)
    }
    for (const hint of ['readOnlyHint', 'destructiveHint', 'idempotentHint', 'openWorldHint'] as const) {
      assert.equal(typeof tool.annotations?.[hint], 'boolean', `${tool.name} ${hint}`)
    }
  }
  const names = new Set(tools.map((tool) => tool.name))
  for (const expected of ['gateway_create', 'function_write', 'function_test', 'function_publish', 'function_promote', 'function_rollback', 'function_diff', 'function_history', 'logs_list', 'grant_create', 'grant_rotate', 'grant_revoke', 'variable_set']) {
    assert.ok(names.has(expected), expected)
  }
})

test('unknown tools and invalid arguments are InvalidParams protocol errors', async () => {
  await assert.rejects(call('no_such_tool'), (error: unknown) => error instanceof McpError && error.code === ErrorCode.InvalidParams)
  await assert.rejects(
    call('gateway_create', { id: 'Not A Label', pipeline: 'yes' }),
    (error: unknown) => {
      assert.ok(error instanceof McpError && error.code === ErrorCode.InvalidParams, String(error))
      const issues = (error.data as { issues: Array<{ path: string }> }).issues
      assert.deepEqual(issues.map((issue) => issue.path).sort(), ['id', 'pipeline'])
      return true
    },
  )
  await assert.rejects(call('gateway_get', { gateway: 'x', extra: 1 }), (error: unknown) => error instanceof McpError && error.code === ErrorCode.InvalidParams)
})

test('a domain failure is an isError result carrying its code', async () => {
  const result = await call('gateway_get', { gateway: 'missing' })
  assert.equal(result.isError, true)
  assert.equal(result.structuredContent, undefined)
  const body = JSON.parse((result.content[0] as { text: string }).text)
  assert.equal(body.error.code, 'not_found')
})

test('functions: write, test-run, publish, diff, history, resources and prompts', async () => {
  const created = await ok<{ phase: string }>('gateway_create', { id: 'tax' })
  assert.equal(created.phase, 'Creating')
  const waited = await ok<{ reached: boolean; gateway: { phase: string } }>('gateway_wait', { gateway: 'tax', timeoutSeconds: 20 })
  assert.equal(waited.reached, true)
  assert.equal(waited.gateway.phase, 'Started')

  await ok('function_write', { gateway: 'tax', name: 'calculateTax', source: calculateTax })
  const progress: number[] = []
  const tested = (await client.callTool(
    { name: 'function_test', arguments: { gateway: 'tax', name: 'calculateTax', input: { income: 100, deductions: 0 } } },
    undefined,
    { onprogress: (notification) => progress.push(notification.progress) },
  )) as CallToolResult
  const run = tested.structuredContent as { outcome: { ok: boolean; value: unknown }; metadata: { description: string } }
  assert.deepEqual(run.outcome, { ok: true, status: 200, value: { tax: 22 } })
  assert.match(run.metadata.description, /Income tax/)
  assert.ok(progress.length >= 3, `progress ${progress}`)
  assert.deepEqual([...progress].sort((left, right) => left - right), progress, 'progress increases')

  const invalid = await ok<{ outcome: { ok: boolean; code: string } }>('function_test', { gateway: 'tax', name: 'calculateTax', input: { income: 'lots' } })
  assert.equal(invalid.outcome.ok, false)
  assert.equal(invalid.outcome.code, 'invalid_input')

  const published = await ok<{ version: { number: number }; stage: string }>('function_publish', { gateway: 'tax', name: 'calculateTax', message: 'first' })
  assert.equal(published.version.number, 1)
  await ok('function_write', { gateway: 'tax', name: 'calculateTax', source: calculateTax.replace('0.22', '0.2') })
  const diff = await ok<{ diff: string; from: string; to: string }>('function_diff', { gateway: 'tax', name: 'calculateTax', from: 'dev' })
  assert.equal(diff.from, 'v1')
  assert.equal(diff.to, 'draft')
  assert.match(diff.diff, /^-  return \{ tax: Math\.max\(0, income - deductions\) \* 0\.22 \}$/m)
  assert.match(diff.diff, /^\+  return \{ tax: Math\.max\(0, income - deductions\) \* 0\.2 \}$/m)
  await ok('function_publish', { gateway: 'tax', name: 'calculateTax' })

  const called = await ok<{ outcome: { value: unknown }; version: number }>('function_call', { gateway: 'tax', stage: 'dev', name: 'calculateTax', input: { income: 100, deductions: 0 } })
  assert.deepEqual(called.outcome.value, { tax: 20 })
  const rolledBack = await ok<{ toVersion: number }>('function_rollback', { gateway: 'tax', name: 'calculateTax', stage: 'dev' })
  assert.equal(rolledBack.toVersion, 1)
  const history = await ok<{ history: Array<{ action: string }> }>('function_history', { gateway: 'tax', function: 'calculateTax' })
  assert.deepEqual(history.history.map((entry) => entry.action), ['rollback', 'publish', 'publish'])
  const logs = await ok<{ logs: Array<{ method: string }> }>('logs_list', { gateway: 'tax' })
  assert.ok(logs.logs.some((entry) => entry.method === 'MCP'))

  const promoted = await call('function_promote', { gateway: 'tax', name: 'calculateTax', from: 'dev', to: 'prod' })
  assert.equal(promoted.isError, true, 'the pipeline refuses to skip staging')
  assert.equal(JSON.parse((promoted.content[0] as { text: string }).text).error.code, 'promotion_order')

  const templates = await client.listResourceTemplates()
  assert.ok(templates.resourceTemplates.some((template) => template.uriTemplate.endsWith('/functions/{name}/source')))
  const { resources } = await client.listResources()
  assert.ok(resources.some((resource) => resource.uri === 'imprun://gateways/tax/functions/calculateTax/source'))
  const source = await client.readResource({ uri: 'imprun://gateways/tax/functions/calculateTax/versions/1' })
  assert.ok(source.contents.some((content) => 'text' in content && content.text.includes('0.22')))
  await assert.rejects(client.readResource({ uri: 'imprun://gateways/tax/functions/nope/source' }), (error: unknown) => error instanceof McpError && error.code === -32002)
  const completion = await client.complete({ ref: { type: 'ref/resource', uri: 'imprun://gateways/{gateway}/history' }, argument: { name: 'gateway', value: 't' } })
  assert.deepEqual(completion.completion.values, ['tax'])

  const { prompts } = await client.listPrompts()
  assert.deepEqual(prompts.map((prompt) => prompt.name).sort(), ['build_api', 'write_function'])
  const prompt = await client.getPrompt({ name: 'write_function', arguments: { purpose: 'greet a user', name: 'user/greet' } })
  assert.match(JSON.stringify(prompt.messages), /ctx\.imp\.db\(\)/)
})

test('variables: secrets are listed by name only', async () => {
  await ok('variable_set', { gateway: 'tax', stage: 'dev', name: 'PLAIN', value: 'visible' })
  const secret = await ok<Record<string, unknown>>('variable_set', { gateway: 'tax', stage: 'dev', name: 'TOKEN', value: 's3cret', secret: true })
  assert.equal(secret.value, undefined)
  const listed = await ok<{ variables: Array<{ name: string; value?: string }> }>('variable_list', { gateway: 'tax' })
  assert.deepEqual(listed.variables.map(({ name, value }) => ({ name, value })), [{ name: 'PLAIN', value: 'visible' }, { name: 'TOKEN', value: undefined }])
  assert.ok(!JSON.stringify(listed).includes('s3cret'))
  await ok('variable_delete', { gateway: 'tax', stage: 'dev', name: 'PLAIN' })
})

test('set_plugins tools merge by default: a rate limit on prod keeps its key-auth', async () => {
  await ok('gateway_create', { id: 'plug' })
  type Environment = { plugins: Record<string, Record<string, unknown>> }
  const limited = await ok<Environment>('environment_set_plugins', { gateway: 'plug', stage: 'prod', plugins: { 'limit-count': { count: 100, time_window: 60 } } })
  assert.deepEqual(Object.keys(limited.plugins).sort(), ['key-auth', 'limit-count'])
  assert.equal(limited.plugins['key-auth']!.hide_credentials, true, 'prod keeps its key-auth conf')
  const opened = await ok<Environment>('environment_set_plugins', { gateway: 'plug', stage: 'prod', plugins: { 'key-auth': null } })
  assert.deepEqual(Object.keys(opened.plugins), ['limit-count'])
  const replaced = await ok<Environment>('environment_set_plugins', { gateway: 'plug', stage: 'prod', plugins: { 'key-auth': {}, cors: null }, replace: true })
  assert.deepEqual(Object.keys(replaced.plugins), ['key-auth'])

  const invalid = await call('environment_set_plugins', { gateway: 'plug', stage: 'prod', plugins: { 'limit-count': { count: 0, time_window: 60 } } })
  assert.equal(invalid.isError, true)
  assert.equal(JSON.parse((invalid.content[0] as { text: string }).text).error.code, 'invalid_plugin_config')

  await ok('function_write', { gateway: 'plug', name: 'f', source: 'export default () => 1', plugins: { 'key-auth': {} } })
  const merged = await ok<Environment>('function_set_plugins', { gateway: 'plug', name: 'f', plugins: { 'limit-req': { rate: 1, burst: 0, key: 'remote_addr' } } })
  assert.deepEqual(Object.keys(merged.plugins).sort(), ['key-auth', 'limit-req'])
  const cleared = await ok<Environment>('function_set_plugins', { gateway: 'plug', name: 'f', plugins: {}, replace: true })
  assert.deepEqual(cleared.plugins, {})

  type Gateway = { plugins: Record<string, unknown>; description: string }
  await ok('gateway_update', { gateway: 'plug', plugins: { 'limit-count': { count: 1000, time_window: 60 } } })
  const updated = await ok<Gateway>('gateway_update', { gateway: 'plug', description: 'merged', plugins: { 'limit-req': { rate: 5, burst: 0, key: 'remote_addr' } } })
  assert.deepEqual([updated.description, Object.keys(updated.plugins).sort()], ['merged', ['limit-count', 'limit-req']], 'gateway_update merges plugins too')
  const reset = await ok<Gateway>('gateway_update', { gateway: 'plug', plugins: { cors: {} }, replace: true })
  assert.deepEqual(Object.keys(reset.plugins), ['cors'])

  const { tools } = await client.listTools()
  for (const name of ['environment_set_plugins', 'function_set_plugins']) {
    const tool = tools.find((candidate) => candidate.name === name)!
    assert.doesNotMatch(JSON.stringify(tool.inputSchema), /"(oneOf|allOf)"/, name)
    assert.deepEqual(Object.keys(tool.inputSchema.properties ?? {}).slice(-2), ['plugins', 'replace'], name)
  }
})

test('gateway_wait waits for a deleted gateway to be gone', async () => {
  await ok('gateway_create', { id: 'gone' })
  assert.equal((await ok<{ reached: boolean }>('gateway_wait', { gateway: 'gone', timeoutSeconds: 20 })).reached, true)
  const notYet = await ok<{ reached: boolean; gateway: { phase: string } | null }>('gateway_wait', { gateway: 'gone', phase: 'Deleted', timeoutSeconds: 0 })
  assert.deepEqual([notYet.reached, notYet.gateway?.phase], [false, 'Started'])

  await ok('gateway_delete', { gateway: 'gone' })
  assert.deepEqual(await ok('gateway_wait', { gateway: 'gone', timeoutSeconds: 20 }), { reached: true, gateway: null }, 'default target of state Deleted')
  assert.deepEqual(await ok('gateway_wait', { gateway: 'gone' }), { reached: true, gateway: null }, 'already gone: a tombstone')
  assert.deepEqual(await ok('gateway_wait', { gateway: 'gone', phase: 'Deleted' }), { reached: true, gateway: null })
  assert.deepEqual(await ok('gateway_wait', { gateway: 'never-was', phase: 'Deleted' }), { reached: true, gateway: null })
  const unknown = await call('gateway_wait', { gateway: 'never-was' })
  assert.equal(unknown.isError, true)
  assert.equal(JSON.parse((unknown.content[0] as { text: string }).text).error.code, 'not_found')
  const started = await call('gateway_wait', { gateway: 'gone', phase: 'Started' })
  assert.equal(started.isError, true, 'waiting for another phase of a deleted gateway is not_found')
})
