/**
 * The OpenAI chat completions wire format on the gateway side: the request schema (what we
 * accept, and how it becomes a neutral `ChatRequest`) and the response shapes — a completion
 * object, or SSE chunks with tool_call deltas, `finish_reason`, an optional usage chunk and
 * `data: [DONE]`. Function calls the gateway ran are reported in a top-level `imprun` field;
 * in streams every chunk that carries it carries the whole report so far, because the SDK's
 * `finalChatCompletion()` keeps the last value of unknown top-level chunk fields.
 */
import { z } from 'zod'
import type { ChatMessage, ChatRequest, FinishReason, TextPart, ToolCallPart, ToolChoice, Usage } from '../spec/chat-model.ts'
import type { AgentResult, AgentSink } from './agent-loop.ts'
import type { ToolCallReport } from './function-tools.ts'
import { toolNamePattern } from './function-tools.ts'
import { imprunExtensionSchema, imprunReport, type ImprunExtension, type ImprunReport } from './imprun-extension.ts'

const textPart = z.object({ type: z.literal('text'), text: z.string() })
const content = z.union([z.string(), z.array(textPart)])

const toolCall = z.object({
  id: z.string().min(1),
  type: z.literal('function').optional(),
  function: z.object({ name: z.string().min(1), arguments: z.string() }),
})

const message = z.discriminatedUnion('role', [
  z.object({ role: z.literal('system'), content }),
  z.object({ role: z.literal('developer'), content }),
  z.object({ role: z.literal('user'), content }),
  z.object({ role: z.literal('assistant'), content: content.nullish(), tool_calls: z.array(toolCall).optional() }),
  z.object({ role: z.literal('tool'), tool_call_id: z.string().min(1), content }),
])

export const openAIChatRequestSchema = z.object({
  model: z.string().min(1),
  messages: z.array(message).min(1),
  tools: z
    .array(
      z.object({
        type: z.literal('function'),
        function: z.object({
          name: z.string().regex(toolNamePattern, 'a tool name is 1-64 letters, digits, _ or -'),
          description: z.string().optional(),
          parameters: z.record(z.string(), z.unknown()).optional(),
        }),
      }),
    )
    .optional(),
  tool_choice: z.union([z.enum(['auto', 'none', 'required']), z.object({ type: z.literal('function'), function: z.object({ name: z.string() }) })]).optional(),
  parallel_tool_calls: z.boolean().nullish(),
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().optional() }).nullish(),
  max_tokens: z.number().int().positive().nullish(),
  max_completion_tokens: z.number().int().positive().nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().min(0).max(1).nullish(),
  stop: z.union([z.string(), z.array(z.string()).max(4)]).nullish(),
  n: z.literal(1, { error: 'only n=1 is supported' }).nullish(),
  imprun: imprunExtensionSchema.optional(),
})

export type OpenAIChatRequest = z.infer<typeof openAIChatRequestSchema>

function joinText(value: string | Array<{ text: string }> | null | undefined): string {
  if (value == null) return ''
  return typeof value === 'string' ? value : value.map((part) => part.text).join('')
}

export function fromOpenAIRequest(body: OpenAIChatRequest): { request: Omit<ChatRequest, 'model' | 'signal'>; stream: boolean; includeUsage: boolean; extension: ImprunExtension | undefined } {
  const system: string[] = []
  const messages: ChatMessage[] = []
  const toolNames = new Map<string, string>()
  for (const item of body.messages) {
    switch (item.role) {
      case 'system':
      case 'developer':
        system.push(joinText(item.content))
        break
      case 'user':
        messages.push({ role: 'user', content: [{ type: 'text', text: joinText(item.content) }] })
        break
      case 'assistant': {
        const parts: Array<TextPart | ToolCallPart> = []
        const text = joinText(item.content)
        if (text.length > 0) parts.push({ type: 'text', text })
        for (const call of item.tool_calls ?? []) {
          toolNames.set(call.id, call.function.name)
          parts.push({ type: 'tool-call', id: call.id, name: call.function.name, arguments: call.function.arguments })
        }
        messages.push({ role: 'assistant', content: parts })
        break
      }
      case 'tool': {
        const result = { type: 'tool-result' as const, toolCallId: item.tool_call_id, toolName: toolNames.get(item.tool_call_id) ?? '', content: joinText(item.content) }
        const last = messages.at(-1)
        if (last?.role === 'tool') last.content.push(result)
        else messages.push({ role: 'tool', content: [result] })
        break
      }
    }
  }
  let toolChoice: ToolChoice | undefined
  if (typeof body.tool_choice === 'string') toolChoice = body.tool_choice
  else if (body.tool_choice) toolChoice = { name: body.tool_choice.function.name }
  const request: Omit<ChatRequest, 'model' | 'signal'> = {
    messages,
    ...(system.length > 0 ? { system: system.join('\n\n') } : {}),
    ...(body.tools?.length
      ? { tools: body.tools.map((tool) => ({ name: tool.function.name, description: tool.function.description ?? '', parameters: tool.function.parameters ?? { type: 'object', properties: {} } })) }
      : {}),
    ...(toolChoice ? { toolChoice } : {}),
    ...(body.parallel_tool_calls === false ? { parallelToolCalls: false } : {}),
    ...(body.max_completion_tokens ?? body.max_tokens ? { maxTokens: (body.max_completion_tokens ?? body.max_tokens)! } : {}),
    ...(body.temperature != null ? { temperature: body.temperature } : {}),
    ...(body.top_p != null ? { topP: body.top_p } : {}),
    ...(body.stop != null ? { stop: typeof body.stop === 'string' ? [body.stop] : body.stop } : {}),
  }
  return { request, stream: body.stream === true, includeUsage: body.stream_options?.include_usage === true, extension: body.imprun }
}

export function openAIFinishReason(reason: FinishReason): 'stop' | 'length' | 'tool_calls' | 'content_filter' {
  switch (reason) {
    case 'length':
      return 'length'
    case 'tool-calls':
      return 'tool_calls'
    case 'content-filter':
      return 'content_filter'
    default:
      return 'stop'
  }
}

function openAIUsage(usage: Usage) {
  return { prompt_tokens: usage.inputTokens, completion_tokens: usage.outputTokens, total_tokens: usage.inputTokens + usage.outputTokens }
}

export function toOpenAICompletion(result: AgentResult, meta: { id: string; created: number; model: string }, withReport: boolean): Record<string, unknown> {
  const text = result.content.map((part) => (part.type === 'text' ? part.text : '')).join('')
  const calls = result.content.filter((part): part is ToolCallPart => part.type === 'tool-call')
  return {
    id: meta.id,
    object: 'chat.completion',
    created: meta.created,
    model: meta.model,
    choices: [
      {
        index: 0,
        message: {
          role: 'assistant',
          content: text.length > 0 || calls.length === 0 ? text : null,
          refusal: null,
          ...(calls.length > 0 ? { tool_calls: calls.map((call) => ({ id: call.id, type: 'function', function: { name: call.name, arguments: call.arguments } })) } : {}),
        },
        logprobs: null,
        finish_reason: openAIFinishReason(result.finishReason),
      },
    ],
    usage: openAIUsage(result.usage),
    ...(withReport ? { imprun: imprunReport(result) } : {}),
  }
}

/** Writes a streamed answer as OpenAI SSE chunks. `begin` is implied by the first write. */
export class OpenAIStreamWriter implements AgentSink {
  private readonly write: (text: string) => void
  private readonly meta: { id: string; created: number; model: string }
  private readonly includeUsage: boolean
  private begun = false
  private report: ImprunReport | null = null
  onBegin: () => void = () => {}

  constructor(write: (text: string) => void, meta: { id: string; created: number; model: string }, includeUsage: boolean) {
    this.write = write
    this.meta = meta
    this.includeUsage = includeUsage
  }

  get started(): boolean {
    return this.begun
  }

  private chunk(choices: unknown[], extra: Record<string, unknown> = {}): void {
    this.begin()
    this.write(`data: ${JSON.stringify({ id: this.meta.id, object: 'chat.completion.chunk', created: this.meta.created, model: this.meta.model, choices, ...extra })}\n\n`)
  }

  private delta(delta: Record<string, unknown>): void {
    this.chunk([{ index: 0, delta, logprobs: null, finish_reason: null }])
  }

  begin(): void {
    if (this.begun) return
    this.begun = true
    this.onBegin()
    this.delta({ role: 'assistant', content: '' })
  }

  text(text: string): void {
    this.delta({ content: text })
  }

  toolCallStart(index: number, id: string, name: string): void {
    this.delta({ tool_calls: [{ index, id, type: 'function', function: { name, arguments: '' } }] })
  }

  toolCallDelta(index: number, argumentsDelta: string): void {
    this.delta({ tool_calls: [{ index, function: { arguments: argumentsDelta } }] })
  }

  toolCallEnd(): void {}

  toolExecuted(_report: ToolCallReport, all: readonly ToolCallReport[], rounds: number): void {
    this.report = { rounds, tool_calls: [...all] }
    this.chunk([], { imprun: this.report })
  }

  end(result: AgentResult, withReport: boolean): void {
    const extra = withReport ? { imprun: imprunReport(result) } : {}
    this.chunk([{ index: 0, delta: {}, logprobs: null, finish_reason: openAIFinishReason(result.finishReason) }], extra)
    if (this.includeUsage) this.chunk([], { usage: openAIUsage(result.usage), ...extra })
    this.write('data: [DONE]\n\n')
  }

  /** After the stream began: the SDK raises an APIError for a chunk with an `error` field. */
  error(body: { error: Record<string, unknown> }): void {
    this.write(`data: ${JSON.stringify(body)}\n\n`)
  }
}
