/**
 * Calls a model alias reliably: each target of the alias's chain (the model, then its
 * fallbacks) is tried with retries and exponential backoff; `retry-after` is honoured when it is
 * short enough, else the next target is tried at once. Only retryable failures (429, 5xx,
 * timeouts, cut streams) move on; a 4xx is the caller's fault and is thrown as is.
 *
 * A stream counts as started once it has produced content: failures before that are retried
 * like any other, failures after it reach the caller (who has already sent part of an answer).
 */
import type { ResolvedTarget } from '../../control/domain/providers.ts'
import type { ChatModel, ChatRequest, ChatResult, ChatStreamEvent } from '../spec/chat-model.ts'
import { ChatModelError, isChatModelError } from '../spec/chat-model-error.ts'
import { createAnthropicChatModel } from '../anthropic/anthropic-chat-model.ts'
import { createOllamaChatModel } from '../ollama/ollama-chat-model.ts'
import { createOpenAIChatModel } from '../openai/openai-chat-model.ts'

export interface RetryPolicy {
  /** Retries per target after the first attempt (default 2). */
  maxRetries: number
  backoffBaseMs: number
  backoffMaxMs: number
  /** A longer `retry-after` skips to the next target instead of waiting (default 10 s). */
  maxRetryAfterMs: number
}

export const defaultRetryPolicy: RetryPolicy = { maxRetries: 2, backoffBaseMs: 250, backoffMaxMs: 4000, maxRetryAfterMs: 10_000 }

export interface ModelCallerOptions {
  policy?: Partial<RetryPolicy>
  /** Given to every adaptor (tests, proxies). */
  fetch?: typeof fetch
  /** Idle time inside an upstream stream before it counts as cut (default 60 s). */
  idleTimeoutMs?: number
  /** Called for each failed attempt (logging). */
  onAttemptFailed?: (target: ResolvedTarget, error: ChatModelError) => void
}

export interface OpenedStream {
  target: ResolvedTarget
  /** Events already pulled (up to and including the first content event). */
  buffered: ChatStreamEvent[]
  rest: AsyncIterator<ChatStreamEvent>
}

export class ModelCaller {
  private readonly policy: RetryPolicy
  private readonly options: ModelCallerOptions
  private readonly models = new Map<string, ChatModel>()

  constructor(options: ModelCallerOptions = {}) {
    this.options = options
    this.policy = { ...defaultRetryPolicy, ...options.policy }
  }

  /** One adaptor per provider configuration, rebuilt when the provider changes. */
  modelFor(target: ResolvedTarget): ChatModel {
    const { provider } = target
    const key = `${provider.id}@${provider.updatedAt}`
    let model = this.models.get(key)
    if (!model) {
      for (const existing of this.models.keys()) if (existing.startsWith(`${provider.id}@`)) this.models.delete(existing)
      const settings = { baseUrl: provider.baseUrl, apiKey: provider.apiKey ?? undefined, fetch: this.options.fetch, timeoutMs: provider.timeoutMs, idleTimeoutMs: this.options.idleTimeoutMs }
      model = provider.kind === 'openai' ? createOpenAIChatModel(settings) : provider.kind === 'anthropic' ? createAnthropicChatModel(settings) : createOllamaChatModel(settings)
      this.models.set(key, model)
    }
    return model
  }

  async generate(chain: readonly ResolvedTarget[], request: Omit<ChatRequest, 'model'>, signal: AbortSignal): Promise<{ result: ChatResult; target: ResolvedTarget }> {
    return this.withRetries(chain, signal, async (target) => ({
      result: await this.modelFor(target).generate({ ...request, model: target.model, signal }),
      target,
    }))
  }

  async openStream(chain: readonly ResolvedTarget[], request: Omit<ChatRequest, 'model'>, signal: AbortSignal): Promise<OpenedStream> {
    return this.withRetries(chain, signal, async (target) => {
      const iterator = this.modelFor(target).stream({ ...request, model: target.model, signal })[Symbol.asyncIterator]()
      const buffered: ChatStreamEvent[] = []
      try {
        while (true) {
          const step = await iterator.next()
          if (step.done) break
          buffered.push(step.value)
          if (step.value.type !== 'start') break
        }
      } catch (error) {
        void iterator.return?.()?.catch(() => {})
        throw error
      }
      return { target, buffered, rest: iterator }
    })
  }

  private async withRetries<T>(chain: readonly ResolvedTarget[], signal: AbortSignal, attempt: (target: ResolvedTarget) => Promise<T>): Promise<T> {
    let last: ChatModelError | null = null
    for (const target of chain) {
      for (let retry = 0; ; retry++) {
        try {
          return await attempt(target)
        } catch (caught) {
          const error = isChatModelError(caught) ? caught : new ChatModelError('network', caught instanceof Error ? caught.message : String(caught), { provider: target.provider.kind, status: 502, cause: caught })
          if (signal.aborted || !error.retryable) throw error
          last = error
          this.options.onAttemptFailed?.(target, error)
          const wait = error.retryAfterMs ?? Math.min(this.policy.backoffMaxMs, this.policy.backoffBaseMs * 2 ** retry) * (0.5 + Math.random() / 2)
          if (retry >= this.policy.maxRetries || wait > this.policy.maxRetryAfterMs) break
          await sleep(wait, signal)
          if (signal.aborted) throw error
        }
      }
    }
    throw last ?? new ChatModelError('invalid_request', 'no model target to call', { provider: 'openai', status: 404 })
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms)
    function done() {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    signal.addEventListener('abort', done, { once: true })
  })
}
