/** Invocation logs: recent calls of a gateway's functions with their log lines. */
import { z } from 'zod'
import type { McpServices } from '../mcp-services.ts'
import { defineTool, effects, type AnyToolDefinition } from '../tool-definition.ts'
import { functionArgument, gatewayArgument, logEntryOutput, stageArgument } from './schemas.ts'

export function logTools(services: McpServices): AnyToolDefinition[] {
  return [
    defineTool({
      name: 'logs_list',
      title: 'Recent invocations',
      description:
        'Recent invocations of a gateway\'s functions, newest first, from every surface (HTTP, MCP, chat, test runs): status, duration, caller application, error, and the lines the function logged with ctx.log.',
      input: z
        .object({
          gateway: gatewayArgument,
          function: functionArgument.optional().describe('Only this function'),
          stage: stageArgument.optional().describe('Only this stage'),
          limit: z.number().int().min(1).max(1000).optional().describe('At most this many entries (default 50)'),
        })
        .strict(),
      output: z.object({ logs: z.array(logEntryOutput) }),
      annotations: effects.read,
      handler: async ({ gateway, ...filter }) => {
        await services.control.gateways.record(gateway)
        return { logs: await services.logs.query(gateway, filter) }
      },
    }),
  ]
}
