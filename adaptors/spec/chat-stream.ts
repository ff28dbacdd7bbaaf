/**
 * Helpers around `ChatStreamEvent` sequences shared by adaptors and the gateway: assembling a
 * stream into a `ChatResult`, and an idle timeout that turns a silent upstream into an error
 * instead of a hang.
 */
import type { ChatResult, ChatStreamEvent, FinishReason, ProviderKind, TextPart, ToolCallPart, Usage } from './chat-model.ts'
import { ChatModelError } from './chat-model-error.ts'

/** Accumulates events into the answer they describe. */
export class ChatStreamAssembler {
  id: string | null = null
  model = ''
  finishReason: FinishReason | null = null
  usage: Usage = { inputTokens: 0, outputTokens: 0 }
  private readonly parts: Array<TextPart | ToolCallPart> = []
  private readonly calls = new Map<number, ToolCallPart>()

  add(event: ChatStreamEvent): void {
    switch (event.type) {
      case 'start':
        this.id = event.id
        this.model = event.model
        break
      case 'text-delta': {
        const last = this.parts.at(-1)
        if (last?.type === 'text') last.text += event.text
        else this.parts.push({ type: 'text', text: event.text })
        break
      }
      case 'tool-call-start': {
        const call: ToolCallPart = { type: 'tool-call', id: event.id, name: event.name, arguments: '' }
        this.calls.set(event.index, call)
        this.parts.push(call)
        break
      }
      case 'tool-call-delta': {
        const call = this.calls.get(event.index)
        if (call) call.arguments += event.argumentsDelta
        break
      }
      case 'tool-call-end':
        break
      case 'finish':
        this.finishReason = event.finishReason
        this.usage = event.usage
        break
    }
  }

  result(): ChatResult {
    return { id: this.id, model: this.model, content: this.parts.map((part) => ({ ...part })), finishReason: this.finishReason ?? 'other', usage: this.usage }
  }
}

export async function collectStream(events: AsyncIterable<ChatStreamEvent>): Promise<ChatResult> {
  const assembler = new ChatStreamAssembler()
  for await (const event of events) assembler.add(event)
  return assembler.result()
}

/**
 * Yields `source`'s items, failing with a retryable `timeout` error when none arrives for
 * `idleMs`. Returning early closes `source` (which aborts its request).
 */
export async function* withIdleTimeout<T>(source: AsyncIterable<T>, idleMs: number, provider: ProviderKind): AsyncGenerator<T> {
  const iterator = source[Symbol.asyncIterator]()
  let finished = false
  try {
    while (true) {
      let timer: NodeJS.Timeout | undefined
      const idle = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new ChatModelError('timeout', `${provider} sent nothing for ${idleMs} ms`, { provider, status: 504 })), idleMs)
      })
      let step: IteratorResult<T>
      try {
        step = await Promise.race([iterator.next(), idle])
      } finally {
        clearTimeout(timer)
      }
      if (step.done) {
        finished = true
        return
      }
      yield step.value
    }
  } finally {
    if (!finished) void iterator.return?.()?.catch(() => {})
  }
}

/** Parses tool call argument text; null when it is not a JSON object. */
export function parseToolArguments(text: string): Record<string, unknown> | null {
  if (text.trim() === '') return {}
  try {
    const value: unknown = JSON.parse(text)
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : null
  } catch {
    return null
  }
}
