/**
 * EdgeSync through the APISIX Admin API (v3, `X-API-KEY`). A sync lists the gateway's objects
 * (label `imprun_gateway`), PUTs what is missing or different — upstreams and plugin_configs
 * before the routes that reference them — and deletes what is no longer wanted — routes and
 * consumers before the upstreams and plugin_configs they reference (APISIX refuses to delete an
 * upstream still in use). Identical objects are not written again.
 * Errors carry APISIX's `error_msg`.
 */
import { ImprunError, type ErrorCode } from '../../errors.ts'
import type { EdgeSync, GatewayEdgeState } from '../../edge-sync.ts'
import { adminLabel, apisixAdminObjects, type ApisixObjectOptions } from './apisix-objects.ts'

export interface ApisixAdminSyncOptions extends ApisixObjectOptions {
  /** e.g. `http://apisix-admin.apisix.svc:9180` */
  url: string
  /** The admin key (`deployment.admin.admin_key`). */
  adminKey: string
  fetch?: typeof fetch
  /** Per-request timeout (default 10 s). */
  timeoutMs?: number
}

type ResourceType = 'upstreams' | 'plugin_configs' | 'routes' | 'consumers'

interface AdminEntry {
  id: string
  value: Record<string, unknown>
}

export function createApisixAdminSync(options: ApisixAdminSyncOptions): EdgeSync {
  const fetchImpl = options.fetch ?? fetch
  const base = options.url.replace(/\/+$/, '')

  const request = async (method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }> => {
    let response: Response
    try {
      response = await fetchImpl(`${base}/apisix/admin/${path}`, {
        method,
        headers: { 'X-API-KEY': options.adminKey, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? null : JSON.stringify(body),
        signal: AbortSignal.timeout(options.timeoutMs ?? 10_000),
      })
    } catch (error) {
      throw new ImprunError('internal', `the APISIX Admin API at ${base} is unreachable: ${error instanceof Error ? error.message : String(error)}`, {
        status: 502,
        retryable: true,
        cause: error,
      })
    }
    const text = await response.text()
    let parsed: unknown = text
    try {
      parsed = text === '' ? null : JSON.parse(text)
    } catch {
      // not JSON: keep the text
    }
    return { status: response.status, body: parsed }
  }

  const failure = (method: string, path: string, status: number, body: unknown): ImprunError => {
    const said =
      typeof body === 'object' && body !== null
        ? String((body as { error_msg?: unknown; message?: unknown }).error_msg ?? (body as { message?: unknown }).message ?? JSON.stringify(body))
        : String(body)
    const code: ErrorCode = status === 401 ? 'unauthorized' : status === 403 ? 'forbidden' : status === 404 ? 'not_found' : status === 400 ? 'bad_request' : 'internal'
    return new ImprunError(code, `APISIX refused ${method} /apisix/admin/${path}: ${said}`, {
      status: code === 'internal' ? 502 : undefined,
      retryable: status >= 500 || status === 429,
      details: { apisixStatus: status, path },
    })
  }

  const call = async (method: string, path: string, body?: unknown): Promise<unknown> => {
    const result = await request(method, path, body)
    if (method === 'DELETE' && result.status === 404) return null
    if (result.status < 200 || result.status > 299) throw failure(method, path, result.status, result.body)
    return result.body
  }

  /** Every object of a type (v3 list format, paged), or only one gateway's. */
  const list = async (type: ResourceType, gatewayId?: string): Promise<AdminEntry[]> => {
    const entries: AdminEntry[] = []
    for (let page = 1; ; page++) {
      const body = (await call('GET', `${type}?page=${page}&page_size=500`)) as { total?: number; list?: unknown } | null
      // An empty list comes back as `{}` from some versions (an empty Lua table).
      const items = Array.isArray(body?.list) ? (body.list as Array<{ key?: string; value?: Record<string, unknown> }>) : []
      for (const item of items) {
        const value = item.value ?? {}
        const id = String(type === 'consumers' ? value.username : (value.id ?? item.key?.split('/').pop() ?? ''))
        const labels = (value.labels ?? {}) as Record<string, unknown>
        if (typeof labels[adminLabel] !== 'string') continue
        if (gatewayId !== undefined && labels[adminLabel] !== gatewayId) continue
        entries.push({ id, value })
      }
      if (items.length < 500 || entries.length >= (body?.total ?? 0)) break
    }
    return entries
  }

  // APISIX stores what it validated, defaults filled in (route `status`, plugin defaults …), so
  // "the same" means: every field we would PUT already has that value.
  const same = (live: Record<string, unknown>, wanted: object): boolean => holds(live, wanted)

  return {
    kind: 'apisix-admin',
    async sync(desired: GatewayEdgeState) {
      const objects = apisixAdminObjects(desired, options)
      const wanted: Array<[ResourceType, Array<{ id: string; body: object }>]> = [
        ['upstreams', objects.upstreams.map((upstream) => ({ id: upstream.id, body: upstream }))],
        ['plugin_configs', objects.plugin_configs.map((config) => ({ id: config.id, body: config }))],
        ['routes', objects.routes.map((route) => ({ id: route.id, body: route }))],
        ['consumers', objects.consumers.map((consumer) => ({ id: consumer.username, body: consumer }))],
      ]
      const current = new Map<ResourceType, AdminEntry[]>()
      for (const [type] of wanted) current.set(type, await list(type, desired.gatewayId))
      for (const [type, items] of wanted) {
        const live = new Map(current.get(type)!.map((entry) => [entry.id, entry.value]))
        for (const item of items) {
          const existing = live.get(item.id)
          if (existing && same(existing, item.body)) continue
          if (type === 'consumers') await call('PUT', 'consumers', item.body)
          else await call('PUT', `${type}/${encodeURIComponent(item.id)}`, item.body)
        }
      }
      // Deletions: routes and consumers first, then what routes referenced.
      for (const type of ['routes', 'consumers', 'plugin_configs', 'upstreams'] as const) {
        const keep = new Set(wanted.find(([candidate]) => candidate === type)![1].map((item) => item.id))
        for (const entry of current.get(type)!) if (!keep.has(entry.id)) await call('DELETE', `${type}/${encodeURIComponent(entry.id)}`)
      }
    },
    async remove(gatewayId) {
      for (const type of ['routes', 'consumers', 'plugin_configs', 'upstreams'] as const) {
        for (const entry of await list(type, gatewayId)) await call('DELETE', `${type}/${encodeURIComponent(entry.id)}`)
      }
    },
    async listGateways() {
      const gateways = new Set<string>()
      for (const type of ['routes', 'upstreams', 'plugin_configs', 'consumers'] as const) {
        for (const entry of await list(type)) gateways.add(String((entry.value.labels as Record<string, unknown>)[adminLabel]))
      }
      return [...gateways]
    },
  }
}

/** True when every field of `wanted` has that value in `live` (arrays: same length, element-wise). */
function holds(live: unknown, wanted: unknown): boolean {
  if (Array.isArray(wanted)) return Array.isArray(live) && live.length === wanted.length && wanted.every((item, index) => holds(live[index], item))
  if (typeof wanted === 'object' && wanted !== null) {
    if (typeof live !== 'object' || live === null || Array.isArray(live)) return false
    return Object.entries(wanted).every(([key, value]) => value === undefined || holds((live as Record<string, unknown>)[key], value))
  }
  return live === wanted
}
