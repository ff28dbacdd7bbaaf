/**
 * The adaptor error family: every failure of a `ChatModel` is one of these, whatever SDK or
 * transport produced it. Callers decide on `code`, `retryable` and `retryAfterMs`, never on
 * message text. It is kept apart from `ImprunError` (the platform's own family) the way
 * vercel/ai keeps `APICallError`: the chat gateway maps it to each wire format, keeping the
 * provider's status class and message.
 */
import type { ProviderKind } from './chat-model.ts'

export type ChatModelErrorCode =
  /** 400/404/413/422 from the provider: the request itself is wrong; never retried. */
  | 'invalid_request'
  /** 401/403: the provider key is wrong or lacks access. */
  | 'authentication'
  | 'rate_limited'
  /** 5xx (incl. Anthropic's 529 overloaded). */
  | 'provider_error'
  | 'timeout'
  /** Connection refused/reset, or the stream was cut before its end. */
  | 'network'
  /** The provider answered with something that is not its documented shape. */
  | 'invalid_response'
  | 'cancelled'

export interface ChatModelErrorOptions {
  provider: ProviderKind
  status: number
  retryable?: boolean
  retryAfterMs?: number | null
  cause?: unknown
}

export class ChatModelError extends Error {
  override readonly name = 'ChatModelError'
  readonly code: ChatModelErrorCode
  readonly provider: ProviderKind
  /** The provider's HTTP status, or the status the gateway answers with for transport failures. */
  readonly status: number
  readonly retryable: boolean
  /** From `retry-after-ms` / `retry-after`, when the provider sent one. */
  readonly retryAfterMs: number | null

  constructor(code: ChatModelErrorCode, message: string, options: ChatModelErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.code = code
    this.provider = options.provider
    this.status = options.status
    this.retryable = options.retryable ?? defaultRetryable(code)
    this.retryAfterMs = options.retryAfterMs ?? null
  }
}

export function isChatModelError(error: unknown): error is ChatModelError {
  return error instanceof ChatModelError
}

function defaultRetryable(code: ChatModelErrorCode): boolean {
  return code === 'rate_limited' || code === 'provider_error' || code === 'timeout' || code === 'network' || code === 'invalid_response'
}

/** Maps a provider's HTTP status to an error. */
export function errorFromStatus(provider: ProviderKind, status: number, message: string, headers?: HeadersLike | null, cause?: unknown): ChatModelError {
  const retryAfterMs = headers ? parseRetryAfter(headers) : null
  const options = { provider, status, retryAfterMs, cause }
  if (status === 429) return new ChatModelError('rate_limited', message, options)
  if (status === 401 || status === 403) return new ChatModelError('authentication', message, options)
  if (status === 408) return new ChatModelError('timeout', message, options)
  if (status >= 500) return new ChatModelError('provider_error', message, options)
  return new ChatModelError('invalid_request', message, options)
}

export interface HeadersLike {
  get(name: string): string | null | undefined
}

/**
 * `retry-after-ms` (OpenAI, Anthropic) wins over `retry-after`, which is seconds or an HTTP
 * date. Null when absent or unreadable.
 */
export function parseRetryAfter(headers: HeadersLike, now: number = Date.now()): number | null {
  const milliseconds = headers.get('retry-after-ms')
  if (milliseconds) {
    const value = Number(milliseconds)
    if (Number.isFinite(value) && value >= 0) return value
  }
  const retryAfter = headers.get('retry-after')
  if (!retryAfter) return null
  const seconds = Number(retryAfter)
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000
  const date = Date.parse(retryAfter)
  return Number.isNaN(date) ? null : Math.max(0, date - now)
}

export function cancelledError(provider: ProviderKind, cause?: unknown): ChatModelError {
  return new ChatModelError('cancelled', 'the request was cancelled', { provider, status: 499, cause })
}
