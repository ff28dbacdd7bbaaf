/**
 * The chat gateway under /v1 on the platform's port: OpenAI-compatible
 * `POST /v1/chat/completions`, Anthropic-compatible `POST /v1/messages`, and `GET /v1/models`.
 * A grant key (`Authorization: Bearer imp_…` or `x-api-key`) authenticates and names the gateway
 * environment whose functions the agent loop may call; the `model` names a configured alias.
 * Each API answers in its own shape whichever provider served it.
 *
 * The handlers only translate: wire request → neutral request (the *-wire files), the agent
 * loop and model caller do the work, and one error mapper per wire format answers failures.
 */
import { randomUUID } from 'node:crypto'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { z } from 'zod'
import type { ProviderService, ResolvedTarget } from '../../control/domain/providers.ts'
import type { VerifiedKey } from '../../control/domain/access.ts'
import { ImprunError } from '../../control/errors.ts'
import { toWireError } from '../../control/http/http-errors.ts'
import type { SecretBox, Store } from '../../control/ports.ts'
import type { FunctionCatalog } from '../../runtime/function-catalog.ts'
import type { ChatRequest, Usage } from '../spec/chat-model.ts'
import { ChatModelError, isChatModelError } from '../spec/chat-model-error.ts'
import { runAgent, type AgentResult, type AgentSink } from './agent-loop.ts'
import { anthropicMessagesRequestSchema, AnthropicStreamWriter, fromAnthropicRequest, toAnthropicMessage } from './anthropic-wire.ts'
import { loadFunctionTools, type FunctionToolSet } from './function-tools.ts'
import { extensionFromHeaders, imprunExtensionSchema, resolveExtension, type ImprunExtension } from './imprun-extension.ts'
import { ModelCaller, type RetryPolicy } from './model-caller.ts'
import { fromOpenAIRequest, openAIChatRequestSchema, OpenAIStreamWriter, toOpenAICompletion } from './openai-wire.ts'

export interface ChatGatewayServices {
  store: Store
  secretBox: SecretBox
  catalog: Pick<FunctionCatalog, 'list' | 'call'>
  control: { access: { identify(apiKey: string): Promise<VerifiedKey | null> }; providers: ProviderService }
}

export interface ChatGatewayOptions {
  /** Given to every provider adaptor (tests, proxies). */
  fetch?: typeof fetch
  retry?: Partial<RetryPolicy>
  /** Longest silence inside an upstream stream, ms (default 60,000). */
  idleTimeoutMs?: number
  /** Time budget of a request unless it asks for another (default 120,000 ms). */
  defaultTimeoutMs?: number
  /** Model calls per request unless it asks for another (default 8). */
  defaultMaxRounds?: number
}

type WireKind = 'openai' | 'anthropic'

/** Registers the /v1 routes; returns the provider service they use (the control plane's). */
export async function registerChatGateway(app: FastifyInstance, services: ChatGatewayServices, options: ChatGatewayOptions = {}): Promise<ProviderService> {
  const providers = services.control.providers
  app.addHook('onClose', async () => {
    await providers.flushUsage().catch((error: unknown) => app.log.error({ err: error }, 'writing chat usage failed'))
  })
  const caller = new ModelCaller({
    fetch: options.fetch,
    policy: options.retry,
    idleTimeoutMs: options.idleTimeoutMs,
    onAttemptFailed: (target, error) => app.log.warn({ provider: target.provider.id, model: target.model, code: error.code, status: error.status }, 'chat upstream attempt failed'),
  })
  const defaults = { maxRounds: options.defaultMaxRounds ?? 8, timeoutMs: options.defaultTimeoutMs ?? 120_000 }

  async function authenticate(request: FastifyRequest): Promise<VerifiedKey> {
    const authorization = request.headers.authorization
    const bearer = authorization?.startsWith('Bearer ') ? authorization.slice(7).trim() : undefined
    const header = request.headers['x-api-key']
    const key = bearer ?? (typeof header === 'string' ? header.trim() : undefined)
    const verified = key ? await services.control.access.identify(key) : null
    if (!verified) throw new ImprunError('unauthorized', 'a valid imprun API key is required: Authorization: Bearer imp_… or x-api-key: imp_…')
    return verified
  }

  interface ChatCall {
    wire: WireKind
    model: string
    request: Omit<ChatRequest, 'model' | 'signal'>
    stream: boolean
    includeUsage: boolean
    extension: ImprunExtension | undefined
  }

  async function handle(call: ChatCall, key: VerifiedKey, request: FastifyRequest, reply: FastifyReply): Promise<unknown> {
    const headerExtension = parseWith(imprunExtensionSchema, extensionFromHeaders(request.headers), 'imprun-* headers')
    const extension = resolveExtension(call.extension, headerExtension, defaults)
    const chain = await providers.resolve(call.model)
    let functionTools: FunctionToolSet | null = null
    if (extension.functions) {
      functionTools = await loadFunctionTools({
        catalog: services.catalog,
        gatewayId: key.gatewayId,
        stage: key.stage,
        applicationId: key.applicationId,
        selection: extension.functions,
        reservedNames: new Set((call.request.tools ?? []).map((tool) => tool.name)),
      })
    }

    const disconnected = new AbortController()
    const deadline = AbortSignal.timeout(extension.timeoutMs)
    const signal = AbortSignal.any([disconnected.signal, deadline])
    reply.raw.on('close', () => {
      if (!reply.raw.writableFinished) disconnected.abort()
    })
    const usage: Array<{ target: ResolvedTarget; usage: Usage }> = []
    const record = () => {
      for (const entry of usage) {
        providers.recordUsage({ applicationId: key.applicationId, gatewayId: key.gatewayId, stage: key.stage, alias: call.model, provider: entry.target.provider.id, model: entry.target.model, ...entry.usage })
      }
      usage.length = 0
    }
    const withReport = functionTools !== null
    const meta = { id: call.wire === 'openai' ? `chatcmpl-${randomUUID().replaceAll('-', '')}` : `msg_${randomUUID().replaceAll('-', '')}`, created: Math.floor(Date.now() / 1000), model: call.model }
    const budgetError = (error: unknown) =>
      deadline.aborted && !disconnected.signal.aborted
        ? new ChatModelError('timeout', `the request exceeded its time budget of ${extension.timeoutMs} ms`, { provider: chain[0]!.provider.kind, status: 504, retryable: false, cause: error })
        : error
    const run = (sink?: AgentSink) =>
      runAgent({ chain, request: call.request, functionTools, maxRounds: extension.maxRounds, signal, caller, sink, onUsage: (target, used) => usage.push({ target, usage: used }) })

    if (!call.stream) {
      let result: AgentResult
      try {
        result = await run()
      } catch (error) {
        record()
        throw budgetError(error)
      }
      record()
      return call.wire === 'openai' ? toOpenAICompletion(result, meta, withReport) : toAnthropicMessage(result, meta, withReport)
    }

    const write = (text: string) => {
      if (!reply.raw.destroyed) reply.raw.write(text)
    }
    const writer = call.wire === 'openai' ? new OpenAIStreamWriter(write, meta, call.includeUsage) : new AnthropicStreamWriter(write, meta)
    // Headers go out with the first event: a failure before it is still a plain HTTP error.
    writer.onBegin = () => {
      reply.hijack()
      reply.raw.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' })
    }
    try {
      const result = await run(writer)
      record()
      writer.end(result, withReport)
    } catch (caught) {
      record()
      const error = budgetError(caught)
      if (!writer.started) throw error
      if (!disconnected.signal.aborted) {
        const wire = toChatWireError(error, call.wire)
        if (wire.internal) request.log.error({ err: error }, 'chat stream failed')
        if (writer instanceof OpenAIStreamWriter) writer.error(wire.body as { error: Record<string, unknown> })
        else writer.error(wire.body as { type: 'error'; error: { type: string; message: string } })
      }
    }
    reply.raw.end()
    return reply
  }

  await app.register(async (scope) => {
    scope.setErrorHandler((error: unknown, request: FastifyRequest, reply: FastifyReply) => {
      const wire = toChatWireError(error, request.url.startsWith('/v1/messages') ? 'anthropic' : 'openai')
      if (wire.internal) request.log.error({ err: error }, 'internal error')
      if (wire.retryAfterSeconds !== null) void reply.header('retry-after', String(wire.retryAfterSeconds))
      void reply.status(wire.status).send(wire.body)
    })

    scope.post('/v1/chat/completions', async (request, reply) => {
      const key = await authenticate(request)
      const body = parseWith(openAIChatRequestSchema, request.body, 'body')!
      const converted = fromOpenAIRequest(body)
      return handle({ wire: 'openai', model: body.model, ...converted }, key, request, reply)
    })

    scope.post('/v1/messages', async (request, reply) => {
      const key = await authenticate(request)
      const body = parseWith(anthropicMessagesRequestSchema, request.body, 'body')!
      const converted = fromAnthropicRequest(body)
      return handle({ wire: 'anthropic', model: body.model, includeUsage: false, ...converted }, key, request, reply)
    })

    scope.get('/v1/models', async (request) => {
      await authenticate(request)
      const models = await providers.listModels()
      if (request.headers['anthropic-version']) {
        const data = models.map((model) => ({ type: 'model', id: model.alias, display_name: model.alias, created_at: model.createdAt }))
        return { data, has_more: false, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null }
      }
      return { object: 'list', data: models.map((model) => ({ id: model.alias, object: 'model', created: Math.floor(Date.parse(model.createdAt) / 1000), owned_by: model.provider })) }
    })
  })
  return providers
}

/** Validates with zod; the message names the first bad field (`messages.0.role: …`). */
function parseWith<T>(schema: z.ZodType<T>, value: unknown, what: string): T | undefined {
  if (value === undefined && what !== 'body') return undefined
  const result = schema.safeParse(value)
  if (result.success) return result.data
  const issues = result.error.issues.map((issue) => ({ path: issue.path.join('.'), message: issue.message }))
  const first = issues[0]
  const field = first?.path ? first.path : what
  throw new ImprunError('bad_request', `${field}: ${first?.message ?? 'invalid'}`, { details: { param: first?.path ?? null, issues } })
}

interface ChatWireError {
  status: number
  body: Record<string, unknown>
  internal: boolean
  retryAfterSeconds: number | null
}

const anthropicErrorTypes: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  403: 'permission_error',
  404: 'not_found_error',
  413: 'request_too_large',
  429: 'rate_limit_error',
  529: 'overloaded_error',
}

function openAIErrorType(status: number): string {
  if (status === 401) return 'authentication_error'
  if (status === 403) return 'permission_error'
  if (status === 429) return 'rate_limit_error'
  if (status >= 500) return 'server_error'
  return 'invalid_request_error'
}

/**
 * The one error mapper of the chat surface. Provider failures keep their status class and
 * message (a provider's 401/403 is our misconfiguration, so the client gets 502, not a hint that
 * its own key is wrong); platform errors keep their code.
 */
export function toChatWireError(error: unknown, wire: WireKind): ChatWireError {
  let status: number
  let code: string
  let message: string
  let param: string | null = null
  let internal = false
  let retryAfterSeconds: number | null = null
  if (isChatModelError(error)) {
    status = error.code === 'authentication' ? 502 : error.status
    code = `upstream_${error.code}`
    message = `upstream ${error.provider}: ${error.message}`
    if (error.retryAfterMs !== null && status === 429) retryAfterSeconds = Math.ceil(error.retryAfterMs / 1000)
  } else {
    const mapped = toWireError(error)
    status = mapped.status
    code = mapped.body.error.code
    message = mapped.body.error.message
    internal = mapped.internal
    const detail = mapped.body.error.details?.param
    if (typeof detail === 'string') param = detail
    if (code === 'not_found' && mapped.body.error.details?.kind === 'model') code = 'model_not_found'
  }
  if (wire === 'openai') return { status, body: { error: { message, type: openAIErrorType(status), param, code } }, internal, retryAfterSeconds }
  const type = anthropicErrorTypes[status] ?? (status >= 500 ? 'api_error' : 'invalid_request_error')
  return { status, body: { type: 'error', error: { type, message } }, internal, retryAfterSeconds }
}
