/**
 * The local error family. Every failure the platform reports carries a string `code`; callers
 * match on `code`, never on message text. Wire errors (HTTP bodies, JSON-RPC errors) are produced
 * from these by one mapper per surface.
 */
export const errorCodes = {
  bad_request: 400,
  invalid_name: 400,
  invalid_plugin_config: 400,
  invalid_state: 409,
  body_too_large: 413,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  already_exists: 409,
  conflict: 409,
  lease_lost: 409,
  promotion_order: 409,
  compile_failed: 422,
  unsupported_media_type: 415,
  rate_limited: 429,
  store_unavailable: 503,
  /** A function's fetch refused by the egress policy (loopback, link-local, private ranges …). */
  egress_denied: 403,
  /** A function's fetch failed upstream: DNS, connection, bad redirect, oversized response. */
  egress_failed: 502,
  egress_timeout: 504,
  /** The invocation ended (client gone, deadline) while its fetch was in flight. */
  egress_aborted: 499,
  /** An upstream service (LLM provider, Kubernetes, APISIX) failed. */
  upstream_error: 502,
  timeout: 504,
  internal: 500,
} as const

export type ErrorCode = keyof typeof errorCodes

export interface ImprunErrorOptions {
  status?: number
  retryable?: boolean
  details?: Record<string, unknown>
  cause?: unknown
}

export class ImprunError extends Error {
  override readonly name = 'ImprunError'
  readonly code: ErrorCode
  readonly status: number
  readonly retryable: boolean
  readonly details: Record<string, unknown> | undefined

  constructor(code: ErrorCode, message: string, options: ImprunErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.code = code
    this.status = options.status ?? errorCodes[code]
    this.retryable = options.retryable ?? false
    this.details = options.details
  }
}

export function isImprunError(error: unknown, code?: ErrorCode): error is ImprunError {
  return error instanceof ImprunError && (code === undefined || error.code === code)
}

export function notFound(kind: string, id: string): ImprunError {
  return new ImprunError('not_found', `${kind} '${id}' was not found`, { details: { kind, id } })
}

export function alreadyExists(kind: string, id: string): ImprunError {
  return new ImprunError('already_exists', `${kind} '${id}' already exists`, { details: { kind, id } })
}

/** Turns anything thrown into an ImprunError; unknown errors become `internal`. */
export function toImprunError(error: unknown): ImprunError {
  if (error instanceof ImprunError) return error
  const message = error instanceof Error ? error.message : String(error)
  return new ImprunError('internal', message, { cause: error })
}
