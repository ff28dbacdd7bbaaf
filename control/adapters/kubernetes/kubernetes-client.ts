/**
 * A small generic Kubernetes client over @kubernetes/client-node's `KubernetesObjectApi` (which
 * owns authentication, TLS and API discovery): read / list / create / delete, and an idempotent
 * `apply` = read, then create when missing, nothing when the live object already holds every
 * field we set, else a JSON merge patch carrying the read `resourceVersion` — so a concurrent
 * writer makes the apiserver answer 409 and we retry from a fresh read.
 *
 * Every failure becomes an ImprunError whose message carries the Kubernetes `Status.message`
 * (403 → `forbidden`, a group/kind the apiserver does not serve → `not_found`, 409 after the
 * retries → `conflict`, 422 → `bad_request`, 5xx / network → `internal`, retryable).
 */
import { ApiException, HttpMethod, KubeConfig, KubernetesObjectApi, PatchStrategy, type KubernetesObject as ClientObject, type ResponseContext } from '@kubernetes/client-node'
import { ImprunError, type ErrorCode } from '../../errors.ts'
import type { KubernetesObject } from './kubernetes-manifests.ts'

export interface ObjectReference {
  apiVersion: string
  kind: string
  name: string
  namespace?: string
}

export interface ApplyResult {
  /** created, patched, or unchanged (the live object already held every field). */
  outcome: 'created' | 'patched' | 'unchanged'
  object: KubernetesObject
}

export interface KubernetesClient {
  read(reference: ObjectReference): Promise<KubernetesObject | null>
  list(apiVersion: string, kind: string, options?: { namespace?: string; labelSelector?: string }): Promise<KubernetesObject[]>
  create(object: KubernetesObject): Promise<KubernetesObject>
  apply(object: KubernetesObject): Promise<ApplyResult>
  /** Deletes; false when it was already gone. Dependents are removed in the background. */
  delete(reference: ObjectReference): Promise<boolean>
}

export interface KubernetesClientOptions {
  kubeConfig: KubeConfig
  /** Recorded as the field manager of every write (default `imprun`). */
  fieldManager?: string
  /** Attempts of one apply when writes conflict (default 5). */
  maxConflictRetries?: number
}

/** Loads a kubeconfig: a file, the in-cluster service account, or the default lookup. */
export function loadKubeConfig(options: { file?: string; inCluster?: boolean } = {}): KubeConfig {
  const config = new KubeConfig()
  if (options.file) config.loadFromFile(options.file)
  else if (options.inCluster) config.loadFromCluster()
  else config.loadFromDefault()
  return config
}

/** A kubeconfig for one API server URL (tests, and `--kube-server`). */
export function kubeConfigForServer(server: string, token?: string): KubeConfig {
  const config = new KubeConfig()
  config.loadFromOptions({
    // client-node refuses plain http unless TLS verification is off (there is no TLS to verify).
    clusters: [{ name: 'imprun', server, skipTLSVerify: server.startsWith('http:') }],
    users: [{ name: 'imprun', ...(token ? { token } : {}) }],
    contexts: [{ name: 'imprun', cluster: 'imprun', user: 'imprun' }],
    currentContext: 'imprun',
  })
  return config
}

/**
 * client-node's generic object API, kept for what it does well (authentication, TLS, API
 * discovery, URL building) but with bodies in wire form both ways: its typed models rename
 * fields (`default` → `_default`, `from` → `_from`) and silently drop wire-form fields handed to
 * them, so objects go out and come back as plain JSON here.
 */
class WireObjectApi extends KubernetesObjectApi {
  async served(apiVersion: string, kind: string): Promise<void> {
    let found: unknown
    try {
      found = await this.resource(apiVersion, kind)
    } catch (error) {
      throw missingApi(apiVersion, kind, error)
    }
    if (!found) throw missingApi(apiVersion, kind, null)
  }

  async send(
    method: HttpMethod,
    target: KubernetesObject,
    action: 'create' | 'delete' | 'patch' | 'read' | 'list',
    options: { query?: Record<string, string | undefined>; body?: unknown; contentType?: string } = {},
  ): Promise<KubernetesObject> {
    const path = await this.specUriPath(structuredClone(target) as unknown as ClientObject, action)
    const context = this.configuration.baseServer.makeRequestContext(path, method)
    context.setHeaderParam('Accept', 'application/json')
    for (const [name, value] of Object.entries(options.query ?? {})) if (value !== undefined) context.setQueryParam(name, value)
    if (options.body !== undefined) {
      context.setHeaderParam('Content-Type', options.contentType ?? 'application/json')
      context.setBody(JSON.stringify(options.body))
    }
    return (await this.requestPromise(context)) as unknown as KubernetesObject
  }

  protected override async processResponse<T extends ClientObject>(response: ResponseContext): Promise<T> {
    const text = await response.body.text()
    let body: unknown = text
    try {
      body = text === '' ? {} : JSON.parse(text)
    } catch {
      // plain text (e.g. "404 page not found"): keep the text
    }
    if (response.httpStatusCode >= 200 && response.httpStatusCode <= 299) return body as T
    throw new ApiException(response.httpStatusCode, 'Unsuccessful HTTP Request', body, response.headers)
  }
}

export function createKubernetesClient(options: KubernetesClientOptions): KubernetesClient {
  const api = options.kubeConfig.makeApiClient(WireObjectApi)
  const fieldManager = options.fieldManager ?? 'imprun'
  const maxAttempts = options.maxConflictRetries ?? 5
  const header = (reference: ObjectReference): KubernetesObject => ({ apiVersion: reference.apiVersion, kind: reference.kind, metadata: metadataOf(reference) })

  const read = async (reference: ObjectReference): Promise<KubernetesObject | null> => {
    await api.served(reference.apiVersion, reference.kind)
    try {
      return await api.send(HttpMethod.GET, header(reference), 'read')
    } catch (error) {
      if (statusOf(error) === 404) return null
      throw kubernetesError(error, 'read', reference)
    }
  }

  const create = async (object: KubernetesObject): Promise<KubernetesObject> => {
    await api.served(object.apiVersion, object.kind)
    try {
      return await api.send(HttpMethod.POST, object, 'create', { body: object, query: { fieldManager } })
    } catch (error) {
      throw kubernetesError(error, 'create', referenceOf(object))
    }
  }

  return {
    read,
    create,
    async list(apiVersion, kind, listOptions = {}) {
      await api.served(apiVersion, kind)
      const target: KubernetesObject = { apiVersion, kind, metadata: { name: '', ...(listOptions.namespace ? { namespace: listOptions.namespace } : {}) } }
      try {
        const result = (await api.send(HttpMethod.GET, target, 'list', { query: { labelSelector: listOptions.labelSelector } })) as unknown as { items?: KubernetesObject[] }
        return (result.items ?? []).map((item) => ({ ...item, apiVersion, kind }))
      } catch (error) {
        throw kubernetesError(error, 'list', { apiVersion, kind, name: '', ...(listOptions.namespace ? { namespace: listOptions.namespace } : {}) })
      }
    },
    async apply(object) {
      const reference = referenceOf(object)
      let lastConflict: unknown = null
      for (let attempt = 1; attempt <= maxAttempts; attempt++) {
        const live = await read(reference)
        if (!live) {
          try {
            return { outcome: 'created', object: await create(object) }
          } catch (error) {
            // Someone created it between our read and our create: read again.
            if (error instanceof ImprunError && error.details?.kubernetesStatus === 409) {
              lastConflict = error
              continue
            }
            throw error
          }
        }
        if (covers(live, object)) return { outcome: 'unchanged', object: live }
        const patch = structuredClone(object)
        patch.metadata.resourceVersion = live.metadata.resourceVersion
        try {
          const patched = await api.send(HttpMethod.PATCH, object, 'patch', { body: patch, contentType: PatchStrategy.MergePatch, query: { fieldManager } })
          return { outcome: 'patched', object: patched }
        } catch (error) {
          if (statusOf(error) === 409) {
            // The object changed since our read (resourceVersion precondition): read it again.
            lastConflict = error
            await new Promise((resolve) => setTimeout(resolve, 20 * attempt))
            continue
          }
          throw kubernetesError(error, 'patch', reference)
        }
      }
      throw kubernetesError(lastConflict, 'apply', reference, `gave up after ${maxAttempts} conflicting writes`)
    },
    async delete(reference) {
      await api.served(reference.apiVersion, reference.kind)
      try {
        await api.send(HttpMethod.DELETE, header(reference), 'delete', { query: { propagationPolicy: 'Background' } })
        return true
      } catch (error) {
        if (statusOf(error) === 404) return false
        throw kubernetesError(error, 'delete', reference)
      }
    },
  }
}

/** True when every field `desired` sets has that value in `live` (arrays: same length, element-wise). */
export function covers(live: unknown, desired: unknown): boolean {
  if (Array.isArray(desired)) {
    return Array.isArray(live) && live.length === desired.length && desired.every((item, index) => covers(live[index], item))
  }
  if (typeof desired === 'object' && desired !== null) {
    if (typeof live !== 'object' || live === null || Array.isArray(live)) return false
    const liveRecord = live as Record<string, unknown>
    return Object.entries(desired).every(([key, value]) => value === undefined || covers(liveRecord[key], value))
  }
  return live === desired
}

function metadataOf(reference: ObjectReference): { name: string; namespace?: string } {
  return reference.namespace ? { name: reference.name, namespace: reference.namespace } : { name: reference.name }
}

export function referenceOf(object: KubernetesObject): ObjectReference {
  return {
    apiVersion: object.apiVersion,
    kind: object.kind,
    name: object.metadata.name,
    ...(object.metadata.namespace ? { namespace: object.metadata.namespace } : {}),
  }
}

function statusOf(error: unknown): number | null {
  return error instanceof ApiException && typeof error.code === 'number' ? error.code : null
}

/** The apiserver's own words: `Status.message`, or the body text. */
function kubernetesMessage(error: unknown): string {
  if (error instanceof ApiException) {
    const body: unknown = error.body
    if (typeof body === 'object' && body !== null && typeof (body as { message?: unknown }).message === 'string') return (body as { message: string }).message
    if (typeof body === 'string' && body.trim() !== '') return body.trim()
    return `HTTP ${String(error.code)}`
  }
  return error instanceof Error ? error.message : String(error)
}

function describe(reference: ObjectReference): string {
  const name = reference.name ? (reference.namespace ? `${reference.namespace}/${reference.name}` : reference.name) : reference.namespace ? `in ${reference.namespace}` : ''
  return `${reference.kind}${name ? ` ${name}` : ''}`
}

export function kubernetesError(error: unknown, verb: string, reference: ObjectReference, note?: string): ImprunError {
  if (error instanceof ImprunError) return error
  const status = statusOf(error)
  const message = kubernetesMessage(error)
  const code: ErrorCode =
    status === 403 ? 'forbidden' : status === 401 ? 'unauthorized' : status === 404 ? 'not_found' : status === 409 ? 'conflict' : status === 422 || status === 400 ? 'bad_request' : 'internal'
  const retryable = status === null || status === 409 || status === 429 || status >= 500
  const prefix = status === null ? 'the Kubernetes API is unreachable' : `Kubernetes refused to ${verb} ${describe(reference)}`
  return new ImprunError(code, `${prefix}: ${message}${note ? ` (${note})` : ''}`, {
    status: code === 'internal' ? 502 : undefined,
    retryable,
    details: { kubernetesStatus: status, verb, ...reference },
    cause: error,
  })
}

function missingApi(apiVersion: string, kind: string, error: unknown): ImprunError {
  const status = statusOf(error)
  if (status !== null && status !== 404) return kubernetesError(error, 'discover', { apiVersion, kind, name: '' })
  if (status === null && error !== null) return kubernetesError(error, 'discover', { apiVersion, kind, name: '' })
  const served = error === null ? 'serves the group but not the kind' : `answered ${kubernetesMessage(error)}`
  const hint = apiVersion.startsWith('apisix.apache.org/') ? ' — install the APISIX Ingress Controller CRDs' : ''
  return new ImprunError('not_found', `the Kubernetes API does not serve ${kind} in ${apiVersion}: the apiserver ${served}${hint}`, {
    retryable: true,
    details: { kubernetesStatus: 404, apiVersion, kind },
    cause: error ?? undefined,
  })
}
