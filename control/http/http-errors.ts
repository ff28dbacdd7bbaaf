/**
 * The one error mapper of the HTTP surface: everything thrown in a route becomes
 * `{error: {code, message, details?}}` with the status of its code. Internal errors are logged
 * and answered without their message, so nothing of the host leaks into a response.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod'
import { ImprunError, type ErrorCode } from '../errors.ts'

export interface WireError {
  error: { code: string; message: string; details?: Record<string, unknown> }
}

const fastifyCodes: Record<string, { code: ErrorCode; status: number }> = {
  FST_ERR_CTP_BODY_TOO_LARGE: { code: 'body_too_large', status: 413 },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { code: 'unsupported_media_type', status: 415 },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { code: 'bad_request', status: 400 },
  FST_ERR_CTP_EMPTY_JSON_BODY: { code: 'bad_request', status: 400 },
  FST_ERR_CTP_INVALID_JSON_BODY: { code: 'bad_request', status: 400 },
  FST_ERR_VALIDATION: { code: 'bad_request', status: 400 },
}

export function toWireError(error: unknown): { status: number; body: WireError; internal: boolean } {
  if (error instanceof ImprunError) {
    const body: WireError = { error: { code: error.code, message: error.message } }
    if (error.details) body.error.details = error.details
    return { status: error.status, body, internal: error.status >= 500 && error.code === 'internal' }
  }
  if (hasZodFastifySchemaValidationErrors(error)) {
    const issues = error.validation.map((issue) => ({
      path: `${error.validationContext ?? 'body'}${issue.instancePath.replaceAll('/', '.')}`,
      message: issue.message ?? 'invalid',
    }))
    const first = issues[0]
    return {
      status: 400,
      body: { error: { code: 'bad_request', message: first ? `${first.path}: ${first.message}` : 'invalid request', details: { issues } } },
      internal: false,
    }
  }
  const fastifyError = error as FastifyError
  if (typeof fastifyError?.code === 'string' && fastifyCodes[fastifyError.code]) {
    const mapped = fastifyCodes[fastifyError.code]!
    return { status: mapped.status, body: { error: { code: mapped.code, message: fastifyError.message } }, internal: false }
  }
  if (typeof fastifyError?.statusCode === 'number' && fastifyError.statusCode >= 400 && fastifyError.statusCode < 500) {
    return { status: fastifyError.statusCode, body: { error: { code: 'bad_request', message: fastifyError.message } }, internal: false }
  }
  return { status: 500, body: { error: { code: 'internal', message: 'internal error' } }, internal: true }
}

export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((error: unknown, request: FastifyRequest, reply: FastifyReply) => {
    const { status, body, internal } = toWireError(error)
    if (internal) request.log.error({ err: error }, 'internal error')
    void reply.status(status).send(body)
  })
  app.setNotFoundHandler((request: FastifyRequest, reply: FastifyReply) => {
    void reply.status(404).send({ error: { code: 'not_found', message: `no route ${request.method} ${request.url.split('?')[0]}` } })
  })
}
