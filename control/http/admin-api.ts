/**
 * The REST admin API under `/admin`: every control operation, zod-validated, bearer-token
 * protected, documented at `/admin/openapi.json` from the same schemas. Handlers only translate
 * between HTTP and the control services.
 */
import fastifySwagger from '@fastify/swagger'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { jsonSchemaTransform, type ZodTypeProvider } from 'fastify-type-provider-zod'
import { z } from 'zod'
import type { AdminTokens } from '../admin-token.ts'
import type { ControlPlane } from '../control-plane.ts'
import { ImprunError } from '../errors.ts'
import { applicationNameSchema, functionNameSchema, gatewayIdSchema, stageSchema } from '../domain/names.ts'
import { pluginConfigsSchema, pluginPatchSchema } from '../domain/plugins.ts'
import type { FunctionCatalog } from '../../runtime/function-catalog.ts'
import { registerProviderRoutes } from './provider-routes.ts'

const gatewayParams = z.object({ gateway: z.string().describe('Gateway id') })
const functionParams = gatewayParams.extend({ name: z.string().describe('Function name (URL-encode / as %2F)') })
const stageParams = gatewayParams.extend({ stage: stageSchema })

export const createGatewayBody = z
  .object({
    id: gatewayIdSchema,
    description: z.string().max(500).optional().describe('What the gateway is for'),
    pipeline: z.boolean().optional().describe('Enforce promotion order dev → staging → prod (default true)'),
    plugins: pluginConfigsSchema.optional().describe('Gateway-level APISIX plugin configs'),
  })
  .strict()

export const updateGatewayBody = z
  .object({
    description: z.string().max(500).optional(),
    pipeline: z.boolean().optional(),
    plugins: pluginConfigsSchema.optional(),
  })
  .strict()

export const writeFunctionBody = z
  .object({
    source: z.string().optional().describe('TypeScript source of index.ts (shorthand for files)'),
    files: z.record(z.string(), z.string()).optional().describe('Files by relative path; index.ts is the entry'),
    plugins: pluginConfigsSchema.optional().describe('Function-level APISIX plugin configs'),
  })
  .strict()
  .refine((body) => (body.source === undefined) !== (body.files === undefined), {
    message: 'give exactly one of source or files',
  })

export const publishBody = z
  .object({
    stage: stageSchema.optional().describe('Stage to publish to (default dev)'),
    message: z.string().max(500).optional().describe('Release note stored with a new version'),
  })
  .strict()

export const promoteBody = z
  .object({ from: stageSchema, to: stageSchema.optional().describe('Target stage (default: the next one)') })
  .strict()

export const rollbackBody = z
  .object({
    stage: stageSchema,
    version: z.number().int().positive().optional().describe('Version to go to (default: the one live before the current)'),
  })
  .strict()

export const pluginsBody = z.object({ plugins: pluginConfigsSchema }).strict()

/** JSON merge-patch at the plugin-name level: a conf replaces that plugin's whole conf, null removes it. */
export const pluginPatchBody = z.object({ plugins: pluginPatchSchema }).strict()

export const createApplicationBody = z
  .object({ name: applicationNameSchema, description: z.string().max(500).optional() })
  .strict()

export const grantBody = z
  .object({
    application: z.string().min(1).describe('Application id or name'),
    gateway: z.string().min(1).describe('Gateway id'),
    stage: stageSchema,
  })
  .strict()

export const rotateBody = z
  .object({ graceSeconds: z.number().int().min(0).max(86_400).optional().describe('How long the old key keeps working') })
  .strict()

/** Reads invocation logs (the runtime writes them). */
export interface LogReader {
  query(gatewayId: string, filter: { function?: string; stage?: string; limit?: number }): Promise<unknown[]>
  follow(gatewayId: string, filter: { function?: string; stage?: string }, signal: AbortSignal): AsyncIterable<unknown>
}

export const setVariableBody = z
  .object({
    value: z.string().describe('The value (at most 32 KiB)'),
    secret: z.boolean().optional().describe('A secret is never shown again after it is set (default: keep what it was, else false)'),
  })
  .strict()

export const testRunBody = z
  .object({
    input: z.unknown().optional().describe('Input for the function, validated against its `input` schema'),
    stage: stageSchema.optional().describe('Whose environment variables the run sees (default dev)'),
  })
  .strict()

export interface AdminApiOptions {
  control: ControlPlane
  tokens: AdminTokens
  logs?: LogReader
  /** Runs drafts for `POST …/functions/:name/test`; without it the route is absent. */
  catalog?: Pick<FunctionCatalog, 'runDraft'>
}

export async function registerAdminApi(app: FastifyInstance, options: AdminApiOptions): Promise<void> {
  const { control, tokens } = options
  await app.register(fastifySwagger, {
    openapi: {
      info: { title: 'imprun admin API', version: '1', description: 'Manage gateways, functions, deployments, applications and grants.' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
    transform: jsonSchemaTransform,
  })
  app.get('/admin/openapi.json', { schema: { hide: true } }, async () => app.swagger())

  await app.register(async (admin) => {
    admin.addHook('onRequest', async (request: FastifyRequest) => {
      const header = request.headers.authorization
      const token = header?.startsWith('Bearer ') ? header.slice(7).trim() : undefined
      if (!tokens.verify(token)) {
        throw new ImprunError('unauthorized', 'a valid admin token is required: Authorization: Bearer <token>')
      }
    })
    const api = admin.withTypeProvider<ZodTypeProvider>()
    await registerProviderRoutes(api, { control })
    const tag = (name: string) => ({ tags: [name] })

    // --- gateways ---------------------------------------------------------------------------
    api.get('/admin/gateways', { schema: { ...tag('gateways'), summary: 'List gateways' } }, async () => ({
      gateways: await control.gateways.list(),
    }))
    api.post('/admin/gateways', { schema: { ...tag('gateways'), summary: 'Create a gateway with dev, staging and prod', body: createGatewayBody } }, async (request, reply) =>
      created(reply, await control.gateways.create(request.body)),
    )
    api.get('/admin/gateways/:gateway', { schema: { ...tag('gateways'), summary: 'Get a gateway with its phase', params: gatewayParams } }, async (request) =>
      control.gateways.get(request.params.gateway),
    )
    api.patch('/admin/gateways/:gateway', { schema: { ...tag('gateways'), summary: 'Update description, pipeline or gateway plugins', params: gatewayParams, body: updateGatewayBody } }, async (request) =>
      control.gateways.update(request.params.gateway, request.body),
    )
    api.patch('/admin/gateways/:gateway/plugins', { schema: { ...tag('gateways'), summary: 'Merge into gateway-level plugins (a conf replaces that plugin, null removes it, others are kept)', params: gatewayParams, body: pluginPatchBody } }, async (request) =>
      control.gateways.patchPlugins(request.params.gateway, request.body.plugins),
    )
    api.post('/admin/gateways/:gateway/start', { schema: { ...tag('gateways'), summary: 'Start serving (state Running)', params: gatewayParams } }, async (request, reply) =>
      accepted(reply, await control.gateways.start(request.params.gateway)),
    )
    api.post('/admin/gateways/:gateway/stop', { schema: { ...tag('gateways'), summary: 'Stop serving, keep data (state Stopped)', params: gatewayParams } }, async (request, reply) =>
      accepted(reply, await control.gateways.stop(request.params.gateway)),
    )
    api.delete('/admin/gateways/:gateway', { schema: { ...tag('gateways'), summary: 'Delete a gateway and all its data', params: gatewayParams } }, async (request, reply) =>
      accepted(reply, await control.gateways.delete(request.params.gateway)),
    )
    api.get('/admin/gateways/:gateway/environments/:stage', { schema: { ...tag('environments'), summary: 'Get an environment', params: stageParams } }, async (request) => {
      const environment = await control.gateways.environment(request.params.gateway, request.params.stage)
      return { stage: environment.stage, plugins: environment.plugins, updatedAt: environment.updatedAt }
    })
    api.put('/admin/gateways/:gateway/environments/:stage/plugins', { schema: { ...tag('environments'), summary: 'Replace environment-level plugins', params: stageParams, body: pluginsBody } }, async (request) => {
      const environment = await control.gateways.setEnvironmentPlugins(request.params.gateway, request.params.stage, request.body.plugins)
      return { stage: environment.stage, plugins: environment.plugins, updatedAt: environment.updatedAt }
    })
    api.patch('/admin/gateways/:gateway/environments/:stage/plugins', { schema: { ...tag('environments'), summary: 'Merge into environment-level plugins (a conf replaces that plugin, null removes it, others are kept)', params: stageParams, body: pluginPatchBody } }, async (request) => {
      const environment = await control.gateways.patchEnvironmentPlugins(request.params.gateway, request.params.stage, request.body.plugins)
      return { stage: environment.stage, plugins: environment.plugins, updatedAt: environment.updatedAt }
    })
    api.get('/admin/gateways/:gateway/environments/:stage/functions', { schema: { ...tag('environments'), summary: 'Functions live on an environment, with metadata', params: stageParams } }, async (request) => {
      await control.gateways.record(request.params.gateway)
      return { functions: await control.functions.live(request.params.gateway, request.params.stage) }
    })
    api.get('/admin/gateways/:gateway/history', {
      schema: {
        ...tag('deployments'),
        summary: 'Deployment history, newest first',
        params: gatewayParams,
        querystring: z.object({
          function: functionNameSchema.optional(),
          stage: stageSchema.optional(),
          limit: z.coerce.number().int().min(1).max(1000).optional(),
        }),
      },
    }, async (request) => ({ history: await control.functions.history(request.params.gateway, request.query) }))

    // --- logs -------------------------------------------------------------------------------
    const logs = options.logs
    if (logs) {
      api.get('/admin/gateways/:gateway/logs', {
        schema: {
          ...tag('logs'),
          summary: 'Recent invocations with their log lines, newest first; follow=true streams new ones as server-sent events',
          params: gatewayParams,
          querystring: z.object({
            function: functionNameSchema.optional(),
            stage: stageSchema.optional(),
            limit: z.coerce.number().int().min(1).max(1000).optional(),
            follow: z.enum(['true', 'false', '1', '0']).optional(),
          }),
        },
      }, async (request, reply) => {
        await control.gateways.record(request.params.gateway)
        const { follow, ...filter } = request.query
        if (follow !== 'true' && follow !== '1') return { logs: await logs.query(request.params.gateway, filter) }
        const abort = new AbortController()
        request.raw.once('close', () => abort.abort())
        reply.hijack()
        reply.raw.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' })
        reply.raw.write(': following\n\n')
        const heartbeat = setInterval(() => reply.raw.write(': heartbeat\n\n'), 15_000)
        try {
          for await (const entry of logs.follow(request.params.gateway, filter, abort.signal)) {
            reply.raw.write(`event: invocation\ndata: ${JSON.stringify(entry)}\n\n`)
          }
        } finally {
          clearInterval(heartbeat)
          reply.raw.end()
        }
      })
    }

    // --- environment variables and secrets ---------------------------------------------------
    const variableParams = stageParams.extend({ name: z.string().describe('Variable name') })
    api.get('/admin/gateways/:gateway/environments/:stage/variables', { schema: { ...tag('environments'), summary: "List an environment's variables (secrets by name only)", params: stageParams } }, async (request) => ({
      variables: await control.variables.list(request.params.gateway, request.params.stage),
    }))
    api.put('/admin/gateways/:gateway/environments/:stage/variables/:name', { schema: { ...tag('environments'), summary: 'Set a variable or secret (ctx.env.NAME in functions)', params: variableParams, body: setVariableBody } }, async (request) =>
      control.variables.set(request.params.gateway, request.params.stage, request.params.name, request.body),
    )
    api.delete('/admin/gateways/:gateway/environments/:stage/variables/:name', { schema: { ...tag('environments'), summary: 'Remove a variable or secret', params: variableParams } }, async (request, reply) => {
      await control.variables.delete(request.params.gateway, request.params.stage, request.params.name)
      return reply.status(204).send()
    })

    // --- functions --------------------------------------------------------------------------
    api.get('/admin/gateways/:gateway/functions', { schema: { ...tag('functions'), summary: 'List functions with deployed versions', params: gatewayParams } }, async (request) => ({
      functions: await control.functions.list(request.params.gateway),
    }))
    api.put('/admin/gateways/:gateway/functions/:name', { schema: { ...tag('functions'), summary: 'Create or replace a function draft', params: functionParams, body: writeFunctionBody } }, async (request) => {
      const { source, files, plugins } = request.body
      return control.functions.write(request.params.gateway, request.params.name, {
        files: files ?? { 'index.ts': source! },
        plugins,
      })
    })
    api.get('/admin/gateways/:gateway/functions/:name', { schema: { ...tag('functions'), summary: 'Get a function draft and its deployments', params: functionParams } }, async (request) =>
      control.functions.get(request.params.gateway, request.params.name),
    )
    const catalog = options.catalog
    if (catalog) {
      api.post('/admin/gateways/:gateway/functions/:name/test', { schema: { ...tag('functions'), summary: 'Compile the draft and run it once with an input, without publishing', params: functionParams, body: testRunBody.optional() } }, async (request) => {
        const { gateway, name } = request.params
        const compiled = await control.functions.compileDraft(gateway, name)
        const result = await catalog.runDraft({ gatewayId: gateway, stage: request.body?.stage ?? 'dev', name, code: compiled.code, input: request.body?.input ?? {} })
        return { requestId: result.requestId, durationMs: Math.round(result.durationMs * 100) / 100, outcome: result.outcome, logs: result.logs, metadata: compiled.metadata }
      })
    }
    api.delete('/admin/gateways/:gateway/functions/:name', { schema: { ...tag('functions'), summary: 'Delete a function, its versions and deployments', params: functionParams } }, async (request) => ({
      undeployed: await control.functions.delete(request.params.gateway, request.params.name),
    }))
    api.put('/admin/gateways/:gateway/functions/:name/plugins', { schema: { ...tag('functions'), summary: 'Replace function-level plugins', params: functionParams, body: pluginsBody } }, async (request) =>
      control.functions.setPlugins(request.params.gateway, request.params.name, request.body.plugins),
    )
    api.patch('/admin/gateways/:gateway/functions/:name/plugins', { schema: { ...tag('functions'), summary: 'Merge into function-level plugins (a conf replaces that plugin, null removes it, others are kept)', params: functionParams, body: pluginPatchBody } }, async (request) =>
      control.functions.patchPlugins(request.params.gateway, request.params.name, request.body.plugins),
    )
    api.post('/admin/gateways/:gateway/functions/:name/publish', { schema: { ...tag('deployments'), summary: 'Compile the draft and deploy it (to dev by default)', params: functionParams, body: publishBody.optional() } }, async (request) =>
      control.functions.publish(request.params.gateway, request.params.name, request.body ?? {}),
    )
    api.post('/admin/gateways/:gateway/functions/:name/promote', { schema: { ...tag('deployments'), summary: 'Deploy the exact version of one stage to the next', params: functionParams, body: promoteBody } }, async (request) =>
      control.functions.promote(request.params.gateway, request.params.name, request.body),
    )
    api.post('/admin/gateways/:gateway/functions/:name/rollback', { schema: { ...tag('deployments'), summary: 'Point a stage at another version', params: functionParams, body: rollbackBody } }, async (request) =>
      control.functions.rollback(request.params.gateway, request.params.name, request.body),
    )
    api.post('/admin/gateways/:gateway/functions/:name/undeploy', { schema: { ...tag('deployments'), summary: 'Stop serving a function on a stage', params: functionParams, body: z.object({ stage: stageSchema }).strict() } }, async (request) =>
      control.functions.undeploy(request.params.gateway, request.params.name, request.body.stage),
    )
    api.get('/admin/gateways/:gateway/functions/:name/versions', { schema: { ...tag('functions'), summary: 'List versions, newest first', params: functionParams } }, async (request) => ({
      versions: await control.functions.versions(request.params.gateway, request.params.name),
    }))
    api.get('/admin/gateways/:gateway/functions/:name/versions/:number', {
      schema: { ...tag('functions'), summary: 'Get one version with its source and metadata', params: functionParams.extend({ number: z.coerce.number().int().positive() }) },
    }, async (request) => {
      const { code: _code, ...version } = await control.functions.version(request.params.gateway, request.params.name, request.params.number)
      return version
    })

    // --- applications and grants -------------------------------------------------------------
    api.get('/admin/applications', { schema: { ...tag('access'), summary: 'List applications' } }, async () => ({
      applications: await control.access.listApplications(),
    }))
    api.post('/admin/applications', { schema: { ...tag('access'), summary: 'Create an application (API consumer)', body: createApplicationBody } }, async (request, reply) =>
      created(reply, await control.access.createApplication(request.body)),
    )
    api.get('/admin/applications/:application', { schema: { ...tag('access'), summary: 'Get an application by id or name', params: z.object({ application: z.string() }) } }, async (request) =>
      control.access.application(request.params.application),
    )
    api.delete('/admin/applications/:application', { schema: { ...tag('access'), summary: 'Delete an application and its grants', params: z.object({ application: z.string() }) } }, async (request, reply) => {
      await control.access.deleteApplication(request.params.application)
      return reply.status(204).send()
    })
    api.get('/admin/grants', {
      schema: { ...tag('access'), summary: 'List grants (keys are never shown)', querystring: z.object({ application: z.string().optional(), gateway: z.string().optional() }) },
    }, async (request) => ({
      grants: await control.access.listGrants({ application: request.query.application, gatewayId: request.query.gateway }),
    }))
    api.post('/admin/grants', { schema: { ...tag('access'), summary: 'Grant an application one gateway environment; returns the API key once', body: grantBody } }, async (request, reply) =>
      created(reply, await control.access.grant({ application: request.body.application, gatewayId: request.body.gateway, stage: request.body.stage })),
    )
    api.get('/admin/grants/:grant', { schema: { ...tag('access'), summary: 'Get a grant', params: z.object({ grant: z.string() }) } }, async (request) =>
      control.access.getGrant(request.params.grant),
    )
    api.post('/admin/grants/:grant/revoke', { schema: { ...tag('access'), summary: 'Revoke a grant; its key stops working at once', params: z.object({ grant: z.string() }) } }, async (request) =>
      control.access.revoke(request.params.grant),
    )
    api.post('/admin/grants/:grant/rotate', { schema: { ...tag('access'), summary: 'Issue a new key; returns it once', params: z.object({ grant: z.string() }), body: rotateBody.optional() } }, async (request) =>
      control.access.rotate(request.params.grant, request.body ?? {}),
    )
  })
}

function created<T>(reply: FastifyReply, body: T): T {
  void reply.status(201)
  return body
}

function accepted<T>(reply: FastifyReply, body: T): T {
  void reply.status(202)
  return body
}
