/**
 * Environment variables and secrets (ctx.env in functions). A secret's value is write-only:
 * listing shows its name, never its value.
 */
import { z } from 'zod'
import { variableNameSchema } from '../../control/domain/variables.ts'
import type { McpServices } from '../mcp-services.ts'
import { defineTool, effects, type AnyToolDefinition } from '../tool-definition.ts'
import { gatewayArgument, stageArgument, variableOutput } from './schemas.ts'

export function variableTools(services: McpServices): AnyToolDefinition[] {
  const { variables } = services.control
  return [
    defineTool({
      name: 'variable_set',
      title: 'Set variable or secret',
      description:
        'Set an environment variable or secret of one environment; functions read it as ctx.env.NAME on their next call. A secret\'s value is never shown again (not even to this server\'s tools); setting an existing name replaces its value.',
      input: z
        .object({
          gateway: gatewayArgument,
          stage: stageArgument.describe('Environment the variable belongs to'),
          name: variableNameSchema.describe('Variable name, e.g. API_BASE_URL (letters, digits, _)'),
          value: z.string().max(32 * 1024).describe('The value (at most 32 KiB)'),
          secret: z.boolean().optional().describe('Store as a secret: never shown again (default: keep what it was, else false)'),
        })
        .strict(),
      output: variableOutput,
      annotations: effects.destructive,
      handler: ({ gateway, stage, name, ...value }) => variables.set(gateway, stage, name, value),
    }),
    defineTool({
      name: 'variable_list',
      title: 'List variables',
      description: 'List the variables of a gateway, or of one environment: values of plain variables, names only for secrets.',
      input: z.object({ gateway: gatewayArgument, stage: stageArgument.optional().describe('Only this environment') }).strict(),
      output: z.object({ variables: z.array(variableOutput) }),
      annotations: effects.read,
      handler: async (input) => ({ variables: await variables.list(input.gateway, input.stage) }),
    }),
    defineTool({
      name: 'variable_delete',
      title: 'Delete variable',
      description: 'Remove a variable or secret from one environment.',
      input: z
        .object({
          gateway: gatewayArgument,
          stage: stageArgument.describe('Environment the variable belongs to'),
          name: z.string().min(1).describe('Variable name'),
        })
        .strict(),
      output: z.object({ deleted: z.string().describe('Name of the removed variable') }),
      annotations: effects.destructive,
      handler: async (input) => {
        await variables.delete(input.gateway, input.stage, input.name)
        return { deleted: input.name }
      },
    }),
  ]
}
