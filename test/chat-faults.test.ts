/**
 * The chat gateway when things go wrong: bad keys, unknown models, malformed requests, provider
 * errors (429 with retry-after, 5xx, 4xx), fallback, streams cut before and after content,
 * malformed tool arguments, client disconnects, the time and round budgets. Every failure must
 * be a prompt, well-shaped answer — never a hang.
 */
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import Anthropic from '@anthropic-ai/sdk'
import OpenAI from 'openai'
import { startChatPlatform, type ChatPlatformFixture } from '../adaptors/testing/chat-platform-fixture.ts'
import { scriptedReplies, taxAgentScript, type StubServer } from '../adaptors/testing/stub-model-script.ts'
import { startStubOpenAIServer } from '../adaptors/testing/stub-openai-server.ts'

let fixture: ChatPlatformFixture
let broken: StubServer
let openai: OpenAI
let anthropic: Anthropic
const question = 'tax on 50,000,000 with 10,000,000 deductions?'

before(async () => {
  fixture = await startChatPlatform()
  broken = await startStubOpenAIServer(scriptedReplies({ kind: 'error', status: 503, message: 'broken upstream is down' }))
  assert.equal((await fixture.admin('POST', '/admin/providers', { id: 'stub-broken', kind: 'openai', baseUrl: `${broken.url}/v1` })).status, 201)
  assert.equal((await fixture.admin('PUT', '/admin/models/flaky', { provider: 'stub-broken', model: 'down', fallbacks: ['claude-stub'] })).status, 200)
  openai = new OpenAI({ apiKey: fixture.apiKey, baseURL: `${fixture.platform.url}/v1`, maxRetries: 0 })
  anthropic = new Anthropic({ apiKey: fixture.apiKey, baseURL: fixture.platform.url, maxRetries: 0 })
})
after(async () => {
  await fixture.close()
  await broken.close()
})

async function raw(path: string, body: unknown, headers: Record<string, string> = {}) {
  const response = await fetch(`${fixture.platform.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) })
  return { status: response.status, headers: response.headers, body: (await response.json()) as any }
}

const ask = { model: 'gpt-stub', messages: [{ role: 'user' as const, content: question }] }

test('missing or invalid key → 401 in each API shape', async () => {
  const missing = await raw('/v1/chat/completions', ask)
  assert.equal(missing.status, 401)
  assert.equal(missing.body.error.type, 'authentication_error')
  assert.match(missing.body.error.message, /imprun API key/)
  const invalid = await raw('/v1/messages', { ...ask, max_tokens: 10 }, { 'x-api-key': 'imp_AAAAAAAAAAAAAAAA_not-a-real-secret-not-a-real-secret-not-a-rea' })
  assert.equal(invalid.status, 401)
  assert.deepEqual(Object.keys(invalid.body).sort(), ['error', 'type'])
  assert.equal(invalid.body.error.type, 'authentication_error')
  const adminToken = await raw('/v1/chat/completions', ask, { authorization: 'Bearer chat-admin-token' })
  assert.equal(adminToken.status, 401, 'the admin token is not a grant key')
  await assert.rejects(new OpenAI({ apiKey: 'imp_nope', baseURL: `${fixture.platform.url}/v1`, maxRetries: 0 }).chat.completions.create(ask), (error: unknown) => error instanceof OpenAI.AuthenticationError)
})

test('unknown model → 404 listing the configured models', async () => {
  await assert.rejects(openai.chat.completions.create({ ...ask, model: 'gpt-9' }), (error: unknown) => {
    assert.ok(error instanceof OpenAI.NotFoundError)
    assert.equal(error.code, 'model_not_found')
    assert.match(error.message, /model 'gpt-9' is not configured; available: claude-stub, flaky, gpt-stub, llama-stub/)
    return true
  })
  await assert.rejects(anthropic.messages.create({ model: 'claude-9', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] }), (error: unknown) => {
    assert.ok(error instanceof Anthropic.NotFoundError)
    assert.match(error.message, /available: claude-stub/)
    return true
  })
})

test('bad request shapes → 400 naming the field', async () => {
  const key = { authorization: `Bearer ${fixture.apiKey}` }
  const cases: Array<[string, unknown, RegExp]> = [
    ['/v1/chat/completions', { model: 'gpt-stub', messages: [{ role: 'wizard', content: 'hi' }] }, /^messages\.0\.role/],
    ['/v1/chat/completions', { model: 'gpt-stub' }, /^messages: /],
    ['/v1/chat/completions', { model: 'gpt-stub', messages: [{ role: 'user', content: 42 }] }, /^messages\.0\.content/],
    ['/v1/chat/completions', { model: 'gpt-stub', messages: [{ role: 'tool', content: 'x' }] }, /^messages\.0\.tool_call_id/],
    ['/v1/chat/completions', { ...ask, tools: [{ type: 'function', function: { name: 'has space' } }] }, /^tools\.0\.function\.name/],
    ['/v1/chat/completions', { ...ask, imprun: { functions: ['nope'] } }, /^imprun\.functions: 'nope' not live on hometax\/prod; live: calculateTax/],
    ['/v1/chat/completions', { ...ask, imprun: { max_rounds: 0 } }, /^imprun\.max_rounds/],
    ['/v1/messages', { model: 'gpt-stub', messages: [{ role: 'user', content: 'hi' }] }, /^max_tokens/],
    ['/v1/messages', { model: 'gpt-stub', max_tokens: 5, messages: [{ role: 'user', content: [{ type: 'image' }] }] }, /^messages\.0\.content/],
  ]
  for (const [path, body, message] of cases) {
    const response = await raw(path, body, key)
    assert.equal(response.status, 400, `${JSON.stringify(body)} → ${JSON.stringify(response.body)}`)
    const text = path === '/v1/messages' ? response.body.error.message : response.body.error.message
    assert.match(text, message, JSON.stringify(response.body))
    if (path === '/v1/messages') assert.equal(response.body.error.type, 'invalid_request_error')
  }
  const header = await raw('/v1/chat/completions', ask, { ...key, 'imprun-max-rounds': 'many' })
  assert.equal(header.status, 400)
  assert.match(header.body.error.message, /max_rounds/)
})

test('429 with retry-after is retried after the wait, then answered', async () => {
  fixture.stubs.openai.script = scriptedReplies({ kind: 'error', status: 429, message: 'slow down', headers: { 'retry-after': '1' } }, { kind: 'answer', text: 'fine now' })
  const before = fixture.stubs.openai.requests.length
  const started = performance.now()
  const completion = await openai.chat.completions.create(ask)
  const elapsed = performance.now() - started
  assert.equal(completion.choices[0]!.message.content, 'fine now')
  assert.equal(fixture.stubs.openai.requests.length - before, 2)
  assert.ok(elapsed >= 950 && elapsed < 5000, `waited ${elapsed} ms`)
})

test('a provider 5xx that persists → the same status with its message after retries; a 4xx is not retried', async () => {
  fixture.stubs.openai.script = scriptedReplies({ kind: 'error', status: 500, message: 'upstream exploded' })
  let before = fixture.stubs.openai.requests.length
  await assert.rejects(openai.chat.completions.create(ask), (error: unknown) => {
    assert.ok(error instanceof OpenAI.InternalServerError, String(error))
    assert.equal(error.status, 500)
    assert.match(error.message, /upstream stub-openai|upstream openai: upstream exploded/)
    return true
  })
  assert.equal(fixture.stubs.openai.requests.length - before, 3, 'first attempt + 2 retries')
  fixture.stubs.openai.script = scriptedReplies({ kind: 'error', status: 400, message: 'context too long' })
  before = fixture.stubs.openai.requests.length
  await assert.rejects(anthropic.messages.create({ model: 'gpt-stub', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] }), (error: unknown) => {
    assert.ok(error instanceof Anthropic.BadRequestError, String(error))
    assert.match(error.message, /context too long/)
    return true
  })
  assert.equal(fixture.stubs.openai.requests.length - before, 1)
  fixture.stubs.openai.script = taxAgentScript
})

test('fallback: a failing provider hands over to the next configured model', async () => {
  fixture.stubs.anthropic.script = taxAgentScript
  const before = broken.requests.length
  const completion = await openai.chat.completions.create({ ...ask, model: 'flaky' }, { headers: { 'imprun-functions': 'all' } })
  assert.match(completion.choices[0]!.message.content ?? '', /8,800,000/)
  const report = (completion as unknown as { imprun: { provider: string; provider_model: string } }).imprun
  assert.equal(report.provider, 'stub-anthropic')
  assert.equal(report.provider_model, 'stub-claude')
  assert.equal(completion.model, 'flaky')
  assert.ok(broken.requests.length - before >= 3, 'the broken provider was tried (with retries) first')
  const usage = await fixture.admin('GET', '/admin/usage?application=mobile')
  const flaky = usage.body.entries.find((entry: { alias: string }) => entry.alias === 'flaky')
  assert.equal(flaky.provider, 'stub-anthropic', 'usage is booked on the provider that served')
})

test('a stream cut before any content is retried; cut after content ends the client stream with an error', async () => {
  fixture.stubs.openai.script = scriptedReplies({ kind: 'cut', text: '' }, { kind: 'answer', text: 'second try worked' })
  const recovered = await openai.chat.completions.stream(ask).finalChatCompletion()
  assert.equal(recovered.choices[0]!.message.content, 'second try worked')

  fixture.stubs.openai.script = scriptedReplies({ kind: 'cut', text: 'The answer is forty' })
  const started = performance.now()
  const stream = openai.chat.completions.stream(ask)
  let received = ''
  stream.on('content', (delta) => (received += delta))
  await assert.rejects(stream.finalChatCompletion(), (error: unknown) => {
    assert.ok(error instanceof OpenAI.APIError, String(error))
    assert.match(error.message, /upstream openai/)
    return true
  })
  assert.equal(received, 'The answer is forty')
  assert.ok(performance.now() - started < 5000)

  fixture.stubs.anthropic.script = scriptedReplies({ kind: 'cut', text: 'Partial answer here' })
  await assert.rejects(anthropic.messages.stream({ model: 'claude-stub', max_tokens: 50, messages: [{ role: 'user', content: 'hi' }] }).finalMessage(), (error: unknown) => {
    assert.ok(error instanceof Anthropic.APIError, String(error))
    assert.match(error.message, /upstream anthropic/)
    return true
  })
  fixture.stubs.openai.script = taxAgentScript
  fixture.stubs.anthropic.script = taxAgentScript
})

test('malformed JSON in tool arguments goes back to the model as a tool error', async () => {
  fixture.stubs.openai.script = scriptedReplies(
    { kind: 'answer', toolCalls: [{ name: 'calculateTax', arguments: '{"income": 5' }] },
    { kind: 'answer', text: 'Sorry, I could not call the tool.' },
  )
  const completion = await openai.chat.completions.create(ask, { headers: { 'imprun-functions': 'calculateTax' } })
  assert.equal(completion.choices[0]!.message.content, 'Sorry, I could not call the tool.')
  const report = (completion as unknown as { imprun: { tool_calls: Array<{ ok: boolean; arguments: unknown; error: { code: string } }> } }).imprun
  assert.equal(report.tool_calls.length, 1)
  assert.equal(report.tool_calls[0]!.ok, false)
  assert.equal(report.tool_calls[0]!.error.code, 'invalid_arguments')
  assert.equal(report.tool_calls[0]!.arguments, '{"income": 5')
  const fed = fixture.stubs.openai.requests.at(-1)!
  assert.match(fed.toolResults[0]!, /invalid_arguments/)

  // Arguments that parse but fail the function's input schema: the function's own error.
  fixture.stubs.openai.script = scriptedReplies({ kind: 'answer', toolCalls: [{ name: 'calculateTax', arguments: '{"income":"lots"}' }] }, { kind: 'answer', text: 'done' })
  const invalid = await openai.chat.completions.create(ask, { headers: { 'imprun-functions': 'all' } })
  const invalidReport = (invalid as unknown as { imprun: { tool_calls: Array<{ ok: boolean; error: { code: string } }> } }).imprun
  assert.equal(invalidReport.tool_calls[0]!.ok, false)
  assert.equal(invalidReport.tool_calls[0]!.error.code, 'invalid_input')
  fixture.stubs.openai.script = taxAgentScript
})

test('the round budget ends the loop; the time budget ends a silent provider with 504', async () => {
  fixture.stubs.openai.script = taxAgentScript
  const limited = await openai.chat.completions.create({ ...ask, ...{ imprun: { functions: 'all', max_rounds: 1 } } })
  assert.equal(limited.choices[0]!.finish_reason, 'length')
  assert.equal((limited as unknown as { imprun: { stop_reason: string } }).imprun.stop_reason, 'max_rounds')

  fixture.stubs.openai.script = scriptedReplies({ kind: 'hang' })
  const started = performance.now()
  await assert.rejects(openai.chat.completions.create(ask, { headers: { 'imprun-timeout-ms': '1000' } }), (error: unknown) => {
    assert.ok(error instanceof OpenAI.APIError)
    assert.equal(error.status, 504)
    assert.match(error.message, /time budget of 1000 ms/)
    return true
  })
  const elapsed = performance.now() - started
  assert.ok(elapsed >= 950 && elapsed < 4000, `${elapsed} ms`)
  fixture.stubs.openai.script = taxAgentScript
})

test('a client that goes away cancels the upstream request', async () => {
  fixture.stubs.openai.script = scriptedReplies({ kind: 'hang' })
  const abandoned = fixture.stubs.openai.abandoned
  const abort = new AbortController()
  setTimeout(() => abort.abort(), 200)
  await assert.rejects(openai.chat.completions.create({ ...ask, stream: true }, { signal: abort.signal }))
  for (let wait = 0; wait < 200 && fixture.stubs.openai.abandoned === abandoned; wait++) await new Promise((resolve) => setTimeout(resolve, 10))
  assert.equal(fixture.stubs.openai.abandoned, abandoned + 1, 'the stub saw its request closed')
  fixture.stubs.openai.script = taxAgentScript
})
