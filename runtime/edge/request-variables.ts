/**
 * The part of APISIX's `ctx.var` (nginx variables plus APISIX's own) that plugin confs may name:
 * limit-count / limit-req `key`, `$var` templates in limit-count values and proxy-rewrite header
 * values. Also the query helpers the plugins share.
 */
import { isIP } from 'node:net'
import type { EdgeContext, EdgeQuery, EdgeRequest } from './types.ts'

/**
 * One variable's value, or undefined when the request has none (APISIX: nil). Supported:
 * `remote_addr`, `consumer_name`, `request_method`, `uri`, `request_uri`, `args`, `host`,
 * `http_<header>` (dashes as underscores), `arg_<name>` (first value, decoded), `cookie_<name>`.
 */
export function requestVariable(context: Pick<EdgeContext, 'request' | 'remoteAddr' | 'consumer'>, name: string): string | undefined {
  const request = context.request
  switch (name) {
    case 'remote_addr':
      return context.remoteAddr === '' ? undefined : context.remoteAddr
    case 'consumer_name':
      return context.consumer
    case 'request_method':
      return request.method
    case 'uri':
      return request.path
    case 'args': {
      const args = queryString(request.query)
      return args === '' ? undefined : args
    }
    case 'request_uri': {
      const args = queryString(request.query)
      return args === '' ? request.path : `${request.path}?${args}`
    }
    case 'host': {
      const host = request.headers.host
      return host === undefined ? undefined : stripPort(host).toLowerCase()
    }
  }
  if (name.startsWith('http_')) return request.headers[name.slice(5).replaceAll('_', '-')]
  if (name.startsWith('arg_')) return queryValue(request.query, name.slice(4))
  if (name.startsWith('cookie_')) return cookieValue(request.headers.cookie, name.slice(7))
  return undefined
}

// APISIX core.utils.resolve_var: `$name` or `${name}`, not preceded by a backslash.
const variablePattern = /(?<!\\)\$(?:\{(\w+)\}|(\w+))/g

/**
 * Fills `$var` / `${var}` in a template (APISIX `core.utils.resolve_var`): an unknown or absent
 * variable becomes the empty string; `resolved` counts the variables that had a value.
 */
export function resolveTemplate(template: string, lookup: (name: string) => string | undefined): { value: string; resolved: number } {
  if (!template.includes('$')) return { value: template, resolved: 0 }
  let resolved = 0
  const value = template.replace(variablePattern, (_match, braced: string | undefined, bare: string | undefined) => {
    const found = lookup((braced ?? bare)!)
    if (found === undefined) return ''
    resolved += 1
    return found
  })
  return { value, resolved }
}

/** `::ffff:1.2.3.4` → `1.2.3.4`, so one client has one `remote_addr` whichever socket family it used. */
export function normalizeClientIp(ip: string): string {
  const trimmed = ip.trim()
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(trimmed)
  if (mapped && isIP(mapped[1]!) === 4) return mapped[1]!
  return trimmed
}

export function queryValue(query: EdgeQuery, name: string): string | undefined {
  if (query instanceof URLSearchParams) return query.get(name) ?? undefined
  if (!Object.hasOwn(query, name)) return undefined
  const value = query[name]
  if (value === undefined) return undefined
  return typeof value === 'string' ? value : value[0]
}

/** A copy of the query without `name`, of the same kind as given. */
export function queryWithout(query: EdgeQuery, name: string): EdgeQuery {
  if (query instanceof URLSearchParams) {
    const copy = new URLSearchParams(query)
    copy.delete(name)
    return copy
  }
  const copy: Record<string, string | readonly string[] | undefined> = {}
  for (const [key, value] of Object.entries(query)) if (key !== name) copy[key] = value
  return copy
}

function queryString(query: EdgeQuery): string {
  if (query instanceof URLSearchParams) return query.toString()
  const params = new URLSearchParams()
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined) continue
    if (typeof value === 'string') params.append(key, value)
    else for (const item of value) params.append(key, item)
  }
  return params.toString()
}

function stripPort(host: string): string {
  if (host.startsWith('[')) {
    const end = host.indexOf(']')
    return end === -1 ? host : host.slice(0, end + 1)
  }
  const colon = host.indexOf(':')
  return colon === -1 ? host : host.slice(0, colon)
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined
  for (const part of header.split(';')) {
    const equals = part.indexOf('=')
    if (equals === -1) continue
    if (part.slice(0, equals).trim() === name) return part.slice(equals + 1).trim()
  }
  return undefined
}

/** A copy of the request with its headers replaced. */
export function withHeaders(request: EdgeRequest, headers: Record<string, string>): EdgeRequest {
  return { ...request, headers }
}

/**
 * The limit key of limit-count / limit-req (`key_type` "var": a variable name; "var_combination":
 * a `$var` template; "constant": the text itself). As APISIX, a key that resolves to nothing
 * (an absent variable, a template with no variable found) falls back to `remote_addr`.
 */
export function resolveLimitKey(
  context: Pick<EdgeContext, 'request' | 'remoteAddr' | 'consumer'>,
  key: string,
  keyType: string,
): string {
  let value: string | undefined
  if (keyType === 'constant') {
    value = key
  } else if (keyType === 'var_combination') {
    const resolved = resolveTemplate(key, (name) => requestVariable(context, name))
    value = resolved.resolved === 0 ? undefined : resolved.value
  } else {
    value = requestVariable(context, key)
  }
  return value ?? context.remoteAddr
}
