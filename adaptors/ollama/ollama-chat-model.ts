/**
 * The Ollama adaptor: native /api/chat through the official `ollama` client (NDJSON streaming;
 * tool calls arrive whole, with parsed arguments and no id). The client has neither timeouts
 * nor per-request signals, so both live in the fetch it is given, which also keeps the response
 * headers for `retry-after` (Ollama's ResponseError drops them).
 */
import { randomUUID } from 'node:crypto'
import { Ollama, type ChatRequest as OllamaChatRequest, type Message as OllamaMessage } from 'ollama'
import { z } from 'zod'
import type { ChatMessage, ChatModel, ChatModelSettings, ChatRequest, ChatResult, ChatStreamEvent, FinishReason, TextPart, ToolCallPart, Usage } from '../spec/chat-model.ts'
import { cancelledError, ChatModelError, errorFromStatus, isChatModelError, type HeadersLike } from '../spec/chat-model-error.ts'
import { parseToolArguments, withIdleTimeout } from '../spec/chat-stream.ts'

const toolCallSchema = z.looseObject({ function: z.looseObject({ name: z.string(), arguments: z.unknown() }) })

const responseSchema = z.looseObject({
  model: z.string().nullish(),
  message: z.looseObject({ content: z.string().nullish(), tool_calls: z.array(toolCallSchema).nullish() }).nullish(),
  done: z.boolean().nullish(),
  done_reason: z.string().nullish(),
  prompt_eval_count: z.number().nullish(),
  eval_count: z.number().nullish(),
})

export function createOllamaChatModel(settings: ChatModelSettings = {}): ChatModel {
  const baseFetch = settings.fetch ?? globalThis.fetch
  const timeoutMs = settings.timeoutMs ?? 60_000
  const idleMs = settings.idleTimeoutMs ?? 60_000
  const headers: Record<string, string> = { ...settings.headers }
  if (settings.apiKey) headers.authorization = `Bearer ${settings.apiKey}`

  /** One client per request: it carries that request's signal, deadline and response headers. */
  function clientFor(signal: AbortSignal | undefined) {
    const state: { headers: HeadersLike | null; timedOut: boolean } = { headers: null, timedOut: false }
    const fetchWithSignal: typeof fetch = async (input, init) => {
      const deadline = new AbortController()
      const timer = setTimeout(() => {
        state.timedOut = true
        deadline.abort()
      }, timeoutMs)
      const signals = [deadline.signal, ...(signal ? [signal] : []), ...(init?.signal ? [init.signal] : [])]
      try {
        const response = await baseFetch(input, { ...init, signal: AbortSignal.any(signals) })
        state.headers = response.headers
        return response
      } finally {
        clearTimeout(timer)
      }
    }
    const client = new Ollama({ host: settings.baseUrl ?? 'http://127.0.0.1:11434', fetch: fetchWithSignal, headers })
    const fail = (error: unknown): ChatModelError => {
      if (signal?.aborted) return cancelledError('ollama', error)
      if (state.timedOut) return new ChatModelError('timeout', 'ollama did not answer in time', { provider: 'ollama', status: 504, cause: error })
      return toChatModelError(error, state.headers)
    }
    return { client, fail }
  }

  return {
    provider: 'ollama',
    async generate(request) {
      const { client, fail } = clientFor(request.signal)
      let response: unknown
      try {
        response = await client.chat({ ...toOllamaBody(request), stream: false })
      } catch (error) {
        throw fail(error)
      }
      return fromResponse(response, request.model)
    },
    async *stream(request) {
      const { client, fail } = clientFor(request.signal)
      try {
        const upstream = await client.chat({ ...toOllamaBody(request), stream: true })
        yield* translateLines(withIdleTimeout(upstream, idleMs, 'ollama'), request.model)
      } catch (error) {
        throw fail(error)
      }
    },
  }
}

function toOllamaBody(request: ChatRequest): Omit<OllamaChatRequest, 'stream'> {
  const messages: OllamaMessage[] = []
  if (request.system) messages.push({ role: 'system', content: request.system })
  for (const message of request.messages) messages.push(...toOllamaMessages(message))
  const body: Omit<OllamaChatRequest, 'stream'> = { model: request.model, messages }
  if (request.tools?.length) {
    body.tools = request.tools.map((tool) => ({ type: 'function', function: { name: tool.name, description: tool.description, parameters: tool.parameters } }))
  }
  const options: NonNullable<OllamaChatRequest['options']> = {}
  if (request.maxTokens !== undefined) options.num_predict = request.maxTokens
  if (request.temperature !== undefined) options.temperature = request.temperature
  if (request.topP !== undefined) options.top_p = request.topP
  if (request.stop?.length) options.stop = request.stop
  if (Object.keys(options).length > 0) body.options = options
  return body
}

function toOllamaMessages(message: ChatMessage): OllamaMessage[] {
  switch (message.role) {
    case 'user':
      return [{ role: 'user', content: textOf(message.content) }]
    case 'assistant': {
      const calls = message.content.filter((part): part is ToolCallPart => part.type === 'tool-call')
      return [
        {
          role: 'assistant',
          content: textOf(message.content),
          ...(calls.length > 0 ? { tool_calls: calls.map((call) => ({ function: { name: call.name, arguments: parseToolArguments(call.arguments) ?? {} } })) } : {}),
        },
      ]
    }
    case 'tool':
      return message.content.map((result) => ({ role: 'tool', content: result.content, tool_name: result.toolName }))
  }
}

function textOf(parts: ReadonlyArray<TextPart | ToolCallPart>): string {
  return parts.map((part) => (part.type === 'text' ? part.text : '')).join('')
}

/** Ollama says `stop` also when the answer is tool calls. */
function ollamaFinishReason(reason: string | null | undefined, sawToolCalls: boolean): FinishReason {
  if (reason === 'length') return 'length'
  if (sawToolCalls) return 'tool-calls'
  return reason === 'stop' || reason == null ? 'stop' : 'other'
}

function newCallId(): string {
  return `call_${randomUUID().replaceAll('-', '').slice(0, 24)}`
}

function argumentsText(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value ?? {})
}

function fromResponse(response: unknown, requestedModel: string): ChatResult {
  const parsed = responseSchema.safeParse(response)
  if (!parsed.success) throw invalidResponse(parsed.error.message)
  const content: Array<TextPart | ToolCallPart> = []
  if (parsed.data.message?.content) content.push({ type: 'text', text: parsed.data.message.content })
  const calls = parsed.data.message?.tool_calls ?? []
  for (const call of calls) content.push({ type: 'tool-call', id: newCallId(), name: call.function.name, arguments: argumentsText(call.function.arguments) })
  return {
    id: null,
    model: parsed.data.model ?? requestedModel,
    content,
    finishReason: ollamaFinishReason(parsed.data.done_reason, calls.length > 0),
    usage: { inputTokens: parsed.data.prompt_eval_count ?? 0, outputTokens: parsed.data.eval_count ?? 0 },
  }
}

async function* translateLines(lines: AsyncIterable<unknown>, requestedModel: string): AsyncGenerator<ChatStreamEvent> {
  let started = false
  let calls = 0
  let done: { reason: string | null | undefined; usage: Usage } | null = null
  for await (const raw of lines) {
    const parsed = responseSchema.safeParse(raw)
    if (!parsed.success) throw invalidResponse(parsed.error.message)
    const line = parsed.data
    if (!started) {
      started = true
      yield { type: 'start', id: null, model: line.model ?? requestedModel }
    }
    if (line.message?.content) yield { type: 'text-delta', text: line.message.content }
    for (const call of line.message?.tool_calls ?? []) {
      const index = calls++
      yield { type: 'tool-call-start', index, id: newCallId(), name: call.function.name }
      yield { type: 'tool-call-delta', index, argumentsDelta: argumentsText(call.function.arguments) }
      yield { type: 'tool-call-end', index }
    }
    if (line.done) done = { reason: line.done_reason, usage: { inputTokens: line.prompt_eval_count ?? 0, outputTokens: line.eval_count ?? 0 } }
  }
  if (!done) throw new ChatModelError('network', 'ollama stream ended before done', { provider: 'ollama', status: 502 })
  yield { type: 'finish', finishReason: ollamaFinishReason(done.reason, calls > 0), usage: done.usage }
}

function invalidResponse(detail: string): ChatModelError {
  return new ChatModelError('invalid_response', `ollama answered in an unexpected shape: ${detail.slice(0, 300)}`, { provider: 'ollama', status: 502 })
}

function toChatModelError(error: unknown, headers: HeadersLike | null): ChatModelError {
  if (isChatModelError(error)) return error
  const statusCode = (error as { status_code?: unknown } | null)?.status_code
  const message = error instanceof Error ? error.message : String(error)
  if (error instanceof Error && error.name === 'ResponseError' && typeof statusCode === 'number') {
    return errorFromStatus('ollama', statusCode, message, headers, error)
  }
  if (error instanceof SyntaxError) return new ChatModelError('invalid_response', `ollama sent malformed data: ${message}`, { provider: 'ollama', status: 502, cause: error })
  if (error instanceof TypeError) return new ChatModelError('network', `cannot reach ollama: ${message}`, { provider: 'ollama', status: 502, cause: error })
  // An `{"error": …}` line inside the stream.
  return new ChatModelError('provider_error', message, { provider: 'ollama', status: 502, cause: error })
}
