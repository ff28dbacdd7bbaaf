/**
 * The Anthropic Messages wire format on the gateway side: the request schema and its neutral
 * form, the message object, and the SSE event sequence (message_start, content_block_start /
 * _delta / _stop per block, message_delta, message_stop). Function calls the gateway ran are
 * reported in a top-level `imprun` field of the message, and in streams as `event: imprun`
 * events (cumulative), which the SDK passes to `streamEvent` listeners and otherwise ignores.
 */
import { z } from 'zod'
import type { ChatMessage, ChatRequest, FinishReason, TextPart, ToolCallPart, ToolChoice, ToolResultPart } from '../spec/chat-model.ts'
import type { AgentResult, AgentSink } from './agent-loop.ts'
import type { ToolCallReport } from './function-tools.ts'
import { toolNamePattern } from './function-tools.ts'
import { imprunExtensionSchema, imprunReport, type ImprunExtension } from './imprun-extension.ts'

const textBlock = z.object({ type: z.literal('text'), text: z.string() })
const block = z.discriminatedUnion('type', [
  textBlock,
  z.object({ type: z.literal('tool_use'), id: z.string().min(1), name: z.string().min(1), input: z.unknown() }),
  z.object({ type: z.literal('tool_result'), tool_use_id: z.string().min(1), content: z.union([z.string(), z.array(textBlock)]).optional(), is_error: z.boolean().optional() }),
])

export const anthropicMessagesRequestSchema = z.object({
  model: z.string().min(1),
  max_tokens: z.number().int().positive(),
  system: z.union([z.string(), z.array(textBlock)]).optional(),
  messages: z.array(z.object({ role: z.enum(['user', 'assistant']), content: z.union([z.string(), z.array(block)]) })).min(1),
  tools: z
    .array(
      z.object({
        type: z.literal('custom').optional(),
        name: z.string().regex(toolNamePattern, 'a tool name is 1-64 letters, digits, _ or -'),
        description: z.string().optional(),
        input_schema: z.record(z.string(), z.unknown()),
      }),
    )
    .optional(),
  tool_choice: z
    .discriminatedUnion('type', [
      z.object({ type: z.literal('auto'), disable_parallel_tool_use: z.boolean().optional() }),
      z.object({ type: z.literal('any'), disable_parallel_tool_use: z.boolean().optional() }),
      z.object({ type: z.literal('none') }),
      z.object({ type: z.literal('tool'), name: z.string(), disable_parallel_tool_use: z.boolean().optional() }),
    ])
    .optional(),
  stream: z.boolean().optional(),
  temperature: z.number().min(0).max(1).optional(),
  top_p: z.number().min(0).max(1).optional(),
  stop_sequences: z.array(z.string()).optional(),
  imprun: imprunExtensionSchema.optional(),
})

export type AnthropicMessagesRequest = z.infer<typeof anthropicMessagesRequestSchema>

export function fromAnthropicRequest(body: AnthropicMessagesRequest): { request: Omit<ChatRequest, 'model' | 'signal'>; stream: boolean; extension: ImprunExtension | undefined } {
  const messages: ChatMessage[] = []
  const toolNames = new Map<string, string>()
  for (const item of body.messages) {
    const blocks = typeof item.content === 'string' ? [{ type: 'text' as const, text: item.content }] : item.content
    if (item.role === 'assistant') {
      const parts: Array<TextPart | ToolCallPart> = []
      for (const part of blocks) {
        if (part.type === 'text') parts.push({ type: 'text', text: part.text })
        else if (part.type === 'tool_use') {
          toolNames.set(part.id, part.name)
          parts.push({ type: 'tool-call', id: part.id, name: part.name, arguments: JSON.stringify(part.input ?? {}) })
        }
      }
      messages.push({ role: 'assistant', content: parts })
      continue
    }
    // A user turn may carry tool results and text: results first, as their own turn.
    const results: ToolResultPart[] = []
    const texts: TextPart[] = []
    for (const part of blocks) {
      if (part.type === 'tool_result') {
        const text = typeof part.content === 'string' ? part.content : (part.content ?? []).map((inner) => inner.text).join('')
        results.push({ type: 'tool-result', toolCallId: part.tool_use_id, toolName: toolNames.get(part.tool_use_id) ?? '', content: text, ...(part.is_error ? { isError: true } : {}) })
      } else if (part.type === 'text') texts.push({ type: 'text', text: part.text })
    }
    if (results.length > 0) messages.push({ role: 'tool', content: results })
    if (texts.length > 0) messages.push({ role: 'user', content: texts })
  }
  let toolChoice: ToolChoice | undefined
  if (body.tool_choice) {
    const choice = body.tool_choice
    toolChoice = choice.type === 'auto' ? 'auto' : choice.type === 'any' ? 'required' : choice.type === 'none' ? 'none' : { name: choice.name }
  }
  const system = typeof body.system === 'string' ? body.system : body.system?.map((part) => part.text).join('\n')
  const request: Omit<ChatRequest, 'model' | 'signal'> = {
    messages,
    maxTokens: body.max_tokens,
    ...(system ? { system } : {}),
    ...(body.tools?.length ? { tools: body.tools.map((tool) => ({ name: tool.name, description: tool.description ?? '', parameters: tool.input_schema })) } : {}),
    ...(toolChoice ? { toolChoice } : {}),
    ...(body.tool_choice && 'disable_parallel_tool_use' in body.tool_choice && body.tool_choice.disable_parallel_tool_use === true ? { parallelToolCalls: false } : {}),
    ...(body.temperature !== undefined ? { temperature: body.temperature } : {}),
    ...(body.top_p !== undefined ? { topP: body.top_p } : {}),
    ...(body.stop_sequences?.length ? { stop: body.stop_sequences } : {}),
  }
  return { request, stream: body.stream === true, extension: body.imprun }
}

export function anthropicStopReason(reason: FinishReason): 'end_turn' | 'max_tokens' | 'tool_use' | 'refusal' {
  switch (reason) {
    case 'length':
      return 'max_tokens'
    case 'tool-calls':
      return 'tool_use'
    case 'content-filter':
      return 'refusal'
    default:
      return 'end_turn'
  }
}

function toolInput(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return {}
  }
}

export function toAnthropicMessage(result: AgentResult, meta: { id: string; model: string }, withReport: boolean): Record<string, unknown> {
  return {
    id: meta.id,
    type: 'message',
    role: 'assistant',
    model: meta.model,
    content: result.content.map((part) => (part.type === 'text' ? { type: 'text', text: part.text } : { type: 'tool_use', id: part.id, name: part.name, input: toolInput(part.arguments) })),
    stop_reason: anthropicStopReason(result.finishReason),
    stop_sequence: null,
    usage: { input_tokens: result.usage.inputTokens, output_tokens: result.usage.outputTokens },
    ...(withReport ? { imprun: imprunReport(result) } : {}),
  }
}

/** Writes a streamed answer as Anthropic SSE events. */
export class AnthropicStreamWriter implements AgentSink {
  private readonly write: (text: string) => void
  private readonly meta: { id: string; model: string }
  private begun = false
  private nextBlock = 0
  private open: { kind: 'text' } | { kind: 'tool'; index: number } | null = null
  onBegin: () => void = () => {}

  constructor(write: (text: string) => void, meta: { id: string; model: string }) {
    this.write = write
    this.meta = meta
  }

  get started(): boolean {
    return this.begun
  }

  private event(type: string, data: Record<string, unknown>): void {
    this.begin()
    this.write(`event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`)
  }

  begin(): void {
    if (this.begun) return
    this.begun = true
    this.onBegin()
    this.write(
      `event: message_start\ndata: ${JSON.stringify({
        type: 'message_start',
        message: { id: this.meta.id, type: 'message', role: 'assistant', model: this.meta.model, content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 0, output_tokens: 0 } },
      })}\n\n`,
    )
  }

  private closeBlock(): void {
    if (!this.open) return
    this.event('content_block_stop', { index: this.nextBlock - 1 })
    this.open = null
  }

  text(text: string): void {
    if (this.open?.kind !== 'text') {
      this.closeBlock()
      this.event('content_block_start', { index: this.nextBlock++, content_block: { type: 'text', text: '' } })
      this.open = { kind: 'text' }
    }
    this.event('content_block_delta', { index: this.nextBlock - 1, delta: { type: 'text_delta', text } })
  }

  toolCallStart(index: number, id: string, name: string): void {
    this.closeBlock()
    this.event('content_block_start', { index: this.nextBlock++, content_block: { type: 'tool_use', id, name, input: {} } })
    this.open = { kind: 'tool', index }
  }

  toolCallDelta(index: number, argumentsDelta: string): void {
    if (this.open?.kind === 'tool' && this.open.index === index) this.event('content_block_delta', { index: this.nextBlock - 1, delta: { type: 'input_json_delta', partial_json: argumentsDelta } })
  }

  toolCallEnd(index: number): void {
    if (this.open?.kind === 'tool' && this.open.index === index) this.closeBlock()
  }

  toolExecuted(_report: ToolCallReport, all: readonly ToolCallReport[], rounds: number): void {
    this.event('imprun', { rounds, tool_calls: [...all] })
  }

  end(result: AgentResult, withReport: boolean): void {
    this.closeBlock()
    if (withReport) this.event('imprun', { ...imprunReport(result) })
    this.event('message_delta', {
      delta: { stop_reason: anthropicStopReason(result.finishReason), stop_sequence: null },
      usage: { input_tokens: result.usage.inputTokens, output_tokens: result.usage.outputTokens },
    })
    this.event('message_stop', {})
  }

  error(body: { type: 'error'; error: { type: string; message: string } }): void {
    this.write(`event: error\ndata: ${JSON.stringify(body)}\n\n`)
  }
}
