/**
 * The request and response shapes the edge plugin chain works on. They are framework-free on
 * purpose: the embedded data plane (fastify) translates its request into an `EdgeRequest`, runs
 * the chain, and either sends the `ShortCircuit` or invokes the function with the (possibly
 * rewritten) request and adds the chain's response headers to the function's response.
 */
import type { ErrorCode } from '../../control/errors.ts'

/** Query parameters as the framework hands them over: URLSearchParams, or a parsed record. */
export type EdgeQuery = URLSearchParams | Readonly<Record<string, string | readonly string[] | undefined>>

export interface EdgeRequest {
  /** Upper-case HTTP method. */
  method: string
  /** Path without the query string. */
  path: string
  /** Request headers with lower-case names; repeated headers joined as the framework does. */
  headers: Readonly<Record<string, string>>
  query: EdgeQuery
  /** The peer address; IPv4-mapped IPv6 (`::ffff:1.2.3.4`) is treated as the IPv4 address. */
  clientIp: string
}

/** Our wire error shape, the same the admin API answers with. */
export interface EdgeErrorBody {
  error: { code: ErrorCode; message: string }
}

/**
 * A response the chain answers with itself; the function is not invoked. `body` is our error
 * body (send as JSON), a string (send as is; `content-type` is in `headers`), or null (no body,
 * e.g. a CORS preflight). `headers` has lower-case names and already holds every header the
 * chain set before it stopped (CORS, rate-limit quota).
 */
export interface ShortCircuit {
  status: number
  headers: Record<string, string>
  body: EdgeErrorBody | string | null
}

/** What `verifyKey` returns for a valid key. */
export interface VerifiedConsumer {
  /** The consumer's name: becomes `consumer_name` for rate-limit keys and `x-consumer-username`. */
  consumer: string
  /** Sent on as `x-credential-identifier` when given (APISIX sends the credential id). */
  credentialId?: string
}

/** Checks an API key; resolves null for any key that is not valid here (never says why). */
export type VerifyKey = (key: string) => Promise<VerifiedConsumer | null>

/**
 * The mutable state one request carries through the chain. Plugins replace `request` (never
 * mutate it: the caller's object stays as given), add response headers, set the consumer.
 */
export interface EdgeContext {
  request: EdgeRequest
  /** `clientIp` normalised (IPv4-mapped IPv6 unmapped): nginx's `remote_addr`. */
  readonly remoteAddr: string
  consumer: string | undefined
  /** Response headers (lower-case names) for whatever response the request ends with. */
  readonly responseHeaders: Record<string, string>
  /** Milliseconds the caller waits before invoking the function (limit-req without nodelay). */
  delayMs: number
}

/**
 * APISIX runs every plugin's `rewrite` handler (by priority, highest first), then every
 * plugin's `access` handler. A plugin returns a ShortCircuit to end the request there.
 */
export type EdgePhase = 'rewrite' | 'access'

export interface EdgePlugin {
  readonly name: string
  readonly phase: EdgePhase
  /** APISIX's plugin priority (or the conf's `_meta.priority`). */
  readonly priority: number
  run(context: EdgeContext): ShortCircuit | undefined | Promise<ShortCircuit | undefined>
}

export function errorResponse(status: number, code: ErrorCode, message: string, headers: Record<string, string> = {}): ShortCircuit {
  return { status, headers, body: { error: { code, message } } }
}
