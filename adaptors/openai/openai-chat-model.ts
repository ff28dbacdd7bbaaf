/**
 * The OpenAI adaptor: chat completions through the official `openai` client. Works for any
 * OpenAI-compatible server given its baseUrl. The SDK's retries are off (the gateway retries);
 * responses and stream chunks are checked with zod before use.
 */
import OpenAI, { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from 'openai'
import { z } from 'zod'
import type { ChatMessage, ChatModel, ChatModelSettings, ChatRequest, ChatResult, ChatStreamEvent, FinishReason, TextPart, ToolCallPart } from '../spec/chat-model.ts'
import { cancelledError, ChatModelError } from '../spec/chat-model-error.ts'
import { withIdleTimeout } from '../spec/chat-stream.ts'
import { sdkChatModelError, sdkClientOptions } from '../spec/stainless-sdk.ts'

const usageSchema = z.looseObject({ prompt_tokens: z.number(), completion_tokens: z.number() })

const completionSchema = z.looseObject({
  id: z.string().nullish(),
  model: z.string().nullish(),
  choices: z
    .array(
      z.looseObject({
        finish_reason: z.string().nullish(),
        message: z.looseObject({
          content: z.string().nullish(),
          tool_calls: z
            .array(z.looseObject({ id: z.string(), function: z.looseObject({ name: z.string(), arguments: z.string() }) }))
            .nullish(),
        }),
      }),
    )
    .min(1),
  usage: usageSchema.nullish(),
})

const chunkSchema = z.looseObject({
  id: z.string().nullish(),
  model: z.string().nullish(),
  choices: z.array(
    z.looseObject({
      finish_reason: z.string().nullish(),
      delta: z
        .looseObject({
          content: z.string().nullish(),
          tool_calls: z
            .array(
              z.looseObject({
                index: z.number().int().min(0),
                id: z.string().nullish(),
                function: z.looseObject({ name: z.string().nullish(), arguments: z.string().nullish() }).nullish(),
              }),
            )
            .nullish(),
        })
        .nullish(),
    }),
  ),
  usage: usageSchema.nullish(),
})

export function createOpenAIChatModel(settings: ChatModelSettings = {}): ChatModel {
  const client = new OpenAI(sdkClientOptions(settings, 'https://api.openai.com/v1'))
  const idleMs = settings.idleTimeoutMs ?? 60_000

  return {
    provider: 'openai',
    async generate(request) {
      let response: unknown
      try {
        response = await client.chat.completions.create({ ...toOpenAIBody(request), stream: false }, { signal: request.signal })
      } catch (error) {
        throw request.signal?.aborted ? cancelledError('openai', error) : toChatModelError(error)
      }
      return fromCompletion(response, request.model)
    },
    async *stream(request) {
      try {
        const upstream = await client.chat.completions.create(
          { ...toOpenAIBody(request), stream: true, stream_options: { include_usage: true } },
          { signal: request.signal },
        )
        yield* translateChunks(withIdleTimeout(upstream, idleMs, 'openai'), request.model)
      } catch (error) {
        // The SDK ends an aborted stream quietly; the signal says why it ended.
        throw request.signal?.aborted ? cancelledError('openai', error) : toChatModelError(error)
      }
    },
  }
}

type OpenAIBody = OpenAI.Chat.Completions.ChatCompletionCreateParamsNonStreaming

function toOpenAIBody(request: ChatRequest): Omit<OpenAIBody, 'stream'> {
  const messages: OpenAI.Chat.Completions.ChatCompletionMessageParam[] = []
  if (request.system) messages.push({ role: 'system', content: request.system })
  for (const message of request.messages) messages.push(...toOpenAIMessages(message))
  const body: Omit<OpenAIBody, 'stream'> = { model: request.model, messages }
  if (request.tools?.length) {
    body.tools = request.tools.map((tool) => ({ type: 'function', function: { name: tool.name, description: tool.description, parameters: tool.parameters } }))
  }
  if (request.toolChoice) {
    body.tool_choice = typeof request.toolChoice === 'string' ? request.toolChoice : { type: 'function', function: { name: request.toolChoice.name } }
  }
  if (request.tools?.length && request.parallelToolCalls === false) body.parallel_tool_calls = false
  if (request.maxTokens !== undefined) body.max_tokens = request.maxTokens
  if (request.temperature !== undefined) body.temperature = request.temperature
  if (request.topP !== undefined) body.top_p = request.topP
  if (request.stop?.length) body.stop = request.stop
  return body
}

function toOpenAIMessages(message: ChatMessage): OpenAI.Chat.Completions.ChatCompletionMessageParam[] {
  switch (message.role) {
    case 'user':
      return [{ role: 'user', content: textOf(message.content) }]
    case 'assistant': {
      const calls = message.content.filter((part): part is ToolCallPart => part.type === 'tool-call')
      const text = textOf(message.content)
      return [
        {
          role: 'assistant',
          content: text.length > 0 || calls.length === 0 ? text : null,
          ...(calls.length > 0 ? { tool_calls: calls.map((call) => ({ id: call.id, type: 'function' as const, function: { name: call.name, arguments: call.arguments } })) } : {}),
        },
      ]
    }
    case 'tool':
      return message.content.map((result) => ({ role: 'tool' as const, tool_call_id: result.toolCallId, content: result.content }))
  }
}

function textOf(parts: ReadonlyArray<TextPart | ToolCallPart>): string {
  return parts.map((part) => (part.type === 'text' ? part.text : '')).join('')
}

export function openAIFinishReason(reason: string | null | undefined): FinishReason {
  switch (reason) {
    case 'stop':
      return 'stop'
    case 'length':
      return 'length'
    case 'tool_calls':
    case 'function_call':
      return 'tool-calls'
    case 'content_filter':
      return 'content-filter'
    default:
      return 'other'
  }
}

function fromCompletion(response: unknown, requestedModel: string): ChatResult {
  const parsed = completionSchema.safeParse(response)
  if (!parsed.success) throw invalidResponse(parsed.error.message)
  const choice = parsed.data.choices[0]!
  const content: Array<TextPart | ToolCallPart> = []
  if (choice.message.content) content.push({ type: 'text', text: choice.message.content })
  for (const call of choice.message.tool_calls ?? []) content.push({ type: 'tool-call', id: call.id, name: call.function.name, arguments: call.function.arguments })
  return {
    id: parsed.data.id ?? null,
    model: parsed.data.model ?? requestedModel,
    content,
    finishReason: openAIFinishReason(choice.finish_reason),
    usage: { inputTokens: parsed.data.usage?.prompt_tokens ?? 0, outputTokens: parsed.data.usage?.completion_tokens ?? 0 },
  }
}

async function* translateChunks(chunks: AsyncIterable<unknown>, requestedModel: string): AsyncGenerator<ChatStreamEvent> {
  let started = false
  let finishReason: FinishReason | null = null
  let usage = { inputTokens: 0, outputTokens: 0 }
  // Provider index → our index; OpenAI numbers calls per choice, and may skip numbers.
  const calls = new Map<number, number>()
  for await (const raw of chunks) {
    const parsed = chunkSchema.safeParse(raw)
    if (!parsed.success) throw invalidResponse(parsed.error.message)
    const chunk = parsed.data
    if (!started) {
      started = true
      yield { type: 'start', id: chunk.id ?? null, model: chunk.model ?? requestedModel }
    }
    if (chunk.usage) usage = { inputTokens: chunk.usage.prompt_tokens, outputTokens: chunk.usage.completion_tokens }
    const choice = chunk.choices[0]
    if (!choice) continue
    if (choice.delta?.content) yield { type: 'text-delta', text: choice.delta.content }
    for (const delta of choice.delta?.tool_calls ?? []) {
      let index = calls.get(delta.index)
      if (index === undefined) {
        index = calls.size
        calls.set(delta.index, index)
        yield { type: 'tool-call-start', index, id: delta.id ?? `call_${index}`, name: delta.function?.name ?? '' }
      }
      if (delta.function?.arguments) yield { type: 'tool-call-delta', index, argumentsDelta: delta.function.arguments }
    }
    if (choice.finish_reason) finishReason = openAIFinishReason(choice.finish_reason)
  }
  if (finishReason === null) {
    throw new ChatModelError('network', 'openai stream ended before a finish_reason', { provider: 'openai', status: 502 })
  }
  for (const index of calls.values()) yield { type: 'tool-call-end', index }
  yield { type: 'finish', finishReason, usage }
}

function invalidResponse(detail: string): ChatModelError {
  return new ChatModelError('invalid_response', `openai answered in an unexpected shape: ${detail.slice(0, 300)}`, { provider: 'openai', status: 502 })
}

export function toChatModelError(error: unknown): ChatModelError {
  return sdkChatModelError('openai', error, { APIError, APIConnectionError, APIConnectionTimeoutError, APIUserAbortError }, (body) => (body as { message?: unknown } | undefined)?.message)
}
