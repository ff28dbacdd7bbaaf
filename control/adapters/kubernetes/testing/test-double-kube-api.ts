/**
 * A Kubernetes API server test double on a real loopback socket, for exercising the Kubernetes
 * adapters through @kubernetes/client-node without a cluster. It does what the adapters rely on
 * and refuses what a real apiserver refuses:
 *
 * - discovery (`/api/v1`, `/apis/<group>/<version>`; an uninstalled CRD group is a plain-text
 *   `404 page not found`, as the apiserver answers);
 * - create / read / list (equality label selectors) / JSON merge patch / update / delete, with
 *   `resourceVersion` optimistic concurrency (a stale version is a 409 Conflict with the
 *   apiserver's message), `generation` bumped on spec changes, 409 AlreadyExists, 404 NotFound,
 *   422 for an invalid name or a changed Deployment selector, 415 for other patch types;
 * - namespaces: creating inside a missing one is a 404, inside a terminating one a 403;
 *   deleting one marks it Terminating and removes it with everything in it shortly after;
 * - Deployments get a status as if their pods came up (unless told otherwise);
 * - RBAC refusals on demand (`forbid`), a concurrent writer on demand (`interfere`).
 * Errors are `Status` objects (`kind: Status`, `reason`, `message`, `code`).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

type JsonObject = Record<string, unknown>

export interface StoredObject extends JsonObject {
  apiVersion: string
  kind: string
  metadata: JsonObject & { name: string; namespace?: string; resourceVersion?: string; generation?: number; labels?: Record<string, string> }
}

interface ResourceType {
  group: string
  version: string
  kind: string
  plural: string
  namespaced: boolean
}

const builtIn: ResourceType[] = [
  { group: '', version: 'v1', kind: 'Namespace', plural: 'namespaces', namespaced: false },
  { group: '', version: 'v1', kind: 'ServiceAccount', plural: 'serviceaccounts', namespaced: true },
  { group: '', version: 'v1', kind: 'ResourceQuota', plural: 'resourcequotas', namespaced: true },
  { group: '', version: 'v1', kind: 'LimitRange', plural: 'limitranges', namespaced: true },
  { group: '', version: 'v1', kind: 'Secret', plural: 'secrets', namespaced: true },
  { group: '', version: 'v1', kind: 'Service', plural: 'services', namespaced: true },
  { group: '', version: 'v1', kind: 'ConfigMap', plural: 'configmaps', namespaced: true },
  { group: 'apps', version: 'v1', kind: 'Deployment', plural: 'deployments', namespaced: true },
  { group: 'autoscaling', version: 'v2', kind: 'HorizontalPodAutoscaler', plural: 'horizontalpodautoscalers', namespaced: true },
  { group: 'networking.k8s.io', version: 'v1', kind: 'NetworkPolicy', plural: 'networkpolicies', namespaced: true },
]

const apisixCrds: ResourceType[] = [
  { group: 'apisix.apache.org', version: 'v2', kind: 'ApisixRoute', plural: 'apisixroutes', namespaced: true },
  { group: 'apisix.apache.org', version: 'v2', kind: 'ApisixPluginConfig', plural: 'apisixpluginconfigs', namespaced: true },
  { group: 'apisix.apache.org', version: 'v2', kind: 'ApisixUpstream', plural: 'apisixupstreams', namespaced: true },
  { group: 'apisix.apache.org', version: 'v2', kind: 'ApisixConsumer', plural: 'apisixconsumers', namespaced: true },
]

export interface ForbidRule {
  verb?: string
  /** Plural resource name, e.g. `namespaces`, `apisixroutes`. */
  resource?: string
  namespace?: string
}

export interface TestDoubleKubeApiOptions {
  /** Serve the apisix.apache.org/v2 CRDs (default true). */
  apisixCrds?: boolean
  /** Deployments report available replicas right away (default true). */
  deploymentsBecomeAvailable?: boolean
  /** How long a deleted namespace stays Terminating (default 30 ms). */
  namespaceTerminationMs?: number
  /** The user named in RBAC refusals. */
  user?: string
}

export interface RecordedRequest {
  method: string
  path: string
  status: number
}

export class TestDoubleKubeApi {
  url = ''
  readonly requests: RecordedRequest[] = []
  readonly objects = new Map<string, StoredObject>()
  private readonly options: Required<TestDoubleKubeApiOptions>
  private server: Server | null = null
  private resourceVersion = 100
  private readonly forbidden: ForbidRule[] = []
  private readonly interference = new Map<string, number>()
  private readonly timers = new Set<NodeJS.Timeout>()
  deploymentsBecomeAvailable: boolean

  constructor(options: TestDoubleKubeApiOptions = {}) {
    this.options = {
      apisixCrds: options.apisixCrds ?? true,
      deploymentsBecomeAvailable: options.deploymentsBecomeAvailable ?? true,
      namespaceTerminationMs: options.namespaceTerminationMs ?? 30,
      user: options.user ?? 'system:serviceaccount:imprun:imprun-control',
    }
    this.deploymentsBecomeAvailable = this.options.deploymentsBecomeAvailable
  }

  async start(): Promise<this> {
    this.server = createServer((request, response) => {
      void this.handle(request, response).catch((error: unknown) => {
        this.send(response, request, 500, status(500, 'InternalError', String(error)))
      })
    })
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve))
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`
    return this
  }

  async close(): Promise<void> {
    for (const timer of this.timers) clearTimeout(timer)
    this.server?.closeAllConnections()
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()))
  }

  /** Answers 403 to matching requests until `allow()`. */
  forbid(rule: ForbidRule): void {
    this.forbidden.push(rule)
  }

  allow(): void {
    this.forbidden.length = 0
  }

  /** The next `times` reads of this object are followed by another writer's update. */
  interfere(kind: string, namespace: string | undefined, name: string, times = 1): void {
    this.interference.set(`${kind}|${namespace ?? ''}|${name}`, times)
  }

  get(kind: string, namespace: string | undefined, name: string): StoredObject | undefined {
    return this.objects.get(objectKey(kind, namespace, name))
  }

  list(kind?: string, namespace?: string): StoredObject[] {
    return [...this.objects.values()].filter((object) => (kind === undefined || object.kind === kind) && (namespace === undefined || object.metadata.namespace === namespace))
  }

  /** Writes that changed something (not reads, not discovery). */
  writes(): RecordedRequest[] {
    return this.requests.filter((request) => request.method !== 'GET' && request.status < 300)
  }

  // --- HTTP ------------------------------------------------------------------------------------

  private types(): ResourceType[] {
    return this.options.apisixCrds ? [...builtIn, ...apisixCrds] : builtIn
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', 'http://double')
    const body = await readBody(request)
    const segments = url.pathname.split('/').filter(Boolean).map(decodeURIComponent)
    let group: string
    let version: string
    let rest: string[]
    if (segments[0] === 'api' && segments[1] === 'v1') {
      group = ''
      version = 'v1'
      rest = segments.slice(2)
    } else if (segments[0] === 'apis' && segments.length >= 3) {
      group = segments[1]!
      version = segments[2]!
      rest = segments.slice(3)
    } else if (url.pathname === '/api') {
      return this.send(response, request, 200, { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [] })
    } else {
      return this.sendText(response, request, 404, '404 page not found')
    }
    const groupTypes = this.types().filter((type) => type.group === group && type.version === version)
    if (groupTypes.length === 0) return this.sendText(response, request, 404, '404 page not found')
    if (rest.length === 0 && request.method === 'GET') {
      return this.send(response, request, 200, {
        kind: 'APIResourceList',
        apiVersion: 'v1',
        groupVersion: group ? `${group}/${version}` : version,
        resources: groupTypes.map((type) => ({
          name: type.plural,
          singularName: type.kind.toLowerCase(),
          namespaced: type.namespaced,
          kind: type.kind,
          verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'],
        })),
      })
    }
    let namespace: string | undefined
    if (rest[0] === 'namespaces' && rest.length >= 3) {
      namespace = rest[1]
      rest = rest.slice(2)
    }
    const [plural, name, subresource] = rest
    const type = groupTypes.find((candidate) => candidate.plural === plural)
    if (!type || subresource !== undefined) return this.sendText(response, request, 404, '404 page not found')
    const method = request.method ?? 'GET'
    const verb = method === 'GET' ? (name ? 'get' : 'list') : method === 'POST' ? 'create' : method === 'PATCH' ? 'patch' : method === 'PUT' ? 'update' : method === 'DELETE' ? 'delete' : 'unknown'
    const rule = this.forbidden.find((candidate) => (candidate.verb ?? verb) === verb && (candidate.resource ?? type.plural) === type.plural && (candidate.namespace === undefined || candidate.namespace === namespace))
    if (rule) {
      const where = namespace ? `in the namespace "${namespace}"` : 'at the cluster scope'
      const what = `${type.plural}${type.group ? `.${type.group}` : ''}${name ? ` "${name}"` : ''}`
      return this.send(response, request, 403, status(403, 'Forbidden', `${what} is forbidden: User "${this.options.user}" cannot ${verb} resource "${type.plural}" in API group "${type.group}" ${where}`, { kind: type.plural, ...(name ? { name } : {}) }))
    }
    const qualified = `${type.plural}${type.group ? `.${type.group}` : ''}`
    if (type.namespaced && namespace === undefined && verb !== 'list') return this.sendText(response, request, 404, '404 page not found')

    switch (verb) {
      case 'list': {
        const selector = parseSelector(url.searchParams.get('labelSelector'))
        const items = this.list(type.kind, namespace).filter((object) => selector(object.metadata.labels ?? {}))
        return this.send(response, request, 200, {
          kind: `${type.kind}List`,
          apiVersion: group ? `${group}/${version}` : version,
          metadata: { resourceVersion: String(this.resourceVersion) },
          items: items.map((item) => structuredClone(item)),
        })
      }
      case 'get': {
        const current = this.get(type.kind, namespace, name!)
        if (!current) return this.send(response, request, 404, status(404, 'NotFound', `${qualified} "${name}" not found`, { name, kind: type.plural }))
        this.send(response, request, 200, current)
        this.maybeInterfere(current)
        return
      }
      case 'create': {
        const object = parseObject(body)
        if (!object) return this.send(response, request, 400, status(400, 'BadRequest', 'the body is not a JSON object'))
        const objectName = object.metadata?.name
        if (typeof objectName !== 'string' || !validName(type.kind, objectName)) {
          return this.send(response, request, 422, status(422, 'Invalid', `${type.kind} "${String(objectName)}" is invalid: metadata.name: Invalid value: "${String(objectName)}": a lowercase RFC 1123 name is required`))
        }
        if (namespace !== undefined) {
          const owner = this.get('Namespace', undefined, namespace)
          if (!owner) return this.send(response, request, 404, status(404, 'NotFound', `namespaces "${namespace}" not found`, { name: namespace, kind: 'namespaces' }))
          if (owner.metadata.deletionTimestamp) {
            return this.send(response, request, 403, status(403, 'Forbidden', `${qualified} "${objectName}" is forbidden: unable to create new content in namespace ${namespace} because it is being terminated`))
          }
        }
        if (this.get(type.kind, namespace, objectName)) {
          return this.send(response, request, 409, status(409, 'AlreadyExists', `${qualified} "${objectName}" already exists`, { name: objectName, kind: type.plural }))
        }
        const stored: StoredObject = {
          ...object,
          apiVersion: group ? `${group}/${version}` : version,
          kind: type.kind,
          metadata: {
            ...object.metadata,
            name: objectName,
            ...(namespace ? { namespace } : {}),
            uid: `uid-${this.resourceVersion + 1}`,
            creationTimestamp: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
            resourceVersion: String(++this.resourceVersion),
            generation: 1,
          },
        }
        delete stored.metadata.deletionTimestamp
        if (type.kind === 'Namespace') stored.status = { phase: 'Active' }
        this.simulateControllers(stored)
        this.objects.set(objectKey(type.kind, namespace, objectName), stored)
        return this.send(response, request, 201, stored)
      }
      case 'patch':
      case 'update': {
        const current = this.get(type.kind, namespace, name!)
        if (!current) return this.send(response, request, 404, status(404, 'NotFound', `${qualified} "${name}" not found`, { name, kind: type.plural }))
        const contentType = (request.headers['content-type'] ?? '').split(';')[0]!.trim()
        if (verb === 'patch' && contentType !== 'application/merge-patch+json') {
          return this.send(response, request, 415, status(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/merge-patch+json (this double); got ${contentType}`))
        }
        const patch = parseObject(body)
        if (!patch) return this.send(response, request, 400, status(400, 'BadRequest', 'the body is not a JSON object'))
        const sentVersion = patch.metadata?.resourceVersion
        if (sentVersion !== undefined && sentVersion !== current.metadata.resourceVersion) {
          return this.send(response, request, 409, status(409, 'Conflict', `Operation cannot be fulfilled on ${qualified} "${name}": the object has been modified; please apply your changes to the latest version and try again`, { name, kind: type.plural }))
        }
        const next = (verb === 'patch' ? mergePatch(structuredClone(current), patch) : { ...patch, status: current.status }) as StoredObject
        next.apiVersion = current.apiVersion
        next.kind = current.kind
        next.metadata = { ...next.metadata, name: current.metadata.name, uid: current.metadata.uid, creationTimestamp: current.metadata.creationTimestamp, resourceVersion: current.metadata.resourceVersion, generation: current.metadata.generation }
        if (current.metadata.namespace) next.metadata.namespace = current.metadata.namespace
        if (current.metadata.deletionTimestamp) next.metadata.deletionTimestamp = current.metadata.deletionTimestamp
        if (type.kind === 'Deployment' && JSON.stringify((next.spec as JsonObject | undefined)?.selector) !== JSON.stringify((current.spec as JsonObject | undefined)?.selector)) {
          return this.send(response, request, 422, status(422, 'Invalid', `Deployment.apps "${name}" is invalid: spec.selector: Invalid value: field is immutable`))
        }
        if (JSON.stringify(next) !== JSON.stringify(current)) {
          if (JSON.stringify(next.spec) !== JSON.stringify(current.spec)) next.metadata.generation = (current.metadata.generation ?? 1) + 1
          next.metadata.resourceVersion = String(++this.resourceVersion)
          this.simulateControllers(next)
          this.objects.set(objectKey(type.kind, namespace, name!), next)
        }
        return this.send(response, request, 200, this.get(type.kind, namespace, name!))
      }
      case 'delete': {
        const current = this.get(type.kind, namespace, name!)
        if (!current) return this.send(response, request, 404, status(404, 'NotFound', `${qualified} "${name}" not found`, { name, kind: type.plural }))
        if (type.kind === 'Namespace') {
          if (!current.metadata.deletionTimestamp) {
            current.metadata.deletionTimestamp = new Date().toISOString()
            current.metadata.resourceVersion = String(++this.resourceVersion)
            current.status = { phase: 'Terminating' }
            const timer = setTimeout(() => {
              this.timers.delete(timer)
              for (const [key, object] of this.objects) if (object.metadata.namespace === name) this.objects.delete(key)
              this.objects.delete(objectKey('Namespace', undefined, name!))
            }, this.options.namespaceTerminationMs)
            this.timers.add(timer)
          }
          return this.send(response, request, 200, current)
        }
        this.objects.delete(objectKey(type.kind, namespace, name!))
        return this.send(response, request, 200, status(200, '', '', { name, kind: type.plural }, 'Success'))
      }
      default:
        return this.send(response, request, 405, status(405, 'MethodNotAllowed', `${method} is not supported`))
    }
  }

  private maybeInterfere(object: StoredObject): void {
    const key = `${object.kind}|${object.metadata.namespace ?? ''}|${object.metadata.name}`
    const remaining = this.interference.get(key) ?? 0
    if (remaining <= 0) return
    this.interference.set(key, remaining - 1)
    // Another writer updates the object right after our client read it.
    object.metadata.annotations = { ...(object.metadata.annotations as Record<string, string> | undefined), 'other-writer/touched': String(remaining) }
    object.metadata.resourceVersion = String(++this.resourceVersion)
  }

  private simulateControllers(object: StoredObject): void {
    if (object.kind !== 'Deployment') return
    const replicas = ((object.spec as JsonObject | undefined)?.replicas as number | undefined) ?? 1
    const up = this.deploymentsBecomeAvailable ? replicas : 0
    object.status = {
      observedGeneration: object.metadata.generation,
      replicas,
      updatedReplicas: replicas,
      readyReplicas: up,
      availableReplicas: up,
      conditions: [{ type: 'Available', status: up > 0 ? 'True' : 'False', reason: up > 0 ? 'MinimumReplicasAvailable' : 'MinimumReplicasUnavailable' }],
    }
  }

  private send(response: ServerResponse, request: IncomingMessage, code: number, body: unknown): void {
    this.requests.push({ method: request.method ?? 'GET', path: request.url ?? '/', status: code })
    response.writeHead(code, { 'content-type': 'application/json' })
    response.end(JSON.stringify(body))
  }

  private sendText(response: ServerResponse, request: IncomingMessage, code: number, text: string): void {
    this.requests.push({ method: request.method ?? 'GET', path: request.url ?? '/', status: code })
    response.writeHead(code, { 'content-type': 'text/plain; charset=utf-8' })
    response.end(`${text}\n`)
  }
}

function objectKey(kind: string, namespace: string | undefined, name: string): string {
  return `${kind}|${namespace ?? ''}|${name}`
}

function status(code: number, reason: string, message: string, details?: JsonObject, outcome: 'Failure' | 'Success' = 'Failure'): JsonObject {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: outcome, message, reason, ...(details ? { details } : {}), code }
}

function validName(kind: string, name: string): boolean {
  if (kind === 'Namespace') return /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(name) && name.length <= 63
  if (kind === 'Service') return /^[a-z]([-a-z0-9]*[a-z0-9])?$/.test(name) && name.length <= 63
  return /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(name) && name.length <= 253
}

function parseSelector(text: string | null): (labels: Record<string, string>) => boolean {
  if (!text) return () => true
  const terms = text.split(',').map((term) => term.trim()).filter(Boolean)
  return (labels) =>
    terms.every((term) => {
      const notEqual = term.split('!=')
      if (notEqual.length === 2) return labels[notEqual[0]!] !== notEqual[1]
      const equal = term.split(/==?/)
      if (equal.length === 2) return labels[equal[0]!] === equal[1]
      return term.startsWith('!') ? !(term.slice(1) in labels) : term in labels
    })
}

/** RFC 7386 JSON merge patch. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) return structuredClone(patch)
  const result: JsonObject = typeof target === 'object' && target !== null && !Array.isArray(target) ? (target as JsonObject) : {}
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key]
    else result[key] = mergePatch(result[key], value)
  }
  return result
}

function parseObject(body: string): (JsonObject & { metadata?: JsonObject & { name?: unknown; resourceVersion?: unknown } }) | null {
  try {
    const parsed: unknown = JSON.parse(body)
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as JsonObject) : null
  } catch {
    return null
  }
}

async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of request) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}
