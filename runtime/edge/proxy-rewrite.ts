/**
 * proxy-rewrite (apisix/plugins/proxy-rewrite.lua, priority 1008, rewrite phase), headers only:
 * the embedded data plane invokes the function directly, so `uri`, `regex_uri`, `method`, `host`
 * and `use_real_request_uri_unsafe` have nothing to rewrite and are ignored.
 *
 * `headers` is either `{add, set, remove}` or (the older form) a flat `{name: value}` map meaning
 * `set`. APISIX applies `add`, then `set`, then `remove`. Values may use `$var` / `${var}`
 * (resolved against the request as in APISIX); arrays become one comma-joined value (our request
 * headers are single strings); numbers are stringified. A `set` to the empty string removes the
 * header, as nginx's `ngx.req.set_header` does.
 */
import type { PluginConf } from '../../control/domain/plugins.ts'
import { requestVariable, resolveTemplate } from './request-variables.ts'
import type { EdgeContext, EdgePlugin, ShortCircuit } from './types.ts'

interface HeaderOperations {
  add: Array<[string, unknown]>
  set: Array<[string, unknown]>
  remove: string[]
}

export function createProxyRewrite(conf: PluginConf): EdgePlugin {
  const operations = headerOperations(conf.headers)
  return {
    name: 'proxy-rewrite',
    phase: 'rewrite',
    priority: 1008,
    run(context: EdgeContext): ShortCircuit | undefined {
      if (operations === undefined) return undefined
      const lookup = (name: string) => requestVariable(context, name)
      const headers: Record<string, string> = { ...context.request.headers }
      for (const [name, value] of operations.add) {
        const resolved = headerValue(value, lookup)
        const existing = headers[name]
        headers[name] = existing === undefined || existing === '' ? resolved : `${existing}, ${resolved}`
      }
      for (const [name, value] of operations.set) {
        const resolved = headerValue(value, lookup)
        if (resolved === '') delete headers[name]
        else headers[name] = resolved
      }
      for (const name of operations.remove) delete headers[name]
      context.request = { ...context.request, headers }
      return undefined
    },
  }
}

function headerOperations(headers: unknown): HeaderOperations | undefined {
  if (!isRecord(headers)) return undefined
  const structured = isRecord(headers.add) || isRecord(headers.set) || Array.isArray(headers.remove)
  const entries = (value: unknown): Array<[string, unknown]> =>
    isRecord(value) ? Object.entries(value).map(([name, item]) => [name.toLowerCase(), item]) : []
  if (!structured) return { add: [], set: entries(headers), remove: [] }
  return {
    add: entries(headers.add),
    set: entries(headers.set),
    remove: Array.isArray(headers.remove) ? headers.remove.map((name) => String(name).toLowerCase()) : [],
  }
}

function headerValue(value: unknown, lookup: (name: string) => string | undefined): string {
  const items = Array.isArray(value) ? value : [value]
  return items.map((item) => resolveTemplate(String(item), lookup).value).join(', ')
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
