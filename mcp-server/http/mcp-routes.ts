/**
 * The MCP surface on the platform's fastify port.
 *
 *   /mcp                          management, Streamable HTTP (admin token as Bearer);
 *                                 sessions by default, `?stateless=1` for one server per request
 *                                 (any replica can answer: nothing is kept between requests)
 *   /mcp/sse, /mcp/messages       management, legacy HTTP+SSE transport
 *   /mcp/{gateway}/{stage}        that environment's functions as tools (its grant key as Bearer
 *                                 or x-api-key); same `?stateless=1`
 *   /mcp/{gateway}/{stage}/sse, …/messages   the same over HTTP+SSE
 *
 * The glue only checks Origin/Host and credentials, finds or makes the session, and hands the
 * raw request, the raw response and the parsed body to the SDK transport (`reply.hijack()`).
 */
import { randomUUID } from 'node:crypto'
import type { Server } from '@modelcontextprotocol/sdk/server/index.js'
import { SSEServerTransport } from '@modelcontextprotocol/sdk/server/sse.js'
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js'
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { stages } from '../../control/domain/names.ts'
import type { Stage } from '../../control/ports.ts'
import { EnvironmentToolDirectory } from '../environment-tools.ts'
import { createFunctionServer } from '../function-server.ts'
import { createManagementServer, createManagementTools } from '../management-server.ts'
import { mcpServicesOf, type McpServices, type PlatformServiceSubset } from '../mcp-services.ts'
import { hostPolicyFromEnvironment, presentedCredential, rebindingViolation, type HostPolicy } from './request-guard.ts'
import { SessionEventStore } from './session-event-store.ts'

export interface McpSurfaceOptions {
  hostPolicy?: HostPolicy
  /** Sessions unused this long are closed (default 30 minutes). */
  sessionIdleMs?: number
}

/** Who a request (and the session it opens) acts for. */
type Principal = { kind: 'admin' } | { kind: 'grant'; gatewayId: string; stage: Stage; grantId: string; applicationId: string }

interface Session {
  transport: StreamableHTTPServerTransport | SSEServerTransport
  server: Server
  principal: Principal
  lastSeen: number
}

const jsonRpcError = (reply: FastifyReply, status: number, code: number, message: string, headers: Record<string, string> = {}) =>
  reply.status(status).headers(headers).send({ jsonrpc: '2.0', error: { code, message }, id: null })

export async function registerMcpSurface(app: FastifyInstance, platform: PlatformServiceSubset, options: McpSurfaceOptions = {}): Promise<void> {
  const services: McpServices = mcpServicesOf(platform)
  const policy = options.hostPolicy ?? hostPolicyFromEnvironment(process.env)
  const idleMs = options.sessionIdleMs ?? 30 * 60_000
  const managementTools = createManagementTools(services)
  const directory = new EnvironmentToolDirectory(services.catalog)
  const sessions = new Map<string, Session>()

  const serverFor = (principal: Principal, notifyChanges: boolean): Server =>
    principal.kind === 'admin'
      ? createManagementServer(services, managementTools)
      : createFunctionServer({ services, directory, notifyChanges }, { gatewayId: principal.gatewayId, stage: principal.stage, consumer: principal.applicationId })

  const samePrincipal = (left: Principal, right: Principal) =>
    left.kind === 'admin'
      ? right.kind === 'admin'
      : right.kind === 'grant' && left.gatewayId === right.gatewayId && left.stage === right.stage && left.grantId === right.grantId

  /** Origin/Host, then credentials; replies and returns null when the request may not go on. */
  const admit = async (request: FastifyRequest, reply: FastifyReply, scope: { gatewayId: string; stage: string } | null): Promise<Principal | null> => {
    const violation = rebindingViolation(request.headers, request.socket.localAddress, policy)
    if (violation) {
      await jsonRpcError(reply, 403, -32000, `forbidden: ${violation}`)
      return null
    }
    const credential = presentedCredential(request.headers, { apiKeyHeader: scope !== null })
    const challenge = (description: string) => ({
      'www-authenticate': `Bearer realm="imprun"${credential ? `, error="invalid_token", error_description="${description}"` : ''}`,
    })
    if (scope === null) {
      if (services.tokens.verify(credential)) return { kind: 'admin' }
      await jsonRpcError(reply, 401, -32001, 'unauthorized: a valid admin token is required: Authorization: Bearer <token>', challenge('invalid admin token'))
      return null
    }
    const verified = credential ? await services.control.access.identify(credential) : null
    if (!verified) {
      await jsonRpcError(reply, 401, -32001, `unauthorized: a grant key for ${scope.gatewayId}/${scope.stage} is required (Authorization: Bearer <key> or x-api-key)`, challenge('invalid key'))
      return null
    }
    if (verified.gatewayId !== scope.gatewayId || verified.stage !== scope.stage) {
      await jsonRpcError(reply, 403, -32003, `forbidden: this key is not granted ${scope.gatewayId}/${scope.stage}`)
      return null
    }
    return { kind: 'grant', gatewayId: verified.gatewayId, stage: verified.stage, grantId: verified.grantId, applicationId: verified.applicationId }
  }

  const closeSession = (id: string) => {
    const session = sessions.get(id)
    if (!session) return
    sessions.delete(id)
    void session.server.close().catch(() => {})
  }

  /** Runs a transport on the raw request; after hijack, fastify no longer answers for us. */
  const hand = async (reply: FastifyReply, work: () => Promise<void>) => {
    reply.hijack()
    try {
      await work()
    } catch (error) {
      services.reportInternalError?.(error)
      if (!reply.raw.headersSent) {
        reply.raw.writeHead(500, { 'content-type': 'application/json' })
        reply.raw.end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32603, message: 'internal error' }, id: null }))
      } else {
        reply.raw.end()
      }
    }
  }

  const streamable = async (request: FastifyRequest, reply: FastifyReply, scope: { gatewayId: string; stage: string } | null) => {
    if (scope && !stages.includes(scope.stage as Stage)) return jsonRpcError(reply, 404, -32000, `no stage '${scope.stage}': use dev, staging or prod`)
    const principal = await admit(request, reply, scope)
    if (!principal) return
    const query = request.query as Record<string, string | undefined>
    const stateless = query.stateless === '1' || query.stateless === 'true'
    const sessionId = request.headers['mcp-session-id']

    if (stateless) {
      if (request.method !== 'POST') return jsonRpcError(reply, 405, -32000, 'method not allowed: the stateless endpoint takes POST only', { allow: 'POST' })
      const server = serverFor(principal, false)
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true })
      reply.raw.on('close', () => void server.close().catch(() => {}))
      await server.connect(transport)
      return hand(reply, () => transport.handleRequest(request.raw, reply.raw, request.body))
    }

    if (typeof sessionId === 'string') {
      const session = sessions.get(sessionId)
      if (!session || !(session.transport instanceof StreamableHTTPServerTransport) || !samePrincipal(session.principal, principal)) {
        return jsonRpcError(reply, 404, -32001, 'session not found: initialize a new session')
      }
      session.lastSeen = Date.now()
      return hand(reply, () => (session.transport as StreamableHTTPServerTransport).handleRequest(request.raw, reply.raw, request.body))
    }

    if (request.method !== 'POST' || !isInitializeRequest(request.body)) {
      return jsonRpcError(reply, 400, -32000, 'bad request: no mcp-session-id; start with an initialize request, or use ?stateless=1')
    }
    if (principal.kind === 'grant') {
      // Loads the environment, so that its changes are followed from now on; fails for a gone gateway.
      await directory.tools(principal.gatewayId, principal.stage)
    }
    const server = serverFor(principal, true)
    const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      // Resumable streams: a client that lost its connection comes back with Last-Event-ID.
      eventStore: new SessionEventStore(),
      onsessioninitialized: (id) => {
        sessions.set(id, { transport, server, principal, lastSeen: Date.now() })
      },
      onsessionclosed: (id) => closeSession(id),
    })
    transport.onclose = () => {
      if (transport.sessionId) sessions.delete(transport.sessionId)
    }
    await server.connect(transport)
    return hand(reply, () => transport.handleRequest(request.raw, reply.raw, request.body))
  }

  const sseStream = async (request: FastifyRequest, reply: FastifyReply, scope: { gatewayId: string; stage: string } | null) => {
    if (scope && !stages.includes(scope.stage as Stage)) return jsonRpcError(reply, 404, -32000, `no stage '${scope.stage}'`)
    const principal = await admit(request, reply, scope)
    if (!principal) return
    if (principal.kind === 'grant') await directory.tools(principal.gatewayId, principal.stage)
    const endpoint = scope ? `/mcp/${encodeURIComponent(scope.gatewayId)}/${scope.stage}/messages` : '/mcp/messages'
    const server = serverFor(principal, true)
    return hand(reply, async () => {
      const transport = new SSEServerTransport(endpoint, reply.raw)
      sessions.set(transport.sessionId, { transport, server, principal, lastSeen: Date.now() })
      transport.onclose = () => sessions.delete(transport.sessionId)
      reply.raw.on('close', () => closeSession(transport.sessionId))
      await server.connect(transport)
    })
  }

  const sseMessage = async (request: FastifyRequest, reply: FastifyReply, scope: { gatewayId: string; stage: string } | null) => {
    const principal = await admit(request, reply, scope)
    if (!principal) return
    const sessionId = (request.query as Record<string, string | undefined>).sessionId
    const session = sessionId ? sessions.get(sessionId) : undefined
    if (!session || !(session.transport instanceof SSEServerTransport) || !samePrincipal(session.principal, principal)) {
      return jsonRpcError(reply, 404, -32001, 'session not found: open the SSE stream first')
    }
    session.lastSeen = Date.now()
    return hand(reply, () => (session.transport as SSEServerTransport).handlePostMessage(request.raw, reply.raw, request.body))
  }

  type StageParams = { Params: { gateway: string; stage: string } }
  const scopeOf = (request: FastifyRequest<StageParams>) => ({ gatewayId: request.params.gateway, stage: request.params.stage })

  app.route({ method: ['GET', 'POST', 'DELETE'], url: '/mcp', handler: (request, reply) => streamable(request, reply, null) })
  app.get('/mcp/sse', (request, reply) => sseStream(request, reply, null))
  app.post('/mcp/messages', (request, reply) => sseMessage(request, reply, null))
  app.route<StageParams>({ method: ['GET', 'POST', 'DELETE'], url: '/mcp/:gateway/:stage', handler: (request, reply) => streamable(request, reply, scopeOf(request)) })
  app.get<StageParams>('/mcp/:gateway/:stage/sse', (request, reply) => sseStream(request, reply, scopeOf(request)))
  app.post<StageParams>('/mcp/:gateway/:stage/messages', (request, reply) => sseMessage(request, reply, scopeOf(request)))

  const sweep = setInterval(() => {
    const before = Date.now() - idleMs
    for (const [id, session] of sessions) if (session.lastSeen < before && session.transport instanceof StreamableHTTPServerTransport) closeSession(id)
  }, Math.min(idleMs, 60_000))
  sweep.unref()
  app.addHook('onClose', async () => {
    clearInterval(sweep)
    for (const id of [...sessions.keys()]) closeSession(id)
    directory.close()
  })
}
