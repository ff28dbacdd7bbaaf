/**
 * The embedded data plane: `/{gateway}/{stage}/{function…}` (path form, for local use) and
 * `{gateway}.{domain}/{stage}/{function…}` (host form). Routing → the merged plugin chain
 * (ip-restriction, cors, key-auth with grant keys, limit-count / limit-req) → the sandbox →
 * the response, with a request id on every answer and an invocation log entry per call.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { effectivePlugins, type PluginConfigs } from '../../control/domain/plugins.ts'
import { stages } from '../../control/domain/names.ts'
import type { Stage } from '../../control/ports.ts'
import type { InvocationLog } from '../logs/invocation-log.ts'
import type { LiveFunction, LiveRegistry } from '../registry/live-registry.ts'
import type { FunctionSandbox, InvocationOutcome } from '../sandbox/function-sandbox.ts'
import { mergeResponseHeaders, type EdgeRequest, type EdgeResult } from '../edge/index.ts'

export interface EdgeChain {
  run(request: EdgeRequest): Promise<EdgeResult>
}

export interface DataPlaneOptions {
  registry: LiveRegistry
  sandbox: FunctionSandbox
  log: InvocationLog
  /** Whether this process serves the environment (it is started). */
  isServing(gatewayId: string, stage: Stage): boolean
  /** Builds the plugin chain for one function's effective plugins. */
  createChain(plugins: PluginConfigs, scope: { gatewayId: string; stage: Stage; functionName: string }): EdgeChain
  /** Host-form routing domain, e.g. `imprun.localhost` → `hometax.imprun.localhost/prod/fn`. */
  domain?: string
}

const methods = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const
const bodyless = new Set(['GET', 'HEAD', 'DELETE', 'OPTIONS'])

export async function registerDataPlane(app: FastifyInstance, options: DataPlaneOptions): Promise<void> {
  // One chain per function, rebuilt when the registry's revision for its environment moves
  // (gateway, environment or function plugins changed); rate-limit counters outlive rebuilds.
  const chains = new Map<string, { revision: number; chain: EdgeChain }>()
  // The base CORS conf comes from the plugin schemas, compiled on first use (about 20 ms):
  // at registration, not in the first request (often the first call after a publish).
  effectivePlugins({})
  const chainFor = (gatewayPlugins: PluginConfigs, environment: { plugins: PluginConfigs; revision: number }, gatewayId: string, stage: Stage, live: LiveFunction) => {
    const scope = `${gatewayId}/${stage}/${live.name}`
    const cached = chains.get(scope)
    if (cached && cached.revision === environment.revision) return cached.chain
    const chain = options.createChain(effectivePlugins({ gateway: gatewayPlugins, environment: environment.plugins, function: live.plugins }), {
      gatewayId,
      stage,
      functionName: live.name,
    })
    chains.set(scope, { revision: environment.revision, chain })
    return chain
  }

  const handle = async (gatewayId: string, stageName: string, functionPath: string, request: FastifyRequest, reply: FastifyReply) => {
    void reply.header('x-request-id', request.id)
    if (!stages.includes(stageName as Stage)) return error(reply, 404, 'not_found', `no stage '${stageName}': use dev, staging or prod`)
    const stage = stageName as Stage
    const gateway = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(gatewayId) ? await options.registry.gateway(gatewayId) : null
    if (!gateway) return error(reply, 404, 'not_found', `no gateway '${gatewayId}'`)
    if (!options.isServing(gatewayId, stage)) {
      return error(reply, 503, 'not_serving', `gateway '${gatewayId}' ${stage} is not serving (phase ${gateway.phase})`)
    }
    const environment = gateway.environments.get(stage)!
    const name = functionPath.replace(/\/+$/, '')
    const live = environment.functions.get(name)
    if (!live) return error(reply, 404, 'not_found', `no function '${name}' on ${gatewayId}/${stage}`)

    const edgeRequest: EdgeRequest = {
      method: request.method,
      path: request.url.split('?')[0]!,
      headers: flattenHeaders(request.headers),
      query: (request.query ?? {}) as Record<string, string | string[]>,
      clientIp: request.ip,
    }
    const decision = await chainFor(gateway.plugins, environment, gatewayId, stage, live).run(edgeRequest)
    if (decision.response) {
      const { status, headers, body } = decision.response
      void reply.status(status).headers(merged(headers, decision.headers))
      return body === null || body === undefined ? reply.send() : reply.send(body)
    }
    if (decision.delayMs && decision.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, decision.delayMs))

    const seen = decision.request
    const query = queryObject(seen.query)
    const input = bodyless.has(request.method) ? query : (request.body ?? {})
    const abort = new AbortController()
    request.raw.once('close', () => {
      if (!reply.sent) abort.abort()
    })
    const result = await options.sandbox.invoke({
      gatewayId,
      stage,
      functionName: live.name,
      versionId: live.versionId,
      loadCode: () => options.registry.codeOf(gatewayId, live.versionId),
      input,
      request: { method: seen.method, path: seen.path, query, headers: seen.headers, body: request.body ?? null },
      env: environment.env,
      requestId: request.id,
      signal: abort.signal,
    })
    options.log.record(gatewayId, {
      requestId: request.id,
      stage,
      function: live.name,
      version: live.version,
      method: request.method,
      path: seen.path,
      status: result.outcome.status,
      durationMs: Math.round(result.durationMs * 100) / 100,
      consumer: decision.consumer ?? null,
      error: result.outcome.ok ? null : { code: result.outcome.code, message: result.outcome.message },
      lines: result.logs,
    })
    return send(reply, result.outcome, decision.headers)
  }

  await app.register(async (plane) => {
    // Functions take any body; JSON is parsed, anything else arrives as text.
    plane.removeAllContentTypeParsers()
    plane.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
      if (body === '' || body === undefined) return done(null, undefined)
      try {
        done(null, JSON.parse(body as string))
      } catch {
        done(Object.assign(new Error('the request body is not valid JSON'), { statusCode: 400, code: 'FST_ERR_CTP_INVALID_JSON_BODY' }), undefined)
      }
    })
    plane.addContentTypeParser('*', { parseAs: 'string' }, (_request, body, done) => done(null, body))
    plane.route({
      method: [...methods],
      url: '/:gateway/:stage/*',
      schema: { hide: true },
      handler: async (request, reply) => {
        const params = request.params as { gateway: string; stage: string; '*': string }
        return handle(params.gateway, params.stage, params['*'], request, reply)
      },
    })
    if (options.domain) {
      const suffix = `.${options.domain}`
      plane.route({
        method: [...methods],
        url: '/:stage/*',
        schema: { hide: true },
        constraints: { host: new RegExp(`^[a-z0-9-]+${suffix.replaceAll('.', '\\.')}(:\\d+)?$`) },
        handler: async (request, reply) => {
          const params = request.params as { stage: string; '*': string }
          const gatewayId = request.hostname.split(':')[0]!.slice(0, -suffix.length)
          return handle(gatewayId, params.stage, params['*'], request, reply)
        },
      })
    }
  })
}

function send(reply: FastifyReply, outcome: InvocationOutcome, edgeHeaders: Record<string, string>): FastifyReply {
  if (!outcome.ok) {
    const body: { error: { code: string; message: string; details?: Record<string, unknown> } } = { error: { code: outcome.code, message: outcome.message } }
    if (outcome.details?.issues) body.error.details = { issues: outcome.details.issues }
    return reply.status(outcome.status).headers(edgeHeaders).send(body)
  }
  void reply.status(outcome.status).headers(merged(outcome.headers, edgeHeaders))
  if (outcome.empty) return reply.status(outcome.status === 200 ? 204 : outcome.status).send()
  if (typeof outcome.value === 'string' && !outcome.headers['content-type']) {
    return reply.type('text/plain; charset=utf-8').send(outcome.value)
  }
  if (!outcome.headers['content-type']) void reply.type('application/json; charset=utf-8')
  return reply.send(typeof outcome.value === 'string' ? outcome.value : JSON.stringify(outcome.value))
}

function error(reply: FastifyReply, status: number, code: string, message: string): FastifyReply {
  return reply.status(status).send({ error: { code, message } })
}

/** Function (or rejection) headers with the edge's on top, as fastify takes them. */
function merged(headers: Record<string, string>, edgeHeaders: Record<string, string>): Record<string, string | string[]> {
  const result: Record<string, string | string[]> = {}
  for (const [key, value] of Object.entries(mergeResponseHeaders(headers, edgeHeaders))) result[key] = typeof value === 'string' ? value : [...value]
  return result
}

function queryObject(query: EdgeRequest['query']): Record<string, string | string[]> {
  const entries: Array<[string, string | readonly string[] | undefined]> =
    query instanceof URLSearchParams ? [...new Set(query.keys())].map((key) => [key, query.getAll(key).length > 1 ? query.getAll(key) : query.get(key)!]) : Object.entries(query)
  const object: Record<string, string | string[]> = {}
  for (const [key, value] of entries) if (value !== undefined) object[key] = typeof value === 'string' ? value : [...value]
  return object
}

function flattenHeaders(headers: FastifyRequest['headers']): Record<string, string> {
  const flat: Record<string, string> = {}
  for (const [key, value] of Object.entries(headers)) {
    if (value === undefined) continue
    flat[key.toLowerCase()] = Array.isArray(value) ? value.join(', ') : String(value)
  }
  return flat
}
