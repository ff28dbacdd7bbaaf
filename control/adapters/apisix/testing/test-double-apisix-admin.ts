/**
 * An APISIX Admin API (v3) test double on a real loopback socket. It keeps routes, upstreams,
 * plugin_configs and consumers in memory and refuses what APISIX refuses, with APISIX's error
 * shapes (`{"error_msg": …}` for 400/401, `{"message": "Key not found"}` for 404):
 *
 * - a missing or wrong `X-API-KEY` → 401 `failed to check token`;
 * - a body that fails the published object schema or a plugin schema (when the shared contracts
 *   folder is present) → 400 `invalid configuration: …` / `failed to check the configuration of
 *   plugin …`;
 * - a route naming an upstream_id / plugin_config_id that does not exist → 400;
 * - deleting an upstream or plugin_config a route still uses → 400;
 * - two consumers with the same key-auth key → 400.
 * Stored values get `create_time` / `update_time` and the route default `status: 1`, as APISIX.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { contractsDirectory, loadContractSchemas, type ContractSchemas } from '../../contracts/contract-schemas.ts'

type JsonObject = Record<string, unknown>
type ResourceType = 'routes' | 'upstreams' | 'plugin_configs' | 'consumers'

const schemaKind: Record<ResourceType, 'route' | 'upstream' | 'plugin_config' | 'consumer'> = {
  routes: 'route',
  upstreams: 'upstream',
  plugin_configs: 'plugin_config',
  consumers: 'consumer',
}

export interface RecordedAdminRequest {
  method: string
  path: string
  status: number
}

export class TestDoubleApisixAdmin {
  url = ''
  readonly adminKey: string
  readonly requests: RecordedAdminRequest[] = []
  readonly store: Record<ResourceType, Map<string, { value: JsonObject; createdIndex: number; modifiedIndex: number }>> = {
    routes: new Map(),
    upstreams: new Map(),
    plugin_configs: new Map(),
    consumers: new Map(),
  }
  /** Validation problems of the last refused write (for test messages). */
  private schemas: ContractSchemas | null
  private server: Server | null = null
  private index = 1000
  /** Answer every request with 503 while set (APISIX/etcd down). */
  unavailable = false

  constructor(options: { adminKey?: string; contractsDirectory?: string | null } = {}) {
    this.adminKey = options.adminKey ?? 'test-admin-key'
    const directory = options.contractsDirectory === undefined ? contractsDirectory() : options.contractsDirectory
    this.schemas = directory ? loadContractSchemas(directory) : null
  }

  get validatesSchemas(): boolean {
    return this.schemas !== null
  }

  async start(): Promise<this> {
    this.server = createServer((request, response) => {
      void this.handle(request, response).catch((error: unknown) => this.send(request, response, 500, { error_msg: String(error) }))
    })
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve))
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`
    return this
  }

  async close(): Promise<void> {
    this.server?.closeAllConnections()
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()))
  }

  values(type: ResourceType): JsonObject[] {
    return [...this.store[type].values()].map((entry) => entry.value)
  }

  writes(): RecordedAdminRequest[] {
    return this.requests.filter((request) => request.method !== 'GET' && request.status < 300)
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', 'http://double')
    const body = await readBody(request)
    if (this.unavailable) return this.send(request, response, 503, { error_msg: 'has no healthy etcd endpoint available' })
    if (request.headers['x-api-key'] !== this.adminKey) return this.send(request, response, 401, { error_msg: 'failed to check token' })
    const match = /^\/apisix\/admin\/(routes|upstreams|plugin_configs|consumers)(?:\/([^/]+))?$/.exec(url.pathname)
    if (!match) return this.send(request, response, 404, { error_msg: 'not found' })
    const type = match[1] as ResourceType
    const id = match[2] === undefined ? undefined : decodeURIComponent(match[2])
    const method = request.method ?? 'GET'
    const items = this.store[type]

    if (method === 'GET' && id === undefined) {
      const page = Number(url.searchParams.get('page') ?? 1)
      const size = Math.min(500, Math.max(10, Number(url.searchParams.get('page_size') ?? 500)))
      const all = [...items.entries()].sort(([left], [right]) => (left < right ? -1 : 1))
      const slice = all.slice((page - 1) * size, page * size)
      return this.send(request, response, 200, {
        total: all.length,
        list: slice.map(([key, entry]) => ({ key: `/apisix/${type}/${key}`, value: entry.value, createdIndex: entry.createdIndex, modifiedIndex: entry.modifiedIndex })),
      })
    }
    if (method === 'GET') {
      const entry = items.get(id!)
      if (!entry) return this.send(request, response, 404, { message: 'Key not found' })
      return this.send(request, response, 200, { key: `/apisix/${type}/${id}`, value: entry.value, createdIndex: entry.createdIndex, modifiedIndex: entry.modifiedIndex })
    }
    if (method === 'DELETE') {
      if (id === undefined) return this.send(request, response, 400, { error_msg: 'missing id' })
      if (!items.has(id)) return this.send(request, response, 404, { message: 'Key not found' })
      if (type === 'upstreams' || type === 'plugin_configs') {
        const field = type === 'upstreams' ? 'upstream_id' : 'plugin_config_id'
        const user = [...this.store.routes.values()].find((route) => route.value[field] === id)
        if (user) {
          const what = type === 'upstreams' ? 'upstream' : 'plugin config'
          return this.send(request, response, 400, { error_msg: `can not delete this ${what}, route [${String(user.value.id)}] is still using it now` })
        }
      }
      items.delete(id)
      return this.send(request, response, 200, { deleted: '1', key: `/apisix/${type}/${id}` })
    }
    if (method !== 'PUT') return this.send(request, response, 405, { error_msg: `${method} not supported` })

    let value: JsonObject
    try {
      const parsed: unknown = JSON.parse(body)
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object')
      value = parsed as JsonObject
    } catch {
      return this.send(request, response, 400, { error_msg: 'invalid request body: not a JSON object' })
    }
    let key: string
    if (type === 'consumers') {
      if (id !== undefined) return this.send(request, response, 400, { error_msg: 'wrong consumer id, do not need it' })
      if (typeof value.username !== 'string') return this.send(request, response, 400, { error_msg: 'invalid configuration: property "username" is required' })
      key = value.username
    } else {
      if (id === undefined) return this.send(request, response, 400, { error_msg: `missing ${schemaKind[type]} id` })
      if (value.id !== undefined && String(value.id) !== id) return this.send(request, response, 400, { error_msg: `wrong ${schemaKind[type]} id` })
      value.id = id // the Admin API copies the URL id into the body before validating
      key = id
    }
    if (this.schemas) {
      const problems = this.schemas.apisixAdmin(schemaKind[type], value)
      if (problems.length > 0) return this.send(request, response, 400, { error_msg: `invalid configuration: ${problems[0]}` })
    }
    if (type === 'routes') {
      if (typeof value.upstream_id === 'string' && !this.store.upstreams.has(value.upstream_id)) {
        return this.send(request, response, 400, { error_msg: `failed to fetch upstream info by upstream id [${value.upstream_id}], response code: 404` })
      }
      if (typeof value.plugin_config_id === 'string' && !this.store.plugin_configs.has(value.plugin_config_id)) {
        return this.send(request, response, 400, { error_msg: `failed to fetch plugin config info by plugin config id [${value.plugin_config_id}], response code: 404` })
      }
      value.status ??= 1
    }
    if (type === 'consumers') {
      const keyAuth = (value.plugins as JsonObject | undefined)?.['key-auth'] as JsonObject | undefined
      if (keyAuth?.key !== undefined) {
        const other = [...this.store.consumers.entries()].find(([username, entry]) => username !== key && ((entry.value.plugins as JsonObject | undefined)?.['key-auth'] as JsonObject | undefined)?.key === keyAuth.key)
        if (other) return this.send(request, response, 400, { error_msg: `duplicate key found with consumer: ${other[0]}` })
      }
    }
    const now = Math.floor(Date.now() / 1000)
    const existing = items.get(key)
    const stored = { ...value, create_time: existing?.value.create_time ?? now, update_time: now }
    const entry = { value: stored, createdIndex: existing?.createdIndex ?? ++this.index, modifiedIndex: ++this.index }
    items.set(key, entry)
    return this.send(request, response, existing ? 200 : 201, { key: `/apisix/${type}/${key}`, value: stored, createdIndex: entry.createdIndex, modifiedIndex: entry.modifiedIndex })
  }

  private send(request: IncomingMessage, response: ServerResponse, status: number, body: unknown): void {
    this.requests.push({ method: request.method ?? 'GET', path: request.url ?? '/', status })
    response.writeHead(status, { 'content-type': 'application/json' })
    response.end(JSON.stringify(body))
  }
}

async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of request) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}
