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

/**
 * Starts listening and returns the port (the requested one, or the OS's pick for port 0). When
 * the server cannot listen (port taken), `close` undoes what was started for it, then the error
 * is thrown: the same clean-up as a normal close, so that the two cannot drift apart.
 */
export async function listenOrClose(app: FastifyInstance, address: { port: number; host: string }, close: () => Promise<void>): Promise<number> {
  try {
    await app.listen(address)
  } catch (error) {
    await close()
    throw error
  }
  return listeningPort(app)
}

/** The port a listening server got (the requested one, or the OS's pick for port 0). */
function listeningPort(app: FastifyInstance): number {
  const address = app.server.address()
  if (typeof address !== 'object' || address === null) throw new Error('the server is not listening on a TCP port')
  return address.port
}
