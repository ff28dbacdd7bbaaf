/**
 * Admin routes for the chat gateway's configuration: providers (`/admin/providers`), model
 * aliases (`/admin/models`) and token usage (`/admin/usage`). Registered inside the admin API's
 * authenticated scope; handlers only translate to the ProviderService.
 */
import type { FastifyBaseLogger, FastifyInstance, RawReplyDefaultExpression, RawRequestDefaultExpression, RawServerDefault } from 'fastify'
import type { ZodTypeProvider } from 'fastify-type-provider-zod'
import { z } from 'zod'
import type { AccessService } from '../domain/access.ts'
import { createProviderBody, modelAliasSchema, setModelBody, updateProviderBody, type ProviderService } from '../domain/providers.ts'

export type AdminRoutes = FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, FastifyBaseLogger, ZodTypeProvider>

export interface ProviderRoutesOptions {
  control: { access: Pick<AccessService, 'application'>; providers: ProviderService }
  /** The service to use instead of the control plane's (tests). */
  providers?: ProviderService
}

const providerParams = z.object({ provider: z.string().describe('Provider id') })
const modelParams = z.object({ alias: z.string().describe('Model alias') })
const day = z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'a day is YYYY-MM-DD')

export async function registerProviderRoutes(api: AdminRoutes, options: ProviderRoutesOptions): Promise<void> {
  const providers = () => options.providers ?? options.control.providers
  const tag = { tags: ['chat'] }

  api.get('/admin/providers', { schema: { ...tag, summary: 'List LLM providers (keys only as a preview)' } }, async () => ({
    providers: await providers().listProviders(),
  }))
  api.post('/admin/providers', { schema: { ...tag, summary: 'Add an LLM provider; its API key is stored sealed', body: createProviderBody } }, async (request, reply) => {
    const provider = await providers().createProvider(request.body)
    void reply.status(201)
    return provider
  })
  api.get('/admin/providers/:provider', { schema: { ...tag, summary: 'Get a provider', params: providerParams } }, async (request) =>
    providers().getProvider(request.params.provider),
  )
  api.patch('/admin/providers/:provider', { schema: { ...tag, summary: 'Change base URL, key or timeout', params: providerParams, body: updateProviderBody } }, async (request) =>
    providers().updateProvider(request.params.provider, request.body),
  )
  api.delete('/admin/providers/:provider', { schema: { ...tag, summary: 'Remove a provider no model uses', params: providerParams } }, async (request, reply) => {
    await providers().deleteProvider(request.params.provider)
    return reply.status(204).send()
  })

  api.get('/admin/models', { schema: { ...tag, summary: 'List model aliases' } }, async () => ({ models: await providers().listModels() }))
  api.put('/admin/models/:alias', { schema: { ...tag, summary: 'Create or replace a model alias: provider, model id, fallbacks', params: z.object({ alias: modelAliasSchema }), body: setModelBody } }, async (request) =>
    providers().setModel(request.params.alias, request.body),
  )
  api.delete('/admin/models/:alias', { schema: { ...tag, summary: 'Remove a model alias', params: modelParams } }, async (request, reply) => {
    await providers().deleteModel(request.params.alias)
    return reply.status(204).send()
  })

  api.get('/admin/usage', {
    schema: {
      ...tag,
      summary: 'Token usage per application, environment and model',
      querystring: z.object({
        application: z.string().min(1).optional().describe('Application id or name'),
        from: day.optional().describe('First day, inclusive'),
        to: day.optional().describe('Last day, inclusive'),
      }),
    },
  }, async (request) => {
    const { application, from, to } = request.query
    const applicationId = application ? (await options.control.access.application(application)).id : undefined
    return providers().usage({ applicationId, from, to })
  })
}
