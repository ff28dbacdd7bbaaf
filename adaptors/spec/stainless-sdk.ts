/**
 * What the two official SDKs built on the same generator (`openai`, `@anthropic-ai/sdk`) share:
 * their client options and their error classes. Each adaptor passes its own package's classes;
 * the mapping to ChatModelError is the same.
 */
import type { ChatModelSettings, ProviderKind } from './chat-model.ts'
import { cancelledError, ChatModelError, errorFromStatus, isChatModelError, type HeadersLike } from './chat-model-error.ts'

/** Client options from our settings; the SDK's own retries are off (the gateway retries). */
export function sdkClientOptions(settings: ChatModelSettings, defaultBaseUrl: string) {
  return {
    apiKey: settings.apiKey ?? 'not-set',
    baseURL: settings.baseUrl ?? defaultBaseUrl,
    fetch: settings.fetch,
    timeout: settings.timeoutMs ?? 60_000,
    maxRetries: 0,
    defaultHeaders: settings.headers,
  }
}

type ErrorClass = abstract new (...args: never[]) => Error

export interface SdkErrorClasses {
  APIError: abstract new (...args: never[]) => Error & { status: number | undefined; error: unknown; headers: HeadersLike | undefined }
  APIConnectionError: ErrorClass
  APIConnectionTimeoutError: ErrorClass
  APIUserAbortError: ErrorClass
}

/**
 * Maps whatever a call through the SDK threw. `providerMessage` reads the provider's own message
 * out of an error body (each API nests it differently).
 */
export function sdkChatModelError(provider: ProviderKind, error: unknown, classes: SdkErrorClasses, providerMessage: (body: unknown) => unknown): ChatModelError {
  if (isChatModelError(error)) return error
  if (error instanceof classes.APIUserAbortError) return cancelledError(provider, error)
  if (error instanceof classes.APIConnectionTimeoutError) return new ChatModelError('timeout', `${provider} did not answer in time`, { provider, status: 504, cause: error })
  if (error instanceof classes.APIConnectionError) return new ChatModelError('network', `cannot reach ${provider}: ${error.message}`, { provider, status: 502, cause: error })
  if (error instanceof classes.APIError) {
    const bodyMessage = providerMessage(error.error)
    const message = typeof bodyMessage === 'string' ? bodyMessage : error.message
    // An error event inside a stream has no status.
    if (error.status === undefined) return new ChatModelError('provider_error', message, { provider, status: 502, cause: error })
    return errorFromStatus(provider, error.status, message, error.headers, error)
  }
  if (error instanceof SyntaxError) return new ChatModelError('invalid_response', `${provider} sent malformed data: ${error.message}`, { provider, status: 502, cause: error })
  const message = error instanceof Error ? error.message : String(error)
  return new ChatModelError('network', `${provider} request failed: ${message}`, { provider, status: 502, cause: error })
}
