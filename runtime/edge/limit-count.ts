/**
 * limit-count (apisix/plugins/limit-count.lua + limit-count/init.lua, priority 1002, access
 * phase), `policy: "local"`: at most `count` requests per `time_window` seconds per key.
 *
 * - `key_type` "var" (default; `key` default "remote_addr"), "var_combination" (`$a $b`) or
 *   "constant"; a key resolving to nothing falls back to remote_addr.
 * - `window_type` "fixed" (default; resty.limit.count: the window starts with the key's first
 *   request) or "sliding" (APISIX sliding-window.lua).
 * - `count` / `time_window` may be strings with `$var`s, resolved per request to a positive
 *   integer; `rules` (a list of {count, time_window, key template, header_prefix}) applies every
 *   rule whose key resolves, headers `X-<prefix>-RateLimit-*` (prefix default: the rule's
 *   1-based index).
 * - Rejected: `rejected_code` (APISIX default 503, not 429) with `rejected_msg` (in our error
 *   body; APISIX sends `{"error_msg": …}`, or nginx's error page without a message).
 * - `show_limit_quota_header` (default true): `X-RateLimit-Limit`, `X-RateLimit-Remaining`,
 *   `X-RateLimit-Reset` (seconds to the window's end, floored to hundredths as APISIX does) on
 *   every response, also the rejection (remaining 0).
 * - A count or window that does not resolve is a 500, or no limit with `allow_degradation`.
 *
 * Counters live in the shared RateLimitState, keyed by (scope, conf identity, rule, key): APISIX
 * keys them by route and plugin conf version, so a changed limit-count conf starts fresh
 * counters and a reload with the same conf keeps them. `group` (counters shared across routes)
 * and non-local policies are refused.
 */
import { ImprunError } from '../../control/errors.ts'
import type { PluginConf } from '../../control/domain/plugins.ts'
import type { Clock } from '../../control/ports.ts'
import { confIdentity, type RateLimitState } from './rate-limit-state.ts'
import { requestVariable, resolveLimitKey, resolveTemplate } from './request-variables.ts'
import { errorResponse, type EdgeContext, type EdgePlugin, type ShortCircuit } from './types.ts'

export const limitCountDefaults = {
  key: 'remote_addr',
  key_type: 'var',
  rejected_code: 503,
  show_limit_quota_header: true,
  allow_degradation: false,
  window_type: 'fixed',
  policy: 'local',
} as const

export const rateLimitedMessage = 'Rate limit exceeded'

export interface LimitPluginOptions {
  state: RateLimitState
  clock: Clock
  /** The route the counters belong to, e.g. "gateway/stage/function". */
  scope: string
}

interface ConfRule {
  count: number | string
  timeWindow: number | string
  key: string
  /** "var" | "var_combination" | "constant", or "rule": a `rules[]` key template (see resolveRules). */
  keyType: string
  headerPrefix?: string
}

interface ResolvedRule {
  index: number
  count: number
  timeWindow: number
  key: string
  headerPrefix?: string
}

export function createLimitCount(conf: PluginConf, options: LimitPluginOptions): EdgePlugin {
  if ((conf.policy ?? limitCountDefaults.policy) !== 'local') throw refused('policy', 'only "local" is supported')
  if (conf.group !== undefined) throw refused('group', 'is not supported')
  const keyType = typeof conf.key_type === 'string' ? conf.key_type : limitCountDefaults.key_type
  const rules = confRules(conf, keyType)
  const sliding = conf.window_type === 'sliding'
  const rejectedCode = typeof conf.rejected_code === 'number' ? conf.rejected_code : limitCountDefaults.rejected_code
  const rejectedMessage = typeof conf.rejected_msg === 'string' ? conf.rejected_msg : rateLimitedMessage
  const showHeaders = conf.show_limit_quota_header !== false
  const allowDegradation = conf.allow_degradation === true
  const counterPrefix = `limit-count\u0000${options.scope}\u0000${confIdentity(conf)}`

  return {
    name: 'limit-count',
    phase: 'access',
    priority: 1002,
    run(context: EdgeContext): ShortCircuit | undefined {
      const resolved = resolveRules(context, rules)
      if (typeof resolved === 'string' || resolved.length === 0) {
        if (allowDegradation) return undefined
        return errorResponse(500, 'internal', 'failed to limit count')
      }
      const now = options.clock.now()
      for (const rule of resolved) {
        const counter = `${counterPrefix}\u0000${rule.index}\u0000${rule.key}`
        const windowMs = rule.timeWindow * 1000
        const result = sliding
          ? options.state.slidingWindow(counter, rule.count, windowMs, 1, now)
          : fixed(options.state.fixedWindow(counter, rule.count, windowMs, 1, now))
        if (showHeaders) {
          const names = headerNames(rule.headerPrefix)
          context.responseHeaders[names.limit] = String(rule.count)
          context.responseHeaders[names.remaining] = String(result.allowed ? result.remaining : 0)
          context.responseHeaders[names.reset] = String(Math.floor(result.resetSeconds * 100) / 100)
        }
        if (!result.allowed) return errorResponse(rejectedCode, 'rate_limited', rejectedMessage)
      }
      return undefined
    },
  }
}

function fixed(result: { allowed: boolean; remaining: number; resetMs: number }) {
  return { allowed: result.allowed, remaining: result.remaining, resetSeconds: result.resetMs / 1000 }
}

function confRules(conf: PluginConf, keyType: string): ConfRule[] {
  if (Array.isArray(conf.rules)) {
    return conf.rules.map((rule: unknown, index) => {
      const item = (typeof rule === 'object' && rule !== null ? rule : {}) as Record<string, unknown>
      const prefix = item.header_prefix
      return {
        count: limitValue(item.count, `rules/${index}/count`),
        timeWindow: limitValue(item.time_window, `rules/${index}/time_window`),
        key: typeof item.key === 'string' ? item.key : '',
        keyType: 'rule',
        headerPrefix: typeof prefix === 'string' || typeof prefix === 'number' ? String(prefix) : String(index + 1),
      }
    })
  }
  return [
    {
      count: limitValue(conf.count, 'count'),
      timeWindow: limitValue(conf.time_window, 'time_window'),
      key: typeof conf.key === 'string' ? conf.key : limitCountDefaults.key,
      keyType,
    },
  ]
}

/** The rules that apply to this request, or a message when a count or window does not resolve. */
function resolveRules(context: EdgeContext, rules: ConfRule[]): ResolvedRule[] | string {
  const lookup = (name: string) => requestVariable(context, name)
  const resolved: ResolvedRule[] = []
  for (const [index, rule] of rules.entries()) {
    let key: string
    if (rule.keyType === 'rule') {
      // APISIX resolves a rule's key as a template and uses the result as a constant key; a rule
      // whose key has no variable with a value for this request does not apply to it.
      const template = resolveTemplate(rule.key, lookup)
      if (template.resolved === 0) continue
      key = template.value
    } else {
      key = resolveLimitKey(context, rule.key, rule.keyType)
    }
    const count = resolveLimitValue(rule.count, lookup)
    const timeWindow = resolveLimitValue(rule.timeWindow, lookup)
    if (count === undefined || timeWindow === undefined) return 'count or time_window did not resolve to a positive integer'
    resolved.push({ index, count, timeWindow, key, ...(rule.headerPrefix === undefined ? {} : { headerPrefix: rule.headerPrefix }) })
  }
  return resolved
}

function resolveLimitValue(value: number | string, lookup: (name: string) => string | undefined): number | undefined {
  if (typeof value === 'number') return value
  const text = resolveTemplate(value, lookup).value.trim()
  if (!/^\d+$/.test(text)) return undefined
  const number = Number(text)
  return number > 0 && Number.isSafeInteger(number) ? number : undefined
}

function limitValue(value: unknown, field: string): number | string {
  if (typeof value === 'number' && Number.isInteger(value) && value > 0) return value
  if (typeof value === 'string') return value
  throw refused(field, 'must be a positive integer or a string with $variables')
}

function headerNames(prefix: string | undefined): { limit: string; remaining: string; reset: string } {
  const base = prefix === undefined ? 'x-' : `x-${prefix.toLowerCase()}-`
  return { limit: `${base}ratelimit-limit`, remaining: `${base}ratelimit-remaining`, reset: `${base}ratelimit-reset` }
}

function refused(field: string, message: string): ImprunError {
  return new ImprunError('invalid_plugin_config', `plugins.limit-count/${field}: ${message}`, {
    details: { plugin: 'limit-count', field },
  })
}
