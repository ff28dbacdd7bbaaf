/**
 * A small client for the admin REST API. Wire errors (`{error: {code, message, details}}`)
 * become CliErrors carrying the server's code; network failures become one clear message that
 * names the URL.
 */
import { CliError } from './cli-error.ts'

export interface AdminClientOptions {
  /** Base URL of the server, e.g. http://127.0.0.1:8080 (no /admin). */
  url: string
  token: string | undefined
  fetch: typeof fetch
  /** Per request; publishing compiles, so this is generous. */
  timeoutMs?: number
}

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'

export type QueryValues = Record<string, string | number | undefined>

/**
 * Builds an admin path with every interpolated value URL-encoded: function names contain `/`,
 * which must reach the server as `%2F` inside one path parameter.
 */
export function adminPath(strings: TemplateStringsArray, ...values: Array<string | number>): string {
  return strings.reduce((path, text, index) => path + text + (index < values.length ? encodeURIComponent(String(values[index])) : ''), '')
}

export class AdminClient {
  readonly url: string
  private readonly token: string | undefined
  private readonly fetch: typeof fetch
  private readonly timeoutMs: number

  constructor(options: AdminClientOptions) {
    this.url = options.url.replace(/\/+$/, '')
    this.token = options.token
    this.fetch = options.fetch
    this.timeoutMs = options.timeoutMs ?? 120_000
  }

  get<T>(path: string, query?: QueryValues): Promise<T> {
    return this.request<T>('GET', withQuery(path, query))
  }

  post<T>(path: string, body?: unknown): Promise<T> {
    return this.request<T>('POST', path, body)
  }

  put<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('PUT', path, body)
  }

  patch<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('PATCH', path, body)
  }

  delete<T>(path: string): Promise<T> {
    return this.request<T>('DELETE', path)
  }

  async request<T>(method: HttpMethod, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json' }
    if (this.token) headers.authorization = `Bearer ${this.token}`
    if (body !== undefined) headers['content-type'] = 'application/json'
    let response: Response
    try {
      response = await this.fetch(`${this.url}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.timeoutMs),
      })
    } catch (error) {
      throw this.networkError(error)
    }
    const text = await response.text()
    let parsed: unknown = undefined
    if (text.length > 0) {
      try {
        parsed = JSON.parse(text)
      } catch {
        throw new CliError('bad_response', `${method} ${this.url}${path} answered ${response.status} with a body that is not JSON; is ${this.url} an imprun server?`)
      }
    }
    if (!response.ok) throw wireError(response.status, parsed, this.url)
    return (parsed ?? {}) as T
  }

  /**
   * Follows a server-sent event stream (`GET` with `follow`), yielding each event's data parsed
   * as JSON, until the server ends it or `signal` aborts.
   */
  async *events<T>(path: string, query: QueryValues | undefined, signal: AbortSignal): AsyncGenerator<T> {
    const headers: Record<string, string> = { accept: 'text/event-stream' }
    if (this.token) headers.authorization = `Bearer ${this.token}`
    let response: Response
    try {
      response = await this.fetch(`${this.url}${withQuery(path, query)}`, { headers, signal })
    } catch (error) {
      if (signal.aborted) return
      throw this.networkError(error)
    }
    if (!response.ok || !response.body) {
      const text = await response.text()
      let parsed: unknown
      try {
        parsed = JSON.parse(text)
      } catch {
        parsed = undefined
      }
      throw wireError(response.status, parsed, this.url)
    }
    const decoder = new TextDecoder()
    let buffer = ''
    try {
      for await (const chunk of response.body) {
        buffer += decoder.decode(chunk as Uint8Array, { stream: true })
        let end: number
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end)
          buffer = buffer.slice(end + 2)
          const data = block
            .split('\n')
            .filter((line) => line.startsWith('data:'))
            .map((line) => line.slice(5).trimStart())
            .join('\n')
          if (data) yield JSON.parse(data) as T
        }
      }
    } catch (error) {
      if (signal.aborted) return
      throw this.networkError(error)
    }
  }

  private networkError(error: unknown): CliError {
    const code = errorCode(error)
    if (code === 'TimeoutError') {
      return new CliError('timeout', `${this.url} did not answer within ${Math.round(this.timeoutMs / 1000)} s`, { cause: error })
    }
    if (code === 'ECONNREFUSED') {
      return new CliError('unreachable', `cannot connect to ${this.url}: connection refused`, {
        cause: error,
        hints: ['is imprun running? Start it with `imprun start`, or point --url / IMPRUN_URL at the server'],
      })
    }
    const reason = code ?? (error instanceof Error ? error.message : String(error))
    return new CliError('unreachable', `cannot reach ${this.url}: ${reason}`, {
      cause: error,
      hints: ['check --url / IMPRUN_URL; start a local server with `imprun start`'],
    })
  }
}

function withQuery(path: string, query: QueryValues | undefined): string {
  const search = new URLSearchParams()
  for (const [name, value] of Object.entries(query ?? {})) {
    if (value !== undefined) search.set(name, String(value))
  }
  const text = search.toString()
  return text ? `${path}?${text}` : path
}

function wireError(status: number, body: unknown, url: string): CliError {
  const error = (body as { error?: { code?: unknown; message?: unknown; details?: unknown } } | undefined)?.error
  if (error && typeof error.code === 'string' && typeof error.message === 'string') {
    const details = typeof error.details === 'object' && error.details !== null ? (error.details as Record<string, unknown>) : undefined
    return new CliError(error.code, error.message, { details })
  }
  return new CliError('bad_response', `${url} answered HTTP ${status} without an imprun error body`)
}

/**
 * fetch reports a refused connection as `TypeError: fetch failed` whose cause (or, when both
 * IPv4 and IPv6 were tried, the cause's errors) carries the system error code.
 */
function errorCode(error: unknown): string | undefined {
  const seen = new Set<unknown>()
  const queue: unknown[] = [error]
  while (queue.length > 0) {
    const current = queue.shift()
    if (!current || typeof current !== 'object' || seen.has(current)) continue
    seen.add(current)
    const candidate = current as { name?: unknown; code?: unknown; cause?: unknown; errors?: unknown }
    if (candidate.name === 'TimeoutError') return 'TimeoutError'
    if (typeof candidate.code === 'string' && /^E[A-Z]+$/.test(candidate.code)) return candidate.code
    queue.push(candidate.cause)
    if (Array.isArray(candidate.errors)) queue.push(...candidate.errors)
  }
  return undefined
}
