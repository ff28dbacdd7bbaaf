/**
 * Applications (API consumers) and their grants: one grant per application × gateway
 * environment, carrying an API key that is shown once.
 */
import { z } from 'zod'
import { applicationNameSchema } from '../../control/domain/names.ts'
import type { McpServices } from '../mcp-services.ts'
import { defineTool, effects, type AnyToolDefinition } from '../tool-definition.ts'
import { applicationOutput, gatewayArgument, grantOutput, grantWithKeyOutput, stageArgument } from './schemas.ts'

const applicationArgument = z.string().min(1).describe('Application id (app_…) or name')
const grantArgument = z.string().min(1).describe('Grant id (grt_…)')

export function accessTools(services: McpServices): AnyToolDefinition[] {
  const { access } = services.control
  return [
    defineTool({
      name: 'application_create',
      title: 'Create application',
      description: 'Create an application: a consumer of APIs (a mobile app, a partner, a service). Give it access to an environment with grant_create.',
      input: z
        .object({
          name: applicationNameSchema.describe('Unique application name, e.g. mobile (letters, digits, space, _, . or -)'),
          description: z.string().max(500).optional().describe('Who or what the application is'),
        })
        .strict(),
      output: applicationOutput,
      annotations: effects.additiveWrite,
      handler: (input) => access.createApplication(input),
    }),
    defineTool({
      name: 'application_list',
      title: 'List applications',
      description: 'List all applications.',
      input: z.object({}).strict(),
      output: z.object({ applications: z.array(applicationOutput) }),
      annotations: effects.read,
      handler: async () => ({ applications: await access.listApplications() }),
    }),
    defineTool({
      name: 'application_delete',
      title: 'Delete application',
      description: 'Delete an application and all its grants; its keys stop working at once.',
      input: z.object({ application: applicationArgument }).strict(),
      output: z.object({ deleted: z.string().describe('Id of the deleted application') }),
      annotations: effects.destructive,
      handler: async (input) => {
        const application = await access.application(input.application)
        await access.deleteApplication(application.id)
        return { deleted: application.id }
      },
    }),
    defineTool({
      name: 'grant_create',
      title: 'Grant environment access',
      description:
        'Let an application call one gateway environment. Returns the API key ONCE (apiKey): hand it to the application; only a hash is stored. Callers send it as `Authorization: Bearer <key>` or `x-api-key`; the environment\'s MCP function endpoint /mcp/{gateway}/{stage} takes it too. An existing active grant is already_exists (rotate it instead).',
      input: z
        .object({
          application: applicationArgument,
          gateway: gatewayArgument,
          stage: stageArgument.describe('Environment to grant'),
        })
        .strict(),
      output: grantWithKeyOutput,
      annotations: effects.additiveWrite,
      handler: (input) => access.grant({ application: input.application, gatewayId: input.gateway, stage: input.stage }),
    }),
    defineTool({
      name: 'grant_list',
      title: 'List grants',
      description: 'List grants, optionally of one application or one gateway. Keys are never shown, only a preview.',
      input: z
        .object({
          application: applicationArgument.optional().describe('Only grants of this application (id or name)'),
          gateway: gatewayArgument.optional().describe('Only grants for this gateway'),
        })
        .strict(),
      output: z.object({ grants: z.array(grantOutput) }),
      annotations: effects.read,
      handler: async (input) => ({ grants: await access.listGrants({ application: input.application, gatewayId: input.gateway }) }),
    }),
    defineTool({
      name: 'grant_revoke',
      title: 'Revoke grant',
      description: 'Revoke a grant: its key stops working on the next request. grant_create for the same application and environment re-activates it with a new key.',
      input: z.object({ grant: grantArgument }).strict(),
      output: grantOutput,
      annotations: effects.destructive,
      handler: (input) => access.revoke(input.grant),
    }),
    defineTool({
      name: 'grant_rotate',
      title: 'Rotate grant key',
      description:
        'Issue a new API key for an active grant and return it ONCE. The old key stops working at once, or after graceSeconds so deployed clients can switch over.',
      input: z
        .object({
          grant: grantArgument,
          graceSeconds: z.number().int().min(0).max(86_400).optional().describe('How long the old key keeps working, seconds (default 0, at most a day)'),
        })
        .strict(),
      output: grantWithKeyOutput,
      annotations: { ...effects.destructive, idempotentHint: false },
      handler: (input) => access.rotate(input.grant, { graceSeconds: input.graceSeconds }),
    }),
  ]
}
