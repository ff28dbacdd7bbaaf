/**
 * Property-based fuzzing (fast-check) of what users and agents send: admin API bodies, function
 * names, plugin configs, and `imp.db()` filters and updates (operator injection such as `$where`,
 * `$function`, `$accumulator`). Every case must get an answer below 500 within a deadline:
 * a clear 4xx, or success; never a 500, never a hang.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import { until } from './support/platform-client.ts'
import { useTestPlatform } from './support/test-platform.ts'

const token = 'fuzz-token'
const { admin, call, platform } = useTestPlatform({ token, gateways: [{ id: 'fuzz' }], setup: publishProbe })
const runs = Number(process.env.IMPRUN_FUZZ_RUNS ?? 60)

/** The function every imp.db() case goes through. */
async function publishProbe(): Promise<void> {
  const probe = `export default async (ctx: any) => {
    const items = ctx.imp.db().collection('items')
    if ((await items.countDocuments({})) === 0) await items.insertMany([{ n: 1, tags: ['a'] }, { n: 2, nested: { x: 'y' } }, { n: 3 }])
    const { op, filter, update } = ctx.input
    if (op === 'find') return items.find(filter, { limit: 10 })
    if (op === 'count') return items.countDocuments(filter)
    if (op === 'update') return items.updateMany(filter, update)
    return items.findOneAndUpdate(filter, update)
  }`
  await admin('PUT', '/admin/gateways/fuzz/functions/probe', { source: probe })
  await admin('POST', '/admin/gateways/fuzz/functions/probe/publish', {})
  await until(() => call('/fuzz/dev/probe', post({ op: 'count', filter: {} })), (response) => response.status === 200, 'probe live')
}

function post(body: unknown): RequestInit {
  return { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(15_000) }
}

function answered(what: string, response: { status: number; body: any }): void {
  assert.ok(response.status < 500, `${what} → ${response.status} ${JSON.stringify(response.body).slice(0, 300)}`)
  if (response.status >= 400) {
    assert.equal(typeof response.body?.error?.code, 'string', `${what}: an error body with a code`)
    assert.equal(typeof response.body?.error?.message, 'string')
  }
}

const operators = ['$where', '$function', '$accumulator', '$expr', '$eval', '$regex', '$gt', '$in', '$nin', '$elemMatch', '$size', '$exists', '$type', '$and', '$or', '$nor', '$not', '$mod', '$all', '$jsonSchema', '$text', '$near', '$set', '$inc', '$push', '$pull', '$unset', '$rename', '$min', '$max', '$currentDate', '$addToSet', '$pop', '$bit', '$setOnInsert', '$']
const keys = fc.oneof(fc.constantFrom(...operators), fc.constantFrom('n', 'tags', 'nested.x', '_id', '__proto__', 'constructor', 'a.b.c', ''), fc.string({ maxLength: 8 }))
const leaf = fc.oneof(fc.string({ maxLength: 20 }), fc.integer(), fc.double({ noNaN: true }), fc.boolean(), fc.constant(null), fc.constantFrom('function () { while (true) {} }', 'this.constructor.constructor("return process")()', 'sleep(100000)'))
const { tree } = fc.letrec((recurse) => ({
  tree: fc.oneof({ depthSize: 'small', withCrossShrink: true }, leaf, fc.array(recurse('tree'), { maxLength: 4 }), fc.dictionary(keys, recurse('tree'), { maxKeys: 4 })),
}))
const document = fc.dictionary(keys, tree, { maxKeys: 4 })

test('imp.db() filters and updates: injection and garbage get 4xx, never 500 or a hang', async () => {
  await fc.assert(
    fc.asyncProperty(fc.constantFrom('find', 'count', 'update', 'findOneAndUpdate'), document, document, async (op, filter, update) => {
      const response = await call('/fuzz/dev/probe', post({ op, filter, update }))
      answered(`${op} ${JSON.stringify(filter)} ${JSON.stringify(update)}`, response)
    }),
    { numRuns: runs * 3 },
  )
  for (const injected of [{ $where: 'sleep(100000) || true' }, { $function: { body: 'function () { return true }', args: [], lang: 'js' } }, { $expr: { $function: { body: 'function () { while (true) {} }', args: [], lang: 'js' } } }, { n: { $where: 'true' } }, { $and: [{ $where: 'true' }] }]) {
    const response = await call('/fuzz/dev/probe', post({ op: 'find', filter: injected }))
    assert.equal(response.status, 400, JSON.stringify(injected))
    assert.equal(response.body.error.code, 'bad_request')
  }
  const stillThere = await call('/fuzz/dev/probe', post({ op: 'count', filter: {} }))
  assert.equal(stillThere.status, 200)
})

test('admin API bodies: any JSON on any write route gets 2xx or a clear 4xx', async () => {
  const routes: Array<[string, string]> = [
    ['POST', '/admin/gateways'],
    ['PATCH', '/admin/gateways/fuzz'],
    ['PUT', '/admin/gateways/fuzz/environments/dev/plugins'],
    ['PUT', '/admin/gateways/fuzz/functions/target'],
    ['PUT', '/admin/gateways/fuzz/functions/target/plugins'],
    ['POST', '/admin/gateways/fuzz/functions/target/publish'],
    ['POST', '/admin/gateways/fuzz/functions/target/promote'],
    ['POST', '/admin/gateways/fuzz/functions/target/rollback'],
    ['POST', '/admin/gateways/fuzz/functions/probe/test'],
    ['PUT', '/admin/gateways/fuzz/environments/staging/variables/FUZZ'],
    ['POST', '/admin/applications'],
    ['POST', '/admin/grants'],
  ]
  await fc.assert(
    fc.asyncProperty(fc.constantFrom(...routes), fc.oneof(tree, document), async ([method, path], body) => {
      const response = await admin(method, path, body)
      answered(`${method} ${path} ${JSON.stringify(body)}`, response)
    }),
    { numRuns: runs * 2 },
  )
  const raw = await call('/admin/gateways', { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{"id": "x",' })
  assert.equal(raw.status, 400)
})

test('function names and gateway ids: valid ones work, anything else is invalid_name', async () => {
  const names = fc.oneof(fc.string({ maxLength: 140 }), fc.stringMatching(/^[A-Za-z][A-Za-z0-9_-]{0,10}(\/[A-Za-z][A-Za-z0-9_-]{0,10}){0,4}$/), fc.constantFrom('..', '../etc/passwd', 'a//b', '/a', 'a/', '%2e%2e', 'user/me', 'x'.repeat(129), 'ü', 'a\u0000b'))
  await fc.assert(
    fc.asyncProperty(names, async (name) => {
      const response = await admin('PUT', `/admin/gateways/fuzz/functions/${encodeURIComponent(name)}`, { source: 'export default () => 1' })
      answered(`function name ${JSON.stringify(name)}`, response)
      const valid = /^[A-Za-z][A-Za-z0-9_-]{0,63}(\/[A-Za-z][A-Za-z0-9_-]{0,63}){0,3}$/.test(name) && name.length <= 128
      if (valid) assert.equal(response.status, 200, `${JSON.stringify(name)} is valid`)
      // '.' and '..' are URL dot segments: the client resolves them away before sending.
      else if (name !== '.' && name !== '..') assert.equal(response.body.error.code, 'invalid_name', JSON.stringify(name))
    }),
    { numRuns: runs * 2 },
  )
  await fc.assert(
    fc.asyncProperty(fc.oneof(fc.string({ maxLength: 50 }), fc.stringMatching(/^[a-z0-9]([-a-z0-9]{0,10}[a-z0-9])?$/)), async (id) => {
      const response = await admin('POST', '/admin/gateways', { id })
      answered(`gateway id ${JSON.stringify(id)}`, response)
    }),
    { numRuns: runs },
  )
})

test('plugin configs: arbitrary configs for the known plugins validate or get invalid_plugin_config', async () => {
  const pluginNames = fc.constantFrom('cors', 'key-auth', 'limit-count', 'limit-req', 'ip-restriction', 'proxy-rewrite', 'unknown-plugin', 'serverless-pre-function')
  const configs = fc.dictionary(pluginNames, fc.oneof(document, fc.record({ count: fc.integer(), time_window: fc.integer(), rejected_code: fc.integer() }), fc.record({ whitelist: fc.array(fc.oneof(fc.ipV4(), fc.string({ maxLength: 20 })), { maxLength: 3 }) }), fc.record({ rate: fc.double(), burst: fc.double(), key: fc.string({ maxLength: 10 }) })), { maxKeys: 3 })
  await fc.assert(
    fc.asyncProperty(configs, async (plugins) => {
      const response = await admin('PUT', '/admin/gateways/fuzz/environments/staging/plugins', { plugins })
      answered(`plugins ${JSON.stringify(plugins)}`, response)
      if (response.status >= 400) assert.ok(['invalid_plugin_config', 'bad_request'].includes(response.body.error.code), response.body.error.code)
    }),
    { numRuns: runs * 2 },
  )
  // Whatever was accepted, the data plane still answers.
  const after = await call('/fuzz/dev/probe', post({ op: 'count', filter: {} }))
  assert.equal(after.status, 200)
})

test('MCP management tools: fuzzed arguments are InvalidParams or a result, never an internal error or a hang', async () => {
  const { Client } = await import('@modelcontextprotocol/sdk/client/index.js')
  const { StreamableHTTPClientTransport } = await import('@modelcontextprotocol/sdk/client/streamableHttp.js')
  const { ErrorCode, McpError } = await import('@modelcontextprotocol/sdk/types.js')
  const client = new Client({ name: 'fuzz', version: '1.0.0' })
  await client.connect(new StreamableHTTPClientTransport(new URL(`${platform().url}/mcp`), { requestInit: { headers: { authorization: `Bearer ${token}` } } }))
  try {
    const { tools } = await client.listTools()
    // Destructive tools would tear down the fixture gateway mid-run; they get the same checks on arguments alone.
    const names = tools.map((tool) => tool.name)
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...names, 'no_such_tool'), fc.oneof(document, fc.record({ gateway: fc.constantFrom('fuzz', 'nope', ''), name: fc.string({ maxLength: 10 }), stage: fc.constantFrom('dev', 'qa') })), async (name, args) => {
        const safeArgs = name === 'gateway_delete' || name === 'gateway_stop' ? { ...args, gateway: 'nope' } : args
        try {
          const result = await client.callTool({ name, arguments: safeArgs }, undefined, { timeout: 15_000 })
          assert.equal(typeof result.isError === 'boolean' || result.isError === undefined, true)
        } catch (error) {
          // A JSON body with a __proto__ key is refused by the HTTP layer itself (400 bad_request).
          if (!(error instanceof McpError) && /"code":"bad_request"/.test(String(error)) && JSON.stringify(safeArgs).includes('__proto__')) return
          assert.ok(error instanceof McpError, `${name}: ${String(error)}`)
          assert.ok([ErrorCode.InvalidParams, ErrorCode.MethodNotFound].includes(error.code), `${name} ${JSON.stringify(safeArgs)}: code ${error.code} ${error.message}`)
        }
      }),
      { numRuns: runs * 2 },
    )
  } finally {
    await client.close()
  }
  const still = await call('/fuzz/dev/probe', post({ op: 'count', filter: {} }))
  assert.equal(still.status, 200)
})
