/**
 * The contract every `ChatModel` adaptor meets, run by each adaptor's test against its loopback
 * stub provider: the same request gives the same neutral answer, events and errors, whichever
 * provider's wire format carried them.
 */
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import type { ChatModel, ChatModelSettings, ChatRequest, ChatStreamEvent } from '../spec/chat-model.ts'
import { ChatModelError } from '../spec/chat-model-error.ts'
import { collectStream } from '../spec/chat-stream.ts'
import { scriptedReplies, taxAgentScript, type StubScript, type StubServer } from './stub-model-script.ts'

export interface ChatModelContractSubject {
  name: string
  startStub(script: StubScript): Promise<StubServer>
  createModel(settings: ChatModelSettings & { baseUrl: string }): ChatModel
  /** What the adaptor's settings.baseUrl is, given the stub's root URL. */
  baseUrl(stubUrl: string): string
}

const question: ChatRequest = {
  model: 'stub-model',
  system: 'You are a tax assistant.',
  messages: [{ role: 'user', content: [{ type: 'text', text: 'tax on 50,000,000 with 10,000,000 deductions?' }] }],
  tools: [{ name: 'hometax_calculateTax', description: 'Income tax', parameters: { type: 'object', properties: { income: { type: 'number' }, deductions: { type: 'number' } } } }],
}

export function chatModelContract(subject: ChatModelContractSubject): void {
  let stub: StubServer
  let model: ChatModel
  before(async () => {
    stub = await subject.startStub(taxAgentScript)
    model = subject.createModel({ baseUrl: subject.baseUrl(stub.url), apiKey: 'stub-key', timeoutMs: 2000, idleTimeoutMs: 1000 })
  })
  after(() => stub.close())

  test(`${subject.name}: generate returns a tool call, then an answer from the tool result`, async () => {
    stub.script = taxAgentScript
    const first = await model.generate(question)
    assert.equal(first.finishReason, 'tool-calls')
    const call = first.content.find((part) => part.type === 'tool-call')
    assert.ok(call && call.type === 'tool-call')
    assert.equal(call.name, 'hometax_calculateTax')
    assert.deepEqual(JSON.parse(call.arguments), { income: 50_000_000, deductions: 10_000_000 })
    assert.deepEqual(first.usage, { inputTokens: 30, outputTokens: 12 })
    const second = await model.generate({
      ...question,
      messages: [
        ...question.messages,
        { role: 'assistant', content: first.content },
        { role: 'tool', content: [{ type: 'tool-result', toolCallId: call.id, toolName: call.name, content: '{"tax":8800000}' }] },
      ],
    })
    assert.equal(second.finishReason, 'stop')
    assert.deepEqual(second.content, [{ type: 'text', text: 'The tax is 8,800,000.' }])
    const sent = stub.requests.at(-1)!
    assert.deepEqual(sent.toolResults, ['{"tax":8800000}'])
  })

  test(`${subject.name}: stream yields typed events ending in one finish`, async () => {
    stub.script = taxAgentScript
    const events: ChatStreamEvent[] = []
    for await (const event of model.stream(question)) events.push(event)
    assert.equal(events[0]?.type, 'start')
    assert.equal(events.at(-1)?.type, 'finish')
    assert.equal(events.filter((event) => event.type === 'finish').length, 1)
    const text = events.flatMap((event) => (event.type === 'text-delta' ? [event.text] : [])).join('')
    assert.equal(text, 'Let me calculate that. ')
    const start = events.find((event) => event.type === 'tool-call-start')
    assert.ok(start && start.type === 'tool-call-start')
    assert.equal(start.name, 'hometax_calculateTax')
    const result = await collectStream(model.stream(question))
    assert.equal(result.finishReason, 'tool-calls')
    const call = result.content.find((part) => part.type === 'tool-call')
    assert.ok(call?.type === 'tool-call')
    assert.deepEqual(JSON.parse(call.arguments), { income: 50_000_000, deductions: 10_000_000 })
    assert.deepEqual(result.usage, { inputTokens: 30, outputTokens: 12 })
  })

  test(`${subject.name}: 429 with retry-after becomes a retryable rate_limited error`, async () => {
    stub.script = scriptedReplies({ kind: 'error', status: 429, message: 'slow down', headers: { 'retry-after': '2' } })
    for (const run of [() => model.generate(question), () => collectStream(model.stream(question))]) {
      await assert.rejects(run, (error: unknown) => {
        assert.ok(error instanceof ChatModelError, String(error))
        assert.equal(error.code, 'rate_limited')
        assert.equal(error.status, 429)
        assert.equal(error.retryable, true)
        assert.equal(error.retryAfterMs, 2000)
        assert.match(error.message, /slow down/)
        return true
      })
    }
  })

  test(`${subject.name}: 500 and 400 keep status and message; only 500 is retryable`, async () => {
    stub.script = scriptedReplies({ kind: 'error', status: 500, message: 'upstream exploded' })
    await assert.rejects(model.generate(question), (error: unknown) => error instanceof ChatModelError && error.code === 'provider_error' && error.status === 500 && error.retryable && /upstream exploded/.test(error.message))
    stub.script = scriptedReplies({ kind: 'error', status: 400, message: 'bad model name' })
    await assert.rejects(collectStream(model.stream(question)), (error: unknown) => error instanceof ChatModelError && error.code === 'invalid_request' && error.status === 400 && !error.retryable && /bad model name/.test(error.message))
  })

  test(`${subject.name}: a stream cut mid-way fails as a retryable network error`, async () => {
    stub.script = scriptedReplies({ kind: 'cut', text: 'The answer is forty' })
    await assert.rejects(collectStream(model.stream(question)), (error: unknown) => error instanceof ChatModelError && error.retryable && (error.code === 'network' || error.code === 'provider_error'))
  })

  test(`${subject.name}: a silent provider times out; an abort cancels`, async () => {
    stub.script = scriptedReplies({ kind: 'hang' })
    const started = performance.now()
    await assert.rejects(model.generate(question), (error: unknown) => error instanceof ChatModelError && error.code === 'timeout' && error.retryable)
    assert.ok(performance.now() - started < 5000)
    const abort = new AbortController()
    setTimeout(() => abort.abort(), 50)
    await assert.rejects(collectStream(model.stream({ ...question, signal: abort.signal })), (error: unknown) => error instanceof ChatModelError && error.code === 'cancelled')
  })
}
