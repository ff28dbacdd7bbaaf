/**
 * The host side of `fetch` for sandboxed user functions. The sandbox forwards each call as plain
 * JSON ({@link EgressRequest}); this module decides whether the target may be reached, connects to
 * the address it checked (never resolving the name a second time, so DNS rebinding between check
 * and connect is impossible), follows redirects itself re-checking every hop, and returns the
 * response as JSON ({@link EgressResponse}) under size, time and concurrency limits.
 *
 * Policy (every hop, redirects included):
 * - only `http:` and `https:`; no user name or password in the URL; the fetch standard's "bad
 *   ports" (25, 22, 6667, …) are refused unless `allowedPorts` is given, which then lists every
 *   port allowed;
 * - the host name is resolved once (all addresses) and the request is refused when ANY address is
 *   not public: loopback, unspecified, link-local (cloud metadata 169.254.169.254), private,
 *   carrier-grade NAT, multicast, reserved, documentation, benchmarking; IPv4-mapped and NAT64
 *   (64:ff9b::/96) IPv6 addresses are judged by the IPv4 address they carry. `localhost` and
 *   `*.localhost` are loopback without asking DNS. Literal IPs in any spelling the URL parser
 *   accepts (2130706433, 0x7f.1, [::ffff:7f00:1]) are normalized by it and checked the same way;
 * - `denyHosts` (names or CIDRs) always wins; `allowHosts` lets an operator reach a named host
 *   (whatever it resolves to) or an address range; `allowPrivate` lets through the private-use
 *   ranges (10/8, 172.16/12, 192.168/16, fc00::/7, 100.64/10) but never loopback or link-local,
 *   which need an explicit `allowHosts` entry.
 *
 * Failures are ImprunErrors whose `details.reason` says what happened (see {@link EgressFailure});
 * the sandbox bridge maps them to the TypeError / AbortError that `fetch` throws.
 */
import { lookup as dnsLookup } from 'node:dns/promises'
import { request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http'
import { BlockList, connect as netConnect, isIP, type Socket } from 'node:net'
import { Transform, type TransformCallback } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { connect as tlsConnect } from 'node:tls'
import { constants as zlibConstants, createBrotliDecompress, createGunzip, createInflate } from 'node:zlib'
import { z } from 'zod'
import { ImprunError, type ErrorCode } from '../../control/errors.ts'

const mebibyte = 1024 * 1024
const headerName = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
const headerValue = /^[\t\x20-\x7e\x80-\xff]*$/
const base64 = /^[A-Za-z0-9+/]*={0,2}$/

/** One `fetch` call as the sandbox forwards it. Exactly one of `body` (UTF-8) / `bodyBase64`. */
export const egressRequestSchema = z.strictObject({
  url: z.string().max(16_384),
  method: z.string().regex(headerName).max(32).optional(),
  headers: z
    .union([
      z.array(z.tuple([z.string().regex(headerName).max(256), z.string().regex(headerValue).max(16_384)])).max(256),
      z.record(z.string().regex(headerName).max(256), z.string().regex(headerValue).max(16_384)),
    ])
    .optional(),
  body: z.string().optional(),
  bodyBase64: z.string().regex(base64).optional(),
  redirect: z.enum(['follow', 'manual', 'error']).optional(),
})

export type EgressRequest = z.infer<typeof egressRequestSchema>

/**
 * The response as JSON. `body` holds the text when the content type is textual (text/*, JSON,
 * XML, JavaScript, form data, or no content type at all) and the bytes are valid UTF-8; otherwise
 * `bodyBase64` holds the bytes. Either way the bytes are exact (content-encoding already decoded,
 * like `fetch`; the headers are passed on as received, names lower-cased, duplicates kept).
 */
export type EgressResponse = {
  /** The final URL, after redirects. */
  url: string
  redirected: boolean
  status: number
  statusText: string
  headers: Array<[string, string]>
} & ({ body: string; bodyBase64?: undefined } | { body?: undefined; bodyBase64: string })

export type EgressFetch = (request: EgressRequest, options?: { signal?: AbortSignal }) => Promise<EgressResponse>

export interface LookupAddress {
  address: string
  family: number
}

/** Resolves a host name to all its addresses (the default is `dns.lookup` with `all: true`). */
export type EgressLookup = (hostname: string) => Promise<readonly LookupAddress[]>

export interface EgressConnectEvent {
  url: string
  hostname: string
  address: string
  port: number
}

export interface EgressPolicyOptions {
  /** Allow the private-use ranges (10/8, 172.16/12, 192.168/16, fc00::/7, 100.64/10). Default false. */
  allowPrivate?: boolean
  /** Exact host names, addresses or CIDRs reachable even when not public (operators' internal services). */
  allowHosts?: readonly string[]
  /** Exact host names, addresses or CIDRs never reachable; wins over `allowHosts`. */
  denyHosts?: readonly string[]
  /** When given, the only ports allowed; otherwise every port but the fetch standard's bad ports. */
  allowedPorts?: readonly number[]
}

export interface EgressFetchOptions extends EgressPolicyOptions {
  /** Whole request, redirects and body included, from the moment it gets a slot. Default 10 s. */
  timeoutMs?: number
  /** Default 1 MiB. */
  maxRequestBytes?: number
  /** Decoded response body. Default 5 MiB. */
  maxResponseBytes?: number
  /** Default 5. */
  maxRedirects?: number
  /** Fetches running at once per caller signal (one signal per invocation). Default 10. */
  maxConcurrent?: number
  /** Fetches waiting for a slot per caller signal before new ones are refused. Default 50. */
  maxQueued?: number
  lookup?: EgressLookup
  /** Called just before each connection is opened, with the checked address (egress audit). */
  onConnect?: (event: EgressConnectEvent) => void
}

/** `details.reason` of every error this module throws. */
export type EgressFailure =
  | 'invalid_request'
  | 'denied'
  | 'request_too_large'
  | 'response_too_large'
  | 'dns_failed'
  | 'connect_failed'
  | 'invalid_redirect'
  | 'too_many_redirects'
  | 'redirect_not_allowed'
  | 'too_many_fetches'
  | 'timeout'
  | 'aborted'

const failureCodes: Record<EgressFailure, { code: ErrorCode; status?: number; retryable?: boolean }> = {
  invalid_request: { code: 'bad_request' },
  denied: { code: 'egress_denied' },
  request_too_large: { code: 'body_too_large' },
  response_too_large: { code: 'egress_failed' },
  dns_failed: { code: 'egress_failed', retryable: true },
  connect_failed: { code: 'egress_failed', retryable: true },
  invalid_redirect: { code: 'egress_failed' },
  too_many_redirects: { code: 'egress_failed' },
  redirect_not_allowed: { code: 'egress_failed' },
  too_many_fetches: { code: 'rate_limited', retryable: true },
  timeout: { code: 'egress_timeout', retryable: true },
  aborted: { code: 'egress_aborted' },
}

function egressError(
  reason: EgressFailure,
  message: string,
  details: Record<string, unknown> = {},
  cause?: unknown,
): ImprunError {
  const { code, status, retryable } = failureCodes[reason]
  return new ImprunError(code, message, { status, retryable, details: { reason, ...details }, cause })
}

// ---------------------------------------------------------------------------------------------
// Addresses

export type AddressCategory =
  | 'loopback'
  | 'unspecified'
  | 'link-local'
  | 'private'
  | 'carrier-grade NAT'
  | 'multicast'
  | 'reserved'
  | 'documentation'
  | 'benchmarking'

const privateUse = new Set<AddressCategory>(['private', 'carrier-grade NAT'])

function blockList(subnets: ReadonlyArray<readonly [string, number]>): BlockList {
  const list = new BlockList()
  for (const [network, prefix] of subnets) list.addSubnet(network, prefix, isIP(network) === 6 ? 'ipv6' : 'ipv4')
  return list
}

// IANA special-purpose registries; order matters only where ranges nest (first match names it).
const ipv4Categories: ReadonlyArray<readonly [AddressCategory, BlockList]> = [
  ['unspecified', blockList([['0.0.0.0', 8]])],
  ['loopback', blockList([['127.0.0.0', 8]])],
  ['link-local', blockList([['169.254.0.0', 16]])],
  ['private', blockList([['10.0.0.0', 8], ['172.16.0.0', 12], ['192.168.0.0', 16]])],
  ['carrier-grade NAT', blockList([['100.64.0.0', 10]])],
  ['documentation', blockList([['192.0.2.0', 24], ['198.51.100.0', 24], ['203.0.113.0', 24]])],
  ['benchmarking', blockList([['198.18.0.0', 15]])],
  ['multicast', blockList([['224.0.0.0', 4]])],
  ['reserved', blockList([['192.0.0.0', 24], ['192.88.99.0', 24], ['240.0.0.0', 4]])],
]

const ipv6Categories: ReadonlyArray<readonly [AddressCategory, BlockList]> = [
  ['unspecified', blockList([['::', 128]])],
  ['loopback', blockList([['::1', 128]])],
  ['link-local', blockList([['fe80::', 10]])],
  ['private', blockList([['fc00::', 7], ['fec0::', 10], ['64:ff9b:1::', 48]])],
  ['multicast', blockList([['ff00::', 8]])],
  ['documentation', blockList([['2001:db8::', 32], ['3fff::', 20]])],
  // IETF protocol assignments (Teredo, ORCHID, benchmarking), 6to4, SRv6 SIDs, discard-only.
  ['reserved', blockList([['2001::', 23], ['2002::', 16], ['5f00::', 16], ['100::', 64]])],
]

const globalUnicast = blockList([['2000::', 3]])

/** 16-bit groups of a valid IPv6 address (no zone). */
function ipv6Groups(address: string): number[] {
  let text = address
  const lastColon = text.lastIndexOf(':')
  const tail = text.slice(lastColon + 1)
  if (tail.includes('.')) {
    const [a = 0, b = 0, c = 0, d = 0] = tail.split('.').map(Number)
    text = `${text.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`
  }
  const [head = '', rest] = text.split('::')
  const parse = (part: string) => (part === '' ? [] : part.split(':').map((group) => Number.parseInt(group, 16)))
  const before = parse(head)
  const after = rest === undefined ? [] : parse(rest)
  return [...before, ...new Array<number>(8 - before.length - after.length).fill(0), ...after]
}

/** The IPv4 address carried by an IPv4-mapped (::ffff:0:0/96) or NAT64 (64:ff9b::/96) address. */
function embeddedIpv4(address: string): string | undefined {
  const groups = ipv6Groups(address)
  const [g0, g1, g2, g3, g4, g5, g6 = 0, g7 = 0] = groups
  const mapped = g0 === 0 && g1 === 0 && g2 === 0 && g3 === 0 && g4 === 0 && g5 === 0xffff
  const nat64 = g0 === 0x64 && g1 === 0xff9b && g2 === 0 && g3 === 0 && g4 === 0 && g5 === 0
  if (!mapped && !nat64) return undefined
  return `${g6 >> 8}.${g6 & 0xff}.${g7 >> 8}.${g7 & 0xff}`
}

function withoutZone(address: string): string {
  const zone = address.indexOf('%')
  return zone === -1 ? address : address.slice(0, zone)
}

/** The special-purpose range an IP address falls in, or undefined for a public address. */
export function classifyAddress(address: string): AddressCategory | undefined {
  const plain = withoutZone(address)
  const family = isIP(plain)
  if (family === 4) return ipv4Categories.find(([, list]) => list.check(plain, 'ipv4'))?.[0]
  if (family !== 6) throw new TypeError(`not an IP address: ${address}`)
  const carried = embeddedIpv4(plain)
  if (carried !== undefined) return classifyAddress(carried)
  const category = ipv6Categories.find(([, list]) => list.check(plain, 'ipv6'))?.[0]
  if (category !== undefined) return category
  return globalUnicast.check(plain, 'ipv6') ? undefined : 'reserved'
}

// ---------------------------------------------------------------------------------------------
// Policy

interface HostList {
  names: Set<string>
  addresses: BlockList
}

function normalizeHostname(hostname: string): string {
  const lower = hostname.toLowerCase()
  const bare = lower.startsWith('[') && lower.endsWith(']') ? lower.slice(1, -1) : lower
  return bare.endsWith('.') ? bare.slice(0, -1) : bare
}

function hostList(entries: readonly string[] | undefined, option: string): HostList {
  const list: HostList = { names: new Set(), addresses: new BlockList() }
  for (const entry of entries ?? []) {
    const [rawNetwork = '', prefixText, extra] = entry.trim().split('/')
    const network = normalizeHostname(rawNetwork)
    const family = isIP(network)
    const invalid = () => new ImprunError('bad_request', `${option}: '${entry}' is not a host name, an address or a CIDR`)
    if (extra !== undefined) throw invalid()
    if (family === 0) {
      if (prefixText !== undefined || !/^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/.test(network)) throw invalid()
      list.names.add(network)
      continue
    }
    const max = family === 4 ? 32 : 128
    const prefix = prefixText === undefined ? max : Number(prefixText)
    if (!/^\d+$/.test(prefixText ?? String(max)) || prefix > max) throw invalid()
    list.addresses.addSubnet(network, prefix, family === 4 ? 'ipv4' : 'ipv6')
  }
  return list
}

function inList(list: HostList, hostname: string, address?: string): boolean {
  if (list.names.has(hostname)) return true
  if (address === undefined) return false
  const plain = withoutZone(address)
  const candidates = [plain]
  if (isIP(plain) === 6) {
    const carried = embeddedIpv4(plain)
    if (carried !== undefined) candidates.push(carried)
  }
  return candidates.some((candidate) => list.addresses.check(candidate, isIP(candidate) === 6 ? 'ipv6' : 'ipv4'))
}

/** Fetch standard, "bad port". */
const badPorts = new Set([
  0, 1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79, 87, 95, 101, 102, 103, 104, 109,
  110, 111, 113, 115, 117, 119, 123, 135, 137, 139, 143, 161, 179, 389, 427, 465, 512, 513, 514, 515, 526, 530, 531,
  532, 540, 548, 554, 556, 563, 587, 601, 636, 989, 990, 993, 995, 1719, 1720, 1723, 2049, 3659, 4045, 4190, 5060,
  5061, 6000, 6566, 6665, 6666, 6667, 6668, 6669, 6679, 6697, 10080,
])

export interface EgressPolicy {
  /** Throws unless the URL's scheme, credentials, port and host name are acceptable. */
  checkUrl(url: URL): void
  /** Whether the host name is named in `allowHosts` (its addresses are then not range-checked). */
  isAllowedName(hostname: string): boolean
  /** Throws unless every address is allowed for this host name. */
  checkAddresses(hostname: string, addresses: readonly string[]): void
}

export function createEgressPolicy(options: EgressPolicyOptions = {}): EgressPolicy {
  const allow = hostList(options.allowHosts, 'allowHosts')
  const deny = hostList(options.denyHosts, 'denyHosts')
  const allowedPorts = options.allowedPorts === undefined ? undefined : new Set(options.allowedPorts)
  const denied = (message: string, details: Record<string, unknown>) => egressError('denied', message, details)

  return {
    checkUrl(url) {
      if (url.protocol !== 'http:' && url.protocol !== 'https:') {
        throw denied(`egress with ${url.protocol} URLs is not allowed (only http: and https:)`, { protocol: url.protocol })
      }
      if (url.username !== '' || url.password !== '') {
        throw egressError('invalid_request', 'URLs with credentials are not allowed: send an Authorization header')
      }
      const port = url.port === '' ? (url.protocol === 'https:' ? 443 : 80) : Number(url.port)
      if (allowedPorts === undefined ? badPorts.has(port) : !allowedPorts.has(port)) {
        throw denied(`egress to port ${port} is not allowed`, { port })
      }
      const hostname = normalizeHostname(url.hostname)
      if (inList(deny, hostname)) throw denied(`egress to ${hostname} is denied by policy`, { hostname })
    },
    isAllowedName(hostname) {
      return allow.names.has(normalizeHostname(hostname))
    },
    checkAddresses(rawHostname, addresses) {
      const hostname = normalizeHostname(rawHostname)
      // "egress to 127.0.0.1 (loopback)", "egress to api.test (10.0.0.5, private)"
      const target = (address: string, category?: string) => {
        const about = [address === hostname ? undefined : address, category].filter((part) => part !== undefined)
        return about.length === 0 ? hostname : `${hostname} (${about.join(', ')})`
      }
      for (const address of addresses) {
        if (inList(deny, hostname, address)) {
          throw denied(`egress to ${target(address)} is denied by policy`, { hostname, address })
        }
        if (inList(allow, hostname, address)) continue
        const category = classifyAddress(address)
        if (category === undefined || (options.allowPrivate === true && privateUse.has(category))) continue
        throw denied(`egress to ${target(address, category)} is not allowed`, { hostname, address, category })
      }
    },
  }
}

// ---------------------------------------------------------------------------------------------
// Concurrency: slots per caller signal (one signal per invocation)

interface Slots {
  active: number
  waiting: Array<() => void>
}

async function acquireSlot(slots: Slots, max: number, maxQueued: number, signal: AbortSignal | undefined) {
  if (slots.active >= max) {
    if (slots.waiting.length >= maxQueued) {
      throw egressError('too_many_fetches', `too many fetches at once (${max} running, ${maxQueued} waiting)`)
    }
    await new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        slots.waiting.splice(slots.waiting.indexOf(wake), 1)
        reject(egressError('aborted', 'fetch was aborted', {}, signal?.reason))
      }
      const wake = () => {
        signal?.removeEventListener('abort', onAbort)
        resolve()
      }
      slots.waiting.push(wake)
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  } else {
    slots.active += 1
  }
  let released = false
  return () => {
    if (released) return
    released = true
    const next = slots.waiting.shift()
    if (next === undefined) slots.active -= 1
    else next() // the slot passes to the next waiter
  }
}

// ---------------------------------------------------------------------------------------------
// The fetch

const droppedRequestHeaders = new Set([
  'host', 'connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'transfer-encoding', 'te',
  'trailer', 'upgrade', 'content-length', 'expect', 'http2-settings',
])
const bodyHeaders = ['content-type', 'content-encoding', 'content-language', 'content-location']
const crossOriginHeaders = ['authorization', 'cookie', 'proxy-authorization']
const redirectStatuses = new Set([301, 302, 303, 307, 308])

interface Hop {
  url: URL
  method: string
  headers: Array<[string, string]>
  body: Buffer | undefined
}

interface Target {
  hostname: string
  addresses: string[]
  port: number
}

export function createEgressFetch(options: EgressFetchOptions = {}): EgressFetch {
  const policy = createEgressPolicy(options)
  const timeoutMs = options.timeoutMs ?? 10_000
  const maxRequestBytes = options.maxRequestBytes ?? mebibyte
  const maxResponseBytes = options.maxResponseBytes ?? 5 * mebibyte
  const maxRedirects = options.maxRedirects ?? 5
  const maxConcurrent = options.maxConcurrent ?? 10
  const maxQueued = options.maxQueued ?? 50
  const lookup: EgressLookup = options.lookup ?? ((hostname) => dnsLookup(hostname, { all: true, order: 'verbatim' }))
  const slotsBySignal = new WeakMap<AbortSignal, Slots>()
  const unscoped: Slots = { active: 0, waiting: [] }

  async function resolve(url: URL, signal: AbortSignal): Promise<Target> {
    policy.checkUrl(url)
    const hostname = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname
    const port = url.port === '' ? (url.protocol === 'https:' ? 443 : 80) : Number(url.port)
    let addresses: string[]
    const bare = normalizeHostname(hostname)
    if (isIP(hostname) !== 0) {
      addresses = [hostname]
    } else if ((bare === 'localhost' || bare.endsWith('.localhost')) && !policy.isAllowedName(bare)) {
      addresses = ['127.0.0.1', '::1'] // RFC 6761: never asked of DNS
    } else {
      let found: readonly LookupAddress[]
      try {
        found = await abortable(lookup(hostname), signal)
      } catch (error) {
        if (signal.aborted) throw error
        throw egressError('dns_failed', `could not resolve ${hostname}`, { hostname }, error)
      }
      addresses = found.map((entry) => withoutZone(entry.address))
      if (addresses.length === 0 || addresses.some((address) => isIP(address) === 0)) {
        throw egressError('dns_failed', `could not resolve ${hostname}`, { hostname })
      }
    }
    policy.checkAddresses(hostname, addresses)
    return { hostname, addresses, port }
  }

  async function connect(url: URL, target: Target, signal: AbortSignal): Promise<Socket> {
    let lastError: unknown
    for (const address of target.addresses) {
      options.onConnect?.({ url: url.href, hostname: target.hostname, address, port: target.port })
      try {
        return await openSocket(url.protocol === 'https:', target, address, signal)
      } catch (error) {
        if (signal.aborted) throw error
        lastError = error
      }
    }
    const reason = lastError instanceof Error ? `: ${lastError.message}` : ''
    throw egressError('connect_failed', `could not connect to ${url.host}${reason}`, { hostname: target.hostname }, lastError)
  }

  async function send(hop: Hop, signal: AbortSignal): Promise<IncomingMessage> {
    const target = await resolve(hop.url, signal)
    const socket = await connect(hop.url, target, signal)
    const headers: OutgoingHttpHeaders = { host: hop.url.host }
    for (const [name, value] of hop.headers) {
      const existing = headers[name]
      headers[name] = existing === undefined ? value : ([] as string[]).concat(existing as string | string[], value)
    }
    if (hop.body !== undefined) headers['content-length'] = String(hop.body.length)
    try {
      return await new Promise<IncomingMessage>((resolvePromise, reject) => {
        const request = httpRequest({
          method: hop.method,
          path: `${hop.url.pathname}${hop.url.search}`,
          headers,
          setHost: false,
          createConnection: () => socket,
          signal,
        })
        request.once('response', resolvePromise)
        request.once('error', reject)
        request.end(hop.body)
      })
    } catch (error) {
      socket.destroy()
      if (signal.aborted) throw signal.reason
      const message = error instanceof Error ? error.message : String(error)
      throw egressError('connect_failed', `request to ${hop.url.host} failed: ${message}`, {}, error)
    }
  }

  async function run(request: EgressRequest, signal: AbortSignal): Promise<EgressResponse> {
    let hop = firstHop(request, maxRequestBytes)
    const mode = request.redirect ?? 'follow'
    for (let redirects = 0; ; redirects += 1) {
      const response = await send(hop, signal)
      const status = response.statusCode ?? 0
      const location = response.headers.location
      if (mode !== 'manual' && redirectStatuses.has(status) && location !== undefined) {
        response.destroy()
        if (mode === 'error') throw egressError('redirect_not_allowed', `${hop.url.href} redirected and redirect is 'error'`)
        if (redirects >= maxRedirects) {
          throw egressError('too_many_redirects', `more than ${maxRedirects} redirects from ${request.url}`)
        }
        hop = nextHop(hop, status, location)
        continue
      }
      try {
        const body = await readBody(response, hop.method, maxResponseBytes)
        const headers: Array<[string, string]> = []
        for (let index = 0; index + 1 < response.rawHeaders.length; index += 2) {
          headers.push([(response.rawHeaders[index] ?? '').toLowerCase(), response.rawHeaders[index + 1] ?? ''])
        }
        const common = {
          url: hop.url.href,
          redirected: redirects > 0,
          status,
          statusText: response.statusMessage ?? '',
          headers,
        }
        const text = textBody(response.headers['content-type'], body)
        return text === undefined ? { ...common, bodyBase64: body.toString('base64') } : { ...common, body: text }
      } finally {
        response.destroy()
      }
    }
  }

  return async function egressFetch(input, fetchOptions = {}) {
    const parsed = egressRequestSchema.safeParse(input)
    if (!parsed.success) {
      throw egressError('invalid_request', `invalid fetch request: ${z.prettifyError(parsed.error)}`)
    }
    const callerSignal = fetchOptions.signal
    if (callerSignal?.aborted) throw egressError('aborted', 'fetch was aborted', {}, callerSignal.reason)
    let slots = unscoped
    if (callerSignal !== undefined) {
      slots = slotsBySignal.get(callerSignal) ?? { active: 0, waiting: [] }
      slotsBySignal.set(callerSignal, slots)
    }
    const release = await acquireSlot(slots, maxConcurrent, maxQueued, callerSignal)
    if (callerSignal?.aborted) {
      release()
      throw egressError('aborted', 'fetch was aborted', {}, callerSignal.reason)
    }
    const controller = new AbortController()
    const timeout = egressError('timeout', `fetch of ${parsed.data.url} timed out after ${timeoutMs} ms`)
    const aborted = egressError('aborted', 'fetch was aborted', {}, callerSignal?.reason)
    const timer = setTimeout(() => controller.abort(timeout), timeoutMs)
    const onCallerAbort = () => controller.abort(aborted)
    callerSignal?.addEventListener('abort', onCallerAbort, { once: true })
    try {
      return await run(parsed.data, controller.signal)
    } catch (error) {
      if (controller.signal.aborted) throw controller.signal.reason
      throw error
    } finally {
      clearTimeout(timer)
      callerSignal?.removeEventListener('abort', onCallerAbort)
      release()
    }
  }
}

function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason)
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason)
    signal.addEventListener('abort', onAbort, { once: true })
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort))
  })
}

function openSocket(secure: boolean, target: Target, address: string, signal: AbortSignal): Promise<Socket> {
  if (signal.aborted) return Promise.reject(signal.reason)
  return new Promise<Socket>((resolve, reject) => {
    // Connect to the checked address; TLS still presents and verifies the host name (SNI, certificate).
    const socket: Socket = secure
      ? tlsConnect({
          host: address,
          port: target.port,
          servername: isIP(target.hostname) === 0 ? target.hostname : undefined,
          ALPNProtocols: ['http/1.1'],
        })
      : netConnect({ host: address, port: target.port })
    const cleanup = () => {
      signal.removeEventListener('abort', onAbort)
      socket.removeListener('error', onError)
    }
    const onAbort = () => {
      cleanup()
      socket.destroy()
      reject(signal.reason)
    }
    const onError = (error: Error) => {
      cleanup()
      socket.destroy()
      reject(error)
    }
    signal.addEventListener('abort', onAbort, { once: true })
    socket.once('error', onError)
    socket.once(secure ? 'secureConnect' : 'connect', () => {
      cleanup()
      resolve(socket)
    })
  })
}

function firstHop(request: EgressRequest, maxRequestBytes: number): Hop {
  let url: URL
  try {
    url = new URL(request.url)
  } catch (error) {
    throw egressError('invalid_request', `invalid URL: ${request.url}`, {}, error)
  }
  const method = normalizeMethod(request.method ?? 'GET')
  if (method === 'CONNECT' || method === 'TRACE' || method === 'TRACK') {
    throw egressError('invalid_request', `method ${method} is not allowed`)
  }
  const entries = Array.isArray(request.headers) ? request.headers : Object.entries(request.headers ?? {})
  const headers: Array<[string, string]> = []
  for (const [name, value] of entries) {
    const lower = name.toLowerCase()
    if (!droppedRequestHeaders.has(lower)) headers.push([lower, value])
  }
  const defaults: Array<[string, string]> = [
    ['accept', '*/*'],
    ['accept-encoding', 'gzip, deflate, br'],
    ['user-agent', 'imprun'],
  ]
  for (const [name, value] of defaults) if (!headers.some(([existing]) => existing === name)) headers.push([name, value])

  if (request.body !== undefined && request.bodyBase64 !== undefined) {
    throw egressError('invalid_request', 'a fetch request has either body or bodyBase64, not both')
  }
  // Refuse oversized bodies before copying them (a UTF-16 unit is at least one UTF-8 byte).
  const leastBytes = request.body?.length ?? Math.floor(((request.bodyBase64?.length ?? 0) * 3) / 4) - 2
  if (leastBytes > maxRequestBytes) throw requestTooLarge(maxRequestBytes)
  const body =
    request.body !== undefined
      ? Buffer.from(request.body, 'utf8')
      : request.bodyBase64 !== undefined
        ? Buffer.from(request.bodyBase64, 'base64')
        : undefined
  if (body !== undefined && body.length > maxRequestBytes) throw requestTooLarge(maxRequestBytes)
  if (body !== undefined && (method === 'GET' || method === 'HEAD')) {
    throw egressError('invalid_request', `a ${method} request cannot have a body`)
  }
  return { url, method, headers, body }
}

function requestTooLarge(maxRequestBytes: number): ImprunError {
  return egressError('request_too_large', `request body is larger than ${maxRequestBytes} bytes`, {
    limit: maxRequestBytes,
  })
}

function normalizeMethod(method: string): string {
  const upper = method.toUpperCase()
  return ['DELETE', 'GET', 'HEAD', 'OPTIONS', 'POST', 'PUT', 'CONNECT', 'TRACE', 'TRACK'].includes(upper) ? upper : method
}

/** The next request of a redirect chain, as the fetch standard's HTTP-redirect fetch builds it. */
function nextHop(hop: Hop, status: number, location: string): Hop {
  let url: URL
  try {
    url = new URL(location, hop.url)
  } catch (error) {
    throw egressError('invalid_redirect', `${hop.url.href} redirected to an invalid URL: ${location}`, {}, error)
  }
  let { method, body, headers } = hop
  if (((status === 301 || status === 302) && method === 'POST') || (status === 303 && method !== 'GET' && method !== 'HEAD')) {
    method = 'GET'
    body = undefined
    headers = headers.filter(([name]) => !bodyHeaders.includes(name))
  }
  if (url.origin !== hop.url.origin) headers = headers.filter(([name]) => !crossOriginHeaders.includes(name))
  url.hash = ''
  return { url, method, headers, body }
}

class ByteLimit extends Transform {
  #seen = 0
  readonly #limit: number

  constructor(limit: number) {
    super()
    this.#limit = limit
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#seen += chunk.length
    if (this.#seen > this.#limit) callback(responseTooLarge(this.#limit))
    else callback(null, chunk)
  }
}

function responseTooLarge(limit: number): ImprunError {
  return egressError('response_too_large', `response body is larger than ${limit} bytes`, { limit })
}

async function readBody(response: IncomingMessage, method: string, limit: number): Promise<Buffer> {
  const status = response.statusCode ?? 0
  if (method === 'HEAD' || status === 204 || status === 304) return Buffer.alloc(0)
  const declared = Number(response.headers['content-length'])
  if (Number.isFinite(declared) && declared > limit) throw responseTooLarge(limit)
  const flush = { finishFlush: zlibConstants.Z_SYNC_FLUSH }
  const encoding = response.headers['content-encoding']?.trim().toLowerCase()
  const decoder =
    encoding === 'gzip' || encoding === 'x-gzip'
      ? createGunzip(flush)
      : encoding === 'deflate'
        ? createInflate(flush)
        : encoding === 'br'
          ? createBrotliDecompress()
          : undefined
  const chunks: Buffer[] = []
  const collect = async (source: AsyncIterable<Buffer>) => {
    for await (const chunk of source) chunks.push(chunk)
  }
  // Both the bytes on the wire and the decoded bytes are counted (a small compressed body can
  // expand without bound).
  if (decoder === undefined) await pipeline(response, new ByteLimit(limit), collect)
  else await pipeline(response, new ByteLimit(limit), decoder, new ByteLimit(limit), collect)
  return Buffer.concat(chunks)
}

const textTypes = /^(text\/[^;]*|application\/(json|xml|javascript|ecmascript|x-www-form-urlencoded|[^;]*\+(json|xml)))\s*(;|$)/i

/** The body as text when its type is textual (or absent) and it is valid UTF-8; else undefined. */
function textBody(contentType: string | undefined, body: Buffer): string | undefined {
  if (contentType !== undefined && contentType.trim() !== '' && !textTypes.test(contentType.trim())) return undefined
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(body)
  } catch {
    return undefined
  }
}
