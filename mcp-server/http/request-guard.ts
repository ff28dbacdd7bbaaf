/**
 * Checks every MCP HTTP request makes before a transport sees it: DNS-rebinding protection and
 * credentials. Answers are plain HTTP (403, 401 with WWW-Authenticate) with a JSON-RPC error
 * body, since the caller is an MCP client.
 *
 * DNS rebinding: a browser page on evil.example can resolve its own name to 127.0.0.1 and talk
 * to a local server. So an Origin header must name an allowed host, and a request that arrived
 * on a loopback address must carry a loopback (or configured) Host. A public listener behind a
 * domain checks Origin only, unless that domain is configured.
 */
import type { IncomingHttpHeaders } from 'node:http'
import { isIP } from 'node:net'

export interface HostPolicy {
  /** Extra host names allowed in Host and Origin (e.g. mcp.example.com); loopback names always are. */
  allowedHosts: readonly string[]
}

const loopbackNames = new Set(['localhost', '127.0.0.1', '[::1]', '::1'])

export function hostPolicyFromEnvironment(env: Record<string, string | undefined>): HostPolicy {
  return {
    allowedHosts: (env.IMPRUN_MCP_ALLOWED_HOSTS ?? '')
      .split(',')
      .map((host) => host.trim().toLowerCase())
      .filter(Boolean),
  }
}

/** The reason to refuse a request, or null when its Origin and Host are acceptable. */
export function rebindingViolation(headers: IncomingHttpHeaders, localAddress: string | undefined, policy: HostPolicy): string | null {
  const allowed = (hostname: string) => loopbackNames.has(hostname) || policy.allowedHosts.includes(hostname) || hostname.endsWith('.localhost')
  const origin = headers.origin
  if (origin !== undefined && origin !== 'null') {
    const hostname = hostnameOf(origin)
    if (!hostname || !allowed(hostname)) return `origin '${origin}' is not allowed`
  }
  if (origin === 'null') return "origin 'null' is not allowed"
  if (localAddress && isLoopback(localAddress)) {
    const host = headers.host
    const hostname = host ? hostnameOf(`http://${host}`) : null
    if (!hostname || !allowed(hostname)) return `host '${host ?? ''}' is not allowed on a loopback listener`
  }
  return null
}

function hostnameOf(url: string): string | null {
  try {
    return new URL(url).hostname.toLowerCase()
  } catch {
    return null
  }
}

function isLoopback(address: string): boolean {
  const plain = address.startsWith('::ffff:') ? address.slice(7) : address
  if (isIP(plain) === 4) return plain.startsWith('127.')
  return plain === '::1'
}

/** `Authorization: Bearer <token>`, or for grant keys also `x-api-key`. */
export function presentedCredential(headers: IncomingHttpHeaders, options: { apiKeyHeader: boolean }): string | undefined {
  const authorization = headers.authorization
  if (authorization?.startsWith('Bearer ')) return authorization.slice(7).trim() || undefined
  if (options.apiKeyHeader) {
    const key = headers['x-api-key']
    if (typeof key === 'string' && key.trim()) return key.trim()
  }
  return undefined
}
