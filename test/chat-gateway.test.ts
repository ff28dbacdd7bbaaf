/**
 * The chat gateway end to end with the official `openai` and `@anthropic-ai/sdk` clients pointed
 * at /v1, served by loopback stub providers of each kind: the design's journey (prod key, prod
 * functions as tools, the model calls calculateTax and answers 8,800,000) through every client
 * × provider × stream combination, client-defined tools, models, usage and admin config.
 */
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import Anthropic from '@anthropic-ai/sdk'
import OpenAI from 'openai'
import { startChatPlatform, type ChatPlatformFixture } from '../adaptors/testing/chat-platform-fixture.ts'
import { scriptedReplies, taxAgentScript } from '../adaptors/testing/stub-model-script.ts'

let fixture: ChatPlatformFixture
let openai: OpenAI
let anthropic: Anthropic
const question = 'tax on 50,000,000 with 10,000,000 deductions?'
const kinds = ['openai', 'anthropic', 'ollama'] as const

before(async () => {
  fixture = await startChatPlatform()
  openai = new OpenAI({ apiKey: fixture.apiKey, baseURL: `${fixture.platform.url}/v1`, maxRetries: 0 })
  anthropic = new Anthropic({ apiKey: fixture.apiKey, baseURL: fixture.platform.url, maxRetries: 0 })
})
after(() => fixture.close())

function resetScripts() {
  for (const stub of Object.values(fixture.stubs)) stub.script = taxAgentScript
}

interface ReportedCall {
  name: string
  tool: string
  arguments: unknown
  ok: boolean
  result?: unknown
  round: number
  durationMs: number
}

function assertJourneyReport(report: { rounds: number; tool_calls: ReportedCall[] } | undefined, what: string) {
  assert.ok(report, `${what}: imprun report present`)
  assert.equal(report.rounds, 2, what)
  assert.equal(report.tool_calls.length, 1, what)
  const [call] = report.tool_calls
  assert.equal(call!.name, 'calculateTax', what)
  assert.deepEqual(call!.arguments, { income: 50_000_000, deductions: 10_000_000 }, what)
  assert.equal(call!.ok, true, what)
  assert.deepEqual(call!.result, { tax: 8_800_000 }, what)
  assert.equal(typeof call!.durationMs, 'number')
}

for (const kind of kinds) {
  test(`journey via the OpenAI client → ${kind} provider: non-stream and stream`, async () => {
    resetScripts()
    const model = fixture.aliases[kind]
    const before = fixture.stubs[kind].requests.length
    const completion = await openai.chat.completions.create({ model, messages: [{ role: 'user', content: question }] }, { headers: { 'imprun-functions': 'all' } })
    assert.equal(completion.model, model)
    assert.equal(completion.choices[0]!.finish_reason, 'stop')
    assert.match(completion.choices[0]!.message.content ?? '', /8,800,000/)
    assertJourneyReport((completion as unknown as { imprun: { rounds: number; tool_calls: ReportedCall[] } }).imprun, `${kind} non-stream`)
    assert.ok(completion.usage!.prompt_tokens >= 70, 'usage is summed over both rounds')
    assert.equal(fixture.stubs[kind].requests.length - before, 2, 'two model calls')
    // The function was offered under a tool name and its result went back to the model.
    const [first, second] = fixture.stubs[kind].requests.slice(-2)
    assert.ok(first!.tools.includes('calculateTax'))
    assert.deepEqual(JSON.parse(second!.toolResults[0]!), { tax: 8_800_000 })

    const stream = openai.chat.completions.stream({ model, messages: [{ role: 'user', content: question }], stream_options: { include_usage: true } }, { headers: { 'imprun-functions': 'all' } })
    let streamed = ''
    stream.on('content', (delta) => (streamed += delta))
    const final = await stream.finalChatCompletion()
    assert.match(final.choices[0]!.message.content ?? '', /Let me calculate that\. The tax is 8,800,000\./)
    assert.equal(streamed, final.choices[0]!.message.content)
    assert.equal(final.choices[0]!.finish_reason, 'stop')
    assert.equal(final.choices[0]!.message.tool_calls, undefined, 'function tool calls are not handed to the client')
    assert.equal(final.usage?.total_tokens, 90)
    assertJourneyReport((final as unknown as { imprun: { rounds: number; tool_calls: ReportedCall[] } }).imprun, `${kind} stream`)
  })

  test(`journey via the Anthropic client → ${kind} provider: non-stream and stream`, async () => {
    resetScripts()
    const model = fixture.aliases[kind]
    const message = await anthropic.messages.create(
      // The body extension: the SDK sends unknown fields through.
      { model, max_tokens: 512, messages: [{ role: 'user', content: question }], ...{ imprun: { functions: ['calculateTax'] } } },
    )
    assert.equal(message.model, model)
    assert.equal(message.stop_reason, 'end_turn')
    const text = message.content.map((block) => (block.type === 'text' ? block.text : '')).join('')
    assert.match(text, /8,800,000/)
    assertJourneyReport((message as unknown as { imprun: { rounds: number; tool_calls: ReportedCall[] } }).imprun, `${kind} non-stream`)
    assert.deepEqual(message.usage.input_tokens, 70)

    const stream = anthropic.messages.stream({ model, max_tokens: 512, messages: [{ role: 'user', content: question }] }, { headers: { 'imprun-functions': 'all' } })
    const reports: Array<{ rounds: number; tool_calls: ReportedCall[] }> = []
    const order: string[] = []
    stream.on('streamEvent', (event) => {
      order.push(event.type)
      if ((event.type as string) === 'imprun') reports.push(event as unknown as { rounds: number; tool_calls: ReportedCall[] })
    })
    const final = await stream.finalMessage()
    const finalText = final.content.map((block) => (block.type === 'text' ? block.text : '')).join('')
    assert.equal(finalText, 'Let me calculate that. The tax is 8,800,000.')
    assert.equal(final.stop_reason, 'end_turn')
    assert.equal(final.usage.output_tokens, 20)
    assert.equal(order[0], 'message_start')
    assert.deepEqual(order.slice(-2), ['message_delta', 'message_stop'])
    assert.ok(reports.length >= 1)
    assertJourneyReport(reports.at(-1), `${kind} stream`)
  })
}

test('tools the client defined come back to the client (OpenAI and Anthropic shapes, stream and not)', async () => {
  const weatherCall = { kind: 'answer' as const, text: '', toolCalls: [{ name: 'get_weather', arguments: '{"city":"Seoul"}' }] }
  fixture.stubs.anthropic.script = scriptedReplies(weatherCall)
  fixture.stubs.openai.script = scriptedReplies(weatherCall)
  const tools = [{ type: 'function' as const, function: { name: 'get_weather', description: 'Weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }]
  // OpenAI client → Anthropic provider, with function tools on offer too.
  const completion = await openai.chat.completions.create({ model: 'claude-stub', messages: [{ role: 'user', content: 'weather?' }], tools }, { headers: { 'imprun-functions': 'all' } })
  assert.equal(completion.choices[0]!.finish_reason, 'tool_calls')
  const call = completion.choices[0]!.message.tool_calls![0]!
  assert.equal(call.type, 'function')
  assert.equal(call.type === 'function' && call.function.name, 'get_weather')
  assert.deepEqual(call.type === 'function' && JSON.parse(call.function.arguments), { city: 'Seoul' })
  const sent = fixture.stubs.anthropic.requests.at(-1)!
  assert.deepEqual(sent.tools.sort(), ['calculateTax', 'get_weather'])
  assert.deepEqual(sent.body.tool_choice, { type: 'auto', disable_parallel_tool_use: true }, 'client tools and functions on offer: one call per answer')
  await openai.chat.completions.create({ model: 'gpt-stub', messages: [{ role: 'user', content: 'weather?' }], tools }, { headers: { 'imprun-functions': 'all' } })
  assert.equal(fixture.stubs.openai.requests.at(-1)!.body.parallel_tool_calls, false)
  await openai.chat.completions.create({ model: 'gpt-stub', messages: [{ role: 'user', content: 'weather?' }], tools })
  assert.equal(fixture.stubs.openai.requests.at(-1)!.body.parallel_tool_calls, undefined, 'client tools only: the provider default')
  await openai.chat.completions.create({ model: 'claude-stub', messages: [{ role: 'user', content: 'weather?' }], tools, parallel_tool_calls: false })
  assert.deepEqual(fixture.stubs.anthropic.requests.at(-1)!.body.tool_choice, { type: 'auto', disable_parallel_tool_use: true }, "the client's own parallel_tool_calls: false is carried over")

  const stream = openai.chat.completions.stream({ model: 'claude-stub', messages: [{ role: 'user', content: 'weather?' }], tools })
  const final = await stream.finalChatCompletion()
  assert.equal(final.choices[0]!.finish_reason, 'tool_calls')
  const streamedCall = final.choices[0]!.message.tool_calls![0]!
  assert.equal(streamedCall.type === 'function' && streamedCall.function.name, 'get_weather')
  assert.equal(streamedCall.type === 'function' && streamedCall.function.arguments, '{"city":"Seoul"}')

  // Anthropic client → OpenAI provider.
  const anthropicTools = [{ name: 'get_weather', description: 'Weather', input_schema: { type: 'object' as const, properties: { city: { type: 'string' } } } }]
  const message = await anthropic.messages.create({ model: 'gpt-stub', max_tokens: 100, messages: [{ role: 'user', content: 'weather?' }], tools: anthropicTools })
  assert.equal(message.stop_reason, 'tool_use')
  const block = message.content.find((item) => item.type === 'tool_use')
  assert.ok(block && block.type === 'tool_use')
  assert.equal(block.name, 'get_weather')
  assert.deepEqual(block.input, { city: 'Seoul' })
  await anthropic.messages.create({ model: 'gpt-stub', max_tokens: 100, messages: [{ role: 'user', content: 'weather?' }], tools: anthropicTools, tool_choice: { type: 'auto', disable_parallel_tool_use: true } })
  assert.equal(fixture.stubs.openai.requests.at(-1)!.body.parallel_tool_calls, false, 'disable_parallel_tool_use carried over to OpenAI')
  const finalMessage = await anthropic.messages.stream({ model: 'gpt-stub', max_tokens: 100, messages: [{ role: 'user', content: 'weather?' }], tools: anthropicTools }).finalMessage()
  assert.equal(finalMessage.stop_reason, 'tool_use')
  const streamedBlock = finalMessage.content.find((item) => item.type === 'tool_use')
  assert.ok(streamedBlock && streamedBlock.type === 'tool_use')
  assert.deepEqual(streamedBlock.input, { city: 'Seoul' })

  // And the client's tool result goes back to the provider as a tool result.
  fixture.stubs.openai.script = taxAgentScript
  const answer = await anthropic.messages.create({
    model: 'gpt-stub',
    max_tokens: 100,
    tools: anthropicTools,
    messages: [
      { role: 'user', content: 'weather?' },
      { role: 'assistant', content: [{ type: 'tool_use', id: block.id, name: 'get_weather', input: { city: 'Seoul' } }] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: block.id, content: 'sunny' }] },
    ],
  })
  assert.equal(answer.content[0]!.type === 'text' && answer.content[0]!.text, 'The tool said: sunny')
  resetScripts()
})

test('a plain request (no imprun extension) is proxied without function tools', async () => {
  resetScripts()
  const completion = await openai.chat.completions.create({ model: 'llama-stub', messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: question }] })
  assert.equal(completion.choices[0]!.message.content, `You said: ${question}`)
  assert.equal((completion as unknown as { imprun?: unknown }).imprun, undefined)
  const sent = fixture.stubs.ollama.requests.at(-1)!
  assert.deepEqual(sent.tools, [])
  assert.deepEqual((sent.body.messages as Array<{ role: string }>)[0], { role: 'system', content: 'be brief' })
})

test('provider keys reach the provider, never the admin API', async () => {
  resetScripts()
  await openai.chat.completions.create({ model: 'gpt-stub', messages: [{ role: 'user', content: 'hi' }] })
  await openai.chat.completions.create({ model: 'claude-stub', messages: [{ role: 'user', content: 'hi' }] })
  assert.equal(fixture.stubs.openai.requests.at(-1)!.headers.authorization, 'Bearer sk-openai-stub-key-0001')
  // This SDK version sends API keys as a bearer token; older ones used x-api-key.
  const anthropicHeaders = fixture.stubs.anthropic.requests.at(-1)!.headers
  assert.equal(anthropicHeaders['x-api-key'] ?? anthropicHeaders.authorization?.replace('Bearer ', ''), 'sk-ant-stub-key-0002')
  const listed = await fixture.admin('GET', '/admin/providers')
  assert.equal(listed.status, 200)
  const text = JSON.stringify(listed.body)
  assert.ok(!text.includes('sk-openai-stub-key-0001') && !text.includes('sk-ant-stub-key-0002'), text)
  const openaiProvider = listed.body.providers.find((provider: { id: string }) => provider.id === 'stub-openai')
  assert.equal(openaiProvider.apiKeySet, true)
  assert.equal(openaiProvider.apiKeyPreview, 'sk-…0001')
  assert.equal((await fixture.admin('GET', '/admin/providers/nope')).status, 404)
  const badModel = await fixture.admin('PUT', '/admin/models/x', { provider: 'nope', model: 'm' })
  assert.equal(badModel.status, 404)
  assert.match(badModel.body.error.message, /provider 'nope'/)
  const badKind = await fixture.admin('POST', '/admin/providers', { id: 'bad', kind: 'cohere' })
  assert.equal(badKind.status, 400)
  assert.match(badKind.body.error.message, /kind/)
  const inUse = await fixture.admin('DELETE', '/admin/providers/stub-openai')
  assert.equal(inUse.status, 409)
  const unauthenticated = await fetch(`${fixture.platform.url}/admin/providers`)
  assert.equal(unauthenticated.status, 401)
})

test('GET /v1/models lists the configured aliases in each API shape', async () => {
  const models = []
  for await (const model of openai.models.list()) models.push(model.id)
  assert.deepEqual(models.sort(), ['claude-stub', 'gpt-stub', 'llama-stub'])
  const anthropicModels = await anthropic.models.list()
  assert.deepEqual(anthropicModels.data.map((model) => model.id).sort(), ['claude-stub', 'gpt-stub', 'llama-stub'])
})

test('usage is recorded per application and model, and queryable', async () => {
  const usage = await fixture.admin('GET', '/admin/usage?application=mobile')
  assert.equal(usage.status, 200)
  const entries = usage.body.entries as Array<{ application: string; alias: string; provider: string; requests: number; inputTokens: number; outputTokens: number; stage: string }>
  assert.ok(entries.length >= 3)
  for (const entry of entries) {
    assert.equal(entry.application, fixture.applicationId)
    assert.equal(entry.stage, 'prod')
  }
  const llama = entries.find((entry) => entry.alias === 'llama-stub' && entry.provider === 'stub-ollama')!
  assert.ok(llama.requests >= 9, `llama requests ${llama.requests}`)
  assert.ok(llama.inputTokens > 0 && llama.outputTokens > 0)
  const sum = entries.reduce((total, entry) => total + entry.inputTokens, 0)
  assert.equal(usage.body.totals.inputTokens, sum)
  const unknown = await fixture.admin('GET', '/admin/usage?application=nobody')
  assert.equal(unknown.status, 404)
})
