/**
 * The fastify server every process of the platform serves on (the embedded platform, the
 * cluster control plane, a cluster runtime): the same limits, request ids, zod validation and
 * one error mapper, set in one place.
 */
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod'
import { installErrorHandling } from './http-errors.ts'

export interface HttpServerOptions {
  logger?: boolean
  /** Largest accepted request body, bytes (default 2 MiB). */
  bodyLimit?: number
  rewriteUrl?: FastifyServerOptions['rewriteUrl']
}

export function createHttpServer(options: HttpServerOptions = {}): FastifyInstance {
  const app = Fastify({
    logger: options.logger ?? false,
    bodyLimit: options.bodyLimit ?? 2 * 1024 * 1024,
    requestIdHeader: 'x-request-id',
    // Function names run to 128 characters (more, URL-encoded): long ones get invalid_name, not a 404.
    routerOptions: { maxParamLength: 1024 },
    // Requests from scripts often hit a restarted server with keep-alive sockets.
    forceCloseConnections: true,
    ...(options.rewriteUrl ? { rewriteUrl: options.rewriteUrl } : {}),
  })
  app.setValidatorCompiler(validatorCompiler)
  app.setSerializerCompiler(serializerCompiler)
  installErrorHandling(app)
  return app
}

/** The port a listening server got (the requested one, or the OS's pick for port 0). */
export function listeningPort(app: FastifyInstance): number {
  const address = app.server.address()
  if (typeof address !== 'object' || address === null) throw new Error('the server is not listening on a TCP port')
  return address.port
}
