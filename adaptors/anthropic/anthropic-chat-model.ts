/**
 * The Anthropic adaptor: the Messages API through the official `@anthropic-ai/sdk` client, SDK
 * retries off. Raw stream events (not the SDK's MessageStream helper) are translated one by one,
 * each checked with zod.
 */
import Anthropic, { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from '@anthropic-ai/sdk'
import { z } from 'zod'
import type { ChatMessage, ChatModel, ChatModelSettings, ChatRequest, ChatResult, ChatStreamEvent, FinishReason, TextPart, ToolCallPart } from '../spec/chat-model.ts'
import { cancelledError, ChatModelError } from '../spec/chat-model-error.ts'
import { parseToolArguments, withIdleTimeout } from '../spec/chat-stream.ts'
import { sdkChatModelError, sdkClientOptions } from '../spec/stainless-sdk.ts'

/** Anthropic requires max_tokens; this is used when the caller gives none. */
export const defaultAnthropicMaxTokens = 4096

const blockSchema = z.discriminatedUnion('type', [
  z.looseObject({ type: z.literal('text'), text: z.string() }),
  z.looseObject({ type: z.literal('tool_use'), id: z.string(), name: z.string(), input: z.unknown() }),
  z.looseObject({ type: z.literal('thinking') }),
  z.looseObject({ type: z.literal('redacted_thinking') }),
])

const messageSchema = z.looseObject({
  id: z.string(),
  model: z.string(),
  content: z.array(z.unknown()),
  stop_reason: z.string().nullish(),
  usage: z.looseObject({ input_tokens: z.number(), output_tokens: z.number() }),
})

const eventSchema = z.discriminatedUnion('type', [
  z.looseObject({ type: z.literal('message_start'), message: z.looseObject({ id: z.string(), model: z.string(), usage: z.looseObject({ input_tokens: z.number() }) }) }),
  z.looseObject({ type: z.literal('content_block_start'), index: z.number(), content_block: z.looseObject({ type: z.string(), id: z.string().optional(), name: z.string().optional() }) }),
  z.looseObject({
    type: z.literal('content_block_delta'),
    index: z.number(),
    delta: z.looseObject({ type: z.string(), text: z.string().optional(), partial_json: z.string().optional() }),
  }),
  z.looseObject({ type: z.literal('content_block_stop'), index: z.number() }),
  z.looseObject({ type: z.literal('message_delta'), delta: z.looseObject({ stop_reason: z.string().nullish() }), usage: z.looseObject({ output_tokens: z.number(), input_tokens: z.number().nullish() }) }),
  z.looseObject({ type: z.literal('message_stop') }),
  z.looseObject({ type: z.literal('ping') }),
])

export function createAnthropicChatModel(settings: ChatModelSettings = {}): ChatModel {
  const client = new Anthropic(sdkClientOptions(settings, 'https://api.anthropic.com'))
  const idleMs = settings.idleTimeoutMs ?? 60_000

  return {
    provider: 'anthropic',
    async generate(request) {
      let response: unknown
      try {
        response = await client.messages.create({ ...toAnthropicBody(request), stream: false }, { signal: request.signal })
      } catch (error) {
        throw request.signal?.aborted ? cancelledError('anthropic', error) : toChatModelError(error)
      }
      return fromMessage(response)
    },
    async *stream(request) {
      try {
        const upstream = await client.messages.create({ ...toAnthropicBody(request), stream: true }, { signal: request.signal })
        yield* translateEvents(withIdleTimeout(upstream, idleMs, 'anthropic'))
      } catch (error) {
        throw request.signal?.aborted ? cancelledError('anthropic', error) : toChatModelError(error)
      }
    },
  }
}

type AnthropicBody = Anthropic.Messages.MessageCreateParamsNonStreaming

function toAnthropicBody(request: ChatRequest): Omit<AnthropicBody, 'stream'> {
  const body: Omit<AnthropicBody, 'stream'> = {
    model: request.model,
    max_tokens: request.maxTokens ?? defaultAnthropicMaxTokens,
    messages: toAnthropicMessages(request.messages),
  }
  if (request.system) body.system = request.system
  if (request.tools?.length) {
    body.tools = request.tools.map((tool) => ({
      name: tool.name,
      description: tool.description,
      input_schema: { ...tool.parameters, type: 'object' },
    }))
  }
  if (request.toolChoice) {
    const choice = request.toolChoice
    body.tool_choice = choice === 'auto' ? { type: 'auto' } : choice === 'required' ? { type: 'any' } : choice === 'none' ? { type: 'none' } : { type: 'tool', name: choice.name }
  }
  if (request.tools?.length && request.parallelToolCalls === false && body.tool_choice?.type !== 'none') {
    body.tool_choice = { ...(body.tool_choice ?? { type: 'auto' }), disable_parallel_tool_use: true }
  }
  if (request.stop?.length) body.stop_sequences = request.stop
  // This SDK's types no longer list the sampling fields, but the API still takes them.
  const sampling: Record<string, number> = {}
  if (request.temperature !== undefined) sampling.temperature = request.temperature
  if (request.topP !== undefined) sampling.top_p = request.topP
  return { ...body, ...sampling }
}

type AnthropicMessage = Anthropic.Messages.MessageParam
type AnthropicBlock = Anthropic.Messages.ContentBlockParam

/** Tool results travel in user turns, and Anthropic wants roles to alternate: merge neighbours. */
function toAnthropicMessages(messages: readonly ChatMessage[]): AnthropicMessage[] {
  const out: Array<{ role: 'user' | 'assistant'; content: AnthropicBlock[] }> = []
  for (const message of messages) {
    const role = message.role === 'assistant' ? 'assistant' : 'user'
    const blocks: AnthropicBlock[] = []
    for (const part of message.content) {
      if (part.type === 'text') {
        if (part.text.length > 0) blocks.push({ type: 'text', text: part.text })
      } else if (part.type === 'tool-call') {
        blocks.push({ type: 'tool_use', id: part.id, name: part.name, input: parseToolArguments(part.arguments) ?? {} })
      } else {
        blocks.push({ type: 'tool_result', tool_use_id: part.toolCallId, content: part.content, ...(part.isError ? { is_error: true } : {}) })
      }
    }
    const last = out.at(-1)
    if (last && last.role === role) last.content.push(...blocks)
    else out.push({ role, content: blocks })
  }
  return out
}

export function anthropicFinishReason(reason: string | null | undefined): FinishReason {
  switch (reason) {
    case 'end_turn':
    case 'stop_sequence':
      return 'stop'
    case 'max_tokens':
    case 'model_context_window_exceeded':
      return 'length'
    case 'tool_use':
      return 'tool-calls'
    case 'refusal':
      return 'content-filter'
    default:
      return 'other'
  }
}

function fromMessage(response: unknown): ChatResult {
  const parsed = messageSchema.safeParse(response)
  if (!parsed.success) throw invalidResponse(parsed.error.message)
  const content: Array<TextPart | ToolCallPart> = []
  for (const raw of parsed.data.content) {
    const block = blockSchema.safeParse(raw)
    if (!block.success) continue
    if (block.data.type === 'text') content.push({ type: 'text', text: block.data.text })
    else if (block.data.type === 'tool_use') content.push({ type: 'tool-call', id: block.data.id, name: block.data.name, arguments: JSON.stringify(block.data.input ?? {}) })
  }
  return {
    id: parsed.data.id,
    model: parsed.data.model,
    content,
    finishReason: anthropicFinishReason(parsed.data.stop_reason),
    usage: { inputTokens: parsed.data.usage.input_tokens, outputTokens: parsed.data.usage.output_tokens },
  }
}

async function* translateEvents(events: AsyncIterable<unknown>): AsyncGenerator<ChatStreamEvent> {
  let inputTokens = 0
  let outputTokens = 0
  let stopReason: string | null | undefined
  let stopped = false
  // Anthropic block index → our tool call index, and whether arguments arrived.
  const toolBlocks = new Map<number, { index: number; sawArguments: boolean }>()
  for await (const raw of events) {
    const parsed = eventSchema.safeParse(raw)
    if (!parsed.success) continue // unknown event types are allowed by Anthropic's versioning policy
    const event = parsed.data
    switch (event.type) {
      case 'message_start':
        inputTokens = event.message.usage.input_tokens
        yield { type: 'start', id: event.message.id, model: event.message.model }
        break
      case 'content_block_start':
        if (event.content_block.type === 'tool_use') {
          const index = toolBlocks.size
          toolBlocks.set(event.index, { index, sawArguments: false })
          yield { type: 'tool-call-start', index, id: event.content_block.id ?? `toolu_${index}`, name: event.content_block.name ?? '' }
        }
        break
      case 'content_block_delta':
        if (event.delta.type === 'text_delta' && event.delta.text) yield { type: 'text-delta', text: event.delta.text }
        else if (event.delta.type === 'input_json_delta' && event.delta.partial_json) {
          const block = toolBlocks.get(event.index)
          if (block) {
            block.sawArguments = true
            yield { type: 'tool-call-delta', index: block.index, argumentsDelta: event.delta.partial_json }
          }
        }
        break
      case 'content_block_stop': {
        const block = toolBlocks.get(event.index)
        if (block) {
          if (!block.sawArguments) yield { type: 'tool-call-delta', index: block.index, argumentsDelta: '{}' }
          yield { type: 'tool-call-end', index: block.index }
        }
        break
      }
      case 'message_delta':
        stopReason = event.delta.stop_reason
        outputTokens = event.usage.output_tokens
        if (event.usage.input_tokens != null) inputTokens = event.usage.input_tokens
        break
      case 'message_stop':
        stopped = true
        break
      case 'ping':
        break
    }
  }
  if (!stopped) throw new ChatModelError('network', 'anthropic stream ended before message_stop', { provider: 'anthropic', status: 502 })
  yield { type: 'finish', finishReason: anthropicFinishReason(stopReason), usage: { inputTokens, outputTokens } }
}

function invalidResponse(detail: string): ChatModelError {
  return new ChatModelError('invalid_response', `anthropic answered in an unexpected shape: ${detail.slice(0, 300)}`, { provider: 'anthropic', status: 502 })
}

function toChatModelError(error: unknown): ChatModelError {
  return sdkChatModelError('anthropic', error, { APIError, APIConnectionError, APIConnectionTimeoutError, APIUserAbortError }, (body) => (body as { error?: { message?: unknown } } | undefined)?.error?.message)
}
