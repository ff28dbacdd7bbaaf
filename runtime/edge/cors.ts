/**
 * cors (apisix/plugins/cors.lua, priority 4000). Its rewrite handler answers every OPTIONS
 * request with 200 and no body; its header filter adds the CORS headers to whatever response
 * the request ends with (the function's, a preflight, or another plugin's rejection) when the
 * request's Origin is allowed. A request from an origin that is not allowed still goes through,
 * without CORS headers: the browser is the one that enforces CORS.
 *
 * Origin matching, as in current APISIX:
 * - `allow_origins_by_regex` set: only origins matching one of the regexes (unanchored, as
 *   ngx.re.find) are allowed and `allow_origins` is ignored;
 * - else `allow_origins`: "*" allows any request with `Access-Control-Allow-Origin: *` (also with
 *   no Origin header); "**" echoes the request's Origin (or "*" without one), even with
 *   credentials; otherwise a comma-separated list of exact origins, the matching one echoed.
 * - `allow_origins_by_metadata` refers to plugin metadata, which the platform does not keep: it
 *   allows nothing here.
 * An echoed origin adds `Vary: Origin`. `timing_allow_origins(_by_regex)` works the same way for
 * `Timing-Allow-Origin`.
 *
 * Header values: `allow_methods` ("**" → GET,POST,PUT,DELETE,PATCH,HEAD,OPTIONS,CONNECT,TRACE),
 * `allow_headers` ("**" → the request's Access-Control-Request-Headers), `max_age`,
 * `expose_headers` (only when set), `Access-Control-Allow-Credentials: true` with
 * `allow_credential`. APISIX refuses `allow_credential` together with "*" in allow_origins,
 * allow_methods, allow_headers or expose_headers; so does `createCors`.
 */
import { ImprunError } from '../../control/errors.ts'
import type { PluginConf } from '../../control/domain/plugins.ts'
import type { EdgeContext, EdgePlugin, ShortCircuit } from './types.ts'

/** APISIX's cors schema defaults (expose_headers has none: the header is then left alone). */
export const corsDefaults = {
  allow_origins: '*',
  allow_methods: '*',
  allow_headers: '*',
  max_age: 5,
  allow_credential: false,
} as const

const allMethods = 'GET,POST,PUT,DELETE,PATCH,HEAD,OPTIONS,CONNECT,TRACE'

/** Origins longer than this never match a regex (no legitimate origin is; it bounds regex time). */
const maxRegexOriginLength = 2048

/** The conf problems APISIX's cors `check_schema` adds to its JSON schema. */
export function corsConfIssues(conf: PluginConf): string[] {
  const issues: string[] = []
  if (conf.allow_credential === true) {
    const starred = ['allow_origins', 'allow_methods', 'allow_headers', 'expose_headers'].filter(
      (field) => (conf[field] ?? (corsDefaults as Record<string, unknown>)[field]) === '*',
    )
    if (starred.length > 0) issues.push(`you can not set '*' for other option when 'allow_credential' is true (${starred.join(', ')})`)
  }
  for (const field of ['allow_origins_by_regex', 'timing_allow_origins_by_regex']) {
    const patterns = conf[field]
    if (!Array.isArray(patterns)) continue
    for (const pattern of patterns) {
      try {
        new RegExp(String(pattern))
      } catch (error) {
        issues.push(`${field}: invalid regex ${JSON.stringify(pattern)}: ${error instanceof Error ? error.message : String(error)}`)
      }
    }
  }
  return issues
}

export function createCors(conf: PluginConf): EdgePlugin {
  const issues = corsConfIssues(conf)
  if (issues.length > 0) {
    throw new ImprunError('invalid_plugin_config', `plugins.cors: ${issues.join('; ')}`, { details: { plugin: 'cors', issues } })
  }
  const allowOrigins = origins(conf.allow_origins_by_regex, stringOr(conf.allow_origins, corsDefaults.allow_origins))
  const timingOrigins =
    conf.timing_allow_origins_by_regex !== undefined || conf.timing_allow_origins !== undefined
      ? origins(conf.timing_allow_origins_by_regex, stringOr(conf.timing_allow_origins, ''))
      : undefined
  const allowMethods = stringOr(conf.allow_methods, corsDefaults.allow_methods)
  const allowHeaders = stringOr(conf.allow_headers, corsDefaults.allow_headers)
  const exposeHeaders = typeof conf.expose_headers === 'string' ? conf.expose_headers : undefined
  const maxAge = typeof conf.max_age === 'number' ? conf.max_age : corsDefaults.max_age
  const allowCredential = conf.allow_credential === true

  return {
    name: 'cors',
    phase: 'rewrite',
    priority: 4000,
    run(context: EdgeContext): ShortCircuit | undefined {
      // Read before any other plugin can rewrite the request's headers (APISIX keeps
      // ctx.original_request_origin for the same reason).
      const headers = context.request.headers
      const origin = headers.origin
      const allowed = allowOrigins(origin)
      const out = context.responseHeaders
      if (allowed !== undefined) {
        out['access-control-allow-origin'] = allowed
        if (allowed !== '*') out.vary = appendVary(out.vary, 'Origin')
        out['access-control-allow-methods'] = allowMethods === '**' ? allMethods : allowMethods
        out['access-control-max-age'] = String(maxAge)
        if (exposeHeaders !== undefined) out['access-control-expose-headers'] = exposeHeaders
        if (allowHeaders === '**') {
          const requested = headers['access-control-request-headers']
          if (requested !== undefined) out['access-control-allow-headers'] = requested
        } else {
          out['access-control-allow-headers'] = allowHeaders
        }
        if (allowCredential) out['access-control-allow-credentials'] = 'true'
      }
      const timingAllowed = timingOrigins?.(origin)
      if (timingAllowed !== undefined) out['timing-allow-origin'] = timingAllowed

      if (context.request.method === 'OPTIONS') return { status: 200, headers: {}, body: null }
      return undefined
    },
  }
}

/** The value for `Access-Control-Allow-Origin` given the request's Origin, or undefined (none). */
type OriginMatcher = (origin: string | undefined) => string | undefined

function origins(byRegex: unknown, list: string): OriginMatcher {
  if (Array.isArray(byRegex)) {
    const regex = new RegExp(byRegex.map(String).join('|'))
    return (origin) => (origin !== undefined && origin.length <= maxRegexOriginLength && regex.test(origin) ? origin : undefined)
  }
  if (list === '*') return () => '*'
  if (list === '**') return (origin) => origin ?? '*'
  if (list === '') return () => undefined
  const allowed = new Set(list.split(',').filter((entry) => entry !== ''))
  return (origin) => (origin !== undefined && allowed.has(origin) ? origin : undefined)
}

function stringOr(value: unknown, fallback: string): string {
  return typeof value === 'string' ? value : fallback
}

/** Adds a token to a Vary value unless it is there already (case-insensitively). */
export function appendVary(current: string | undefined, token: string): string {
  if (current === undefined || current.trim() === '') return token
  const tokens = current.split(',').map((item) => item.trim().toLowerCase())
  if (tokens.includes('*') || tokens.includes(token.toLowerCase())) return current
  return `${current}, ${token}`
}
