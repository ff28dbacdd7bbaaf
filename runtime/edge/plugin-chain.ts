/**
 * The edge plugin chain of the embedded data plane: the APISIX plugins of one route's effective
 * plugin confs (see `effectivePlugins`), run in process before the function is invoked, with
 * APISIX's semantics. Build a chain once per effective conf and reuse it for every request; give
 * every chain of the same route the same `rateLimitState` so a rebuild (hot reload) keeps the
 * rate-limit counters.
 *
 * Order. APISIX runs the `rewrite` handlers of all plugins by priority (highest first), then the
 * `access` handlers; a conf's `_meta.priority` replaces the plugin's priority. So:
 *
 *   cors 4000 (rewrite: OPTIONS → 200) → ip-restriction 3000 → key-auth 2500 (rewrite)
 *   → proxy-rewrite 1008 (rewrite) → limit-count 1002 (access) → limit-req 1001 (access)
 *
 * One deliberate difference: APISIX runs ip-restriction in the access phase, after key-auth; we
 * run it with the rewrite handlers, so a blocked address is answered 403 before its key is
 * looked up (no key check, no store read for blocked clients). The only visible effect is the
 * status when both would fail: a blocked client with a missing or wrong key gets 403 here,
 * 401 from APISIX.
 *
 * Responses. A plugin ends the request with a ShortCircuit (its status and body; `_meta.
 * error_response`, when set, replaces the body of any 4xx/5xx it returns, as in APISIX). Every
 * response carries the response headers set so far: CORS headers (APISIX's cors header filter
 * runs on plugin rejections too) and rate-limit quota headers.
 *
 * Plugins with `_meta.disable: true` are skipped. An unknown plugin name, or a conf the runtime
 * cannot enforce, fails the build with `invalid_plugin_config` rather than being ignored.
 */
import { ImprunError } from '../../control/errors.ts'
import { isPluginDisabled, type PluginConf, type PluginConfigs } from '../../control/domain/plugins.ts'
import { systemClock, type Clock } from '../../control/ports.ts'
import { appendVary, createCors } from './cors.ts'
import { createIpRestriction } from './ip-restriction.ts'
import { createKeyAuth } from './key-auth.ts'
import { createLimitCount } from './limit-count.ts'
import { createLimitReq } from './limit-req.ts'
import { createProxyRewrite } from './proxy-rewrite.ts'
import { createRateLimitState, type RateLimitState } from './rate-limit-state.ts'
import { normalizeClientIp } from './request-variables.ts'
import type { EdgeContext, EdgePlugin, EdgeRequest, ShortCircuit, VerifyKey } from './types.ts'

export interface PluginChainDeps {
  /**
   * The route the chain serves, e.g. "hometax/prod/calculateTax": rate-limit counters are per
   * scope (and per conf and key). Chains sharing a scope and a conf share counters.
   */
  scope: string
  /** Required when key-auth is configured: checks a key for this gateway and stage. */
  verifyKey?: VerifyKey
  /** Default: the system clock. */
  clock?: Clock
  /** Rate-limit counters; default: a new store private to this chain (reset on rebuild). */
  rateLimitState?: RateLimitState
}

export interface EdgeResult {
  /** Set when the chain answered the request itself: send it, do not invoke the function. */
  response?: ShortCircuit
  /**
   * Headers (lower-case names) for the response to this request: the function's response when
   * `response` is unset (merge with `mergeResponseHeaders`), else the same as `response.headers`.
   */
  headers: Record<string, string>
  /** The consumer key-auth identified. */
  consumer?: string
  /** Milliseconds to wait before invoking the function (limit-req without nodelay). */
  delayMs?: number
  /** The request to pass to the function (hide_credentials, proxy-rewrite headers applied). */
  request: EdgeRequest
}

export interface PluginChain {
  /** Plugin names in execution order. */
  readonly order: readonly string[]
  run(request: EdgeRequest): Promise<EdgeResult>
}

interface ChainEntry {
  plugin: EdgePlugin
  errorResponse: unknown
}

const phaseOrder = { rewrite: 0, access: 1 } as const

export function createPluginChain(plugins: PluginConfigs, deps: PluginChainDeps): PluginChain {
  const clock = deps.clock ?? systemClock
  const state = deps.rateLimitState ?? createRateLimitState()
  const limitOptions = { state, clock, scope: deps.scope }

  const entries: ChainEntry[] = []
  for (const [name, conf] of Object.entries(plugins)) {
    if (isPluginDisabled(conf)) continue
    let plugin: EdgePlugin
    switch (name) {
      case 'cors':
        plugin = createCors(conf)
        break
      case 'ip-restriction':
        plugin = createIpRestriction(conf)
        break
      case 'key-auth':
        plugin = createKeyAuth(conf, deps.verifyKey)
        break
      case 'proxy-rewrite':
        plugin = createProxyRewrite(conf)
        break
      case 'limit-count':
        plugin = createLimitCount(conf, limitOptions)
        break
      case 'limit-req':
        plugin = createLimitReq(conf, limitOptions)
        break
      default:
        throw new ImprunError('invalid_plugin_config', `plugins.${name}: the embedded edge cannot run plugin '${name}'`, {
          details: { plugin: name },
        })
    }
    const meta = metaOf(conf)
    const priority = typeof meta?.priority === 'number' && Number.isInteger(meta.priority) ? meta.priority : plugin.priority
    entries.push({ plugin: { ...plugin, priority }, errorResponse: meta?.error_response })
  }
  entries.sort(
    (a, b) =>
      phaseOrder[a.plugin.phase] - phaseOrder[b.plugin.phase] ||
      b.plugin.priority - a.plugin.priority ||
      a.plugin.name.localeCompare(b.plugin.name),
  )

  return {
    order: entries.map((entry) => entry.plugin.name),
    async run(request: EdgeRequest): Promise<EdgeResult> {
      const context: EdgeContext = {
        request,
        remoteAddr: normalizeClientIp(request.clientIp),
        consumer: undefined,
        responseHeaders: {},
        delayMs: 0,
      }
      for (const entry of entries) {
        let outcome = entry.plugin.run(context)
        if (outcome instanceof Promise) outcome = await outcome
        if (outcome !== undefined) {
          const response = finish(outcome, entry.errorResponse, context.responseHeaders)
          return withConsumer({ response, headers: response.headers, request: context.request }, context.consumer)
        }
      }
      const result: EdgeResult = { headers: context.responseHeaders, request: context.request }
      if (context.delayMs > 0) result.delayMs = context.delayMs
      return withConsumer(result, context.consumer)
    },
  }
}

/**
 * The function's response headers with the chain's added: the chain's win (APISIX sets them in
 * its header filter, over the upstream's), except `vary`, which is merged. Names come back
 * lower-case.
 */
export function mergeResponseHeaders(
  functionHeaders: Readonly<Record<string, string | number | readonly string[] | undefined>>,
  edgeHeaders: Readonly<Record<string, string>>,
): Record<string, string | readonly string[]> {
  const merged: Record<string, string | readonly string[]> = {}
  for (const [name, value] of Object.entries(functionHeaders)) {
    if (value !== undefined) merged[name.toLowerCase()] = typeof value === 'number' ? String(value) : value
  }
  for (const [name, value] of Object.entries(edgeHeaders)) {
    if (name === 'vary') {
      const current = merged.vary
      merged.vary = appendVary(Array.isArray(current) ? current.join(', ') : (current as string | undefined), value)
    } else {
      merged[name] = value
    }
  }
  return merged
}

function finish(outcome: ShortCircuit, errorResponse: unknown, responseHeaders: Record<string, string>): ShortCircuit {
  const headers = { ...responseHeaders, ...outcome.headers }
  if (outcome.status < 400 || errorResponse === undefined) return { status: outcome.status, headers, body: outcome.body }
  // APISIX: "always return the configured message so the caller can't guess the real error".
  if (typeof errorResponse === 'string') {
    return { status: outcome.status, headers: { ...headers, 'content-type': 'text/plain; charset=utf-8' }, body: errorResponse }
  }
  return {
    status: outcome.status,
    headers: { ...headers, 'content-type': 'application/json' },
    body: JSON.stringify(errorResponse),
  }
}

function withConsumer(result: EdgeResult, consumer: string | undefined): EdgeResult {
  if (consumer !== undefined) result.consumer = consumer
  return result
}

function metaOf(conf: PluginConf): Record<string, unknown> | undefined {
  const meta = conf._meta
  return typeof meta === 'object' && meta !== null && !Array.isArray(meta) ? (meta as Record<string, unknown>) : undefined
}
