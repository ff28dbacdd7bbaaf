/**
 * The management MCP server: one tool per platform operation, resources for sources, versions,
 * history and logs, and prompts for writing functions. Handlers are thin: parse arguments (bad
 * ones are InvalidParams), call the control services, parse the result through the tool's
 * output schema, and map failures with the one error mapper.
 *
 * Tool definitions are built once per platform (`createManagementTools`) and shared by every
 * session's `Server`, so a new session costs a few handler registrations.
 */
import { Server } from '@modelcontextprotocol/sdk/server/index.js'
import {
  CallToolRequestSchema,
  CompleteRequestSchema,
  GetPromptRequestSchema,
  ListPromptsRequestSchema,
  ListResourcesRequestSchema,
  ListResourceTemplatesRequestSchema,
  ListToolsRequestSchema,
  ReadResourceRequestSchema,
  type CallToolResult,
  type Tool,
} from '@modelcontextprotocol/sdk/types.js'
import type { LogLine, ProgressReport } from '../runtime/sandbox/function-sandbox.ts'
import type { McpServices } from './mcp-services.ts'
import { progressReporter } from './progress.ts'
import { getPrompt, promptArgumentsCompletedAsGateway, prompts } from './prompts.ts'
import { completeResourceArgument, listResources, readResource, resourceTemplates } from './resources.ts'
import { installLogging, serverInfo } from './server-support.ts'
import { parseArguments, structuredResult, toolListing, toolNamePattern, unknownTool, type AnyToolDefinition } from './tool-definition.ts'
import { toToolResult } from './tool-errors.ts'
import { accessTools } from './tools/access-tools.ts'
import { functionTools } from './tools/function-tools.ts'
import { gatewayTools } from './tools/gateway-tools.ts'
import { logTools } from './tools/log-tools.ts'
import { variableTools } from './tools/variable-tools.ts'

export interface ManagementTools {
  definitions: ReadonlyMap<string, AnyToolDefinition>
  listing: Tool[]
}

export function createManagementTools(services: McpServices): ManagementTools {
  const all = [...gatewayTools(services), ...functionTools(services), ...logTools(services), ...accessTools(services), ...variableTools(services)]
  const definitions = new Map<string, AnyToolDefinition>()
  for (const definition of all) {
    if (!toolNamePattern.test(definition.name) || definitions.has(definition.name)) throw new Error(`bad or duplicate tool name '${definition.name}'`)
    definitions.set(definition.name, definition)
  }
  return { definitions, listing: all.map(toolListing) }
}

const instructions = [
  'imprun: TypeScript functions published to API gateways with dev, staging and prod environments.',
  'Typical flow: gateway_create → gateway_wait → function_write → function_test → function_publish (dev) → function_promote to staging and prod → application_create + grant_create (API key shown once).',
  'Every published function is an HTTP endpoint /{gateway}/{stage}/{function} and a tool at the MCP endpoint /mcp/{gateway}/{stage} (grant key as Bearer).',
  'Failures are tool results with isError and {"error": {"code", "message"}}; match on code.',
].join('\n')

export function createManagementServer(services: McpServices, tools: ManagementTools = createManagementTools(services)): Server {
  const server = new Server(serverInfo, {
    capabilities: { tools: {}, resources: {}, prompts: {}, completions: {}, logging: {} },
    instructions,
  })
  const logging = installLogging(server)

  server.setRequestHandler(ListToolsRequestSchema, async () => ({ tools: tools.listing }))

  server.setRequestHandler(CallToolRequestSchema, async (request, extra): Promise<CallToolResult> => {
    const definition = tools.definitions.get(request.params.name)
    if (!definition) throw unknownTool(request.params.name)
    const input = parseArguments(definition, request.params.arguments)
    try {
      const progress = progressReporter(extra)
      const observe = (functionName: string) => ({
        log: (line: LogLine) => logging.forward(line, functionName, extra),
        progress: (report: ProgressReport) => progress.relay(report.progress, report.total, report.message),
      })
      const value = await definition.handler(input, { signal: extra.signal, progress, observe })
      // JSON first: what goes on the wire is JSON, and the schema checks that, not class instances.
      return structuredResult(definition.output.parse(JSON.parse(JSON.stringify(value))))
    } catch (error) {
      return toToolResult(error, services.reportInternalError ?? reportToStderr)
    }
  })

  server.setRequestHandler(ListResourcesRequestSchema, async () => ({ resources: await listResources(services) }))
  server.setRequestHandler(ListResourceTemplatesRequestSchema, async () => ({ resourceTemplates }))
  server.setRequestHandler(ReadResourceRequestSchema, async (request) => readResource(services, request.params.uri))

  server.setRequestHandler(ListPromptsRequestSchema, async () => ({ prompts }))
  server.setRequestHandler(GetPromptRequestSchema, async (request) => getPrompt(request.params.name, request.params.arguments))

  server.setRequestHandler(CompleteRequestSchema, async (request) => {
    const { ref, argument } = request.params
    const context = request.params.context?.arguments ?? {}
    let values: string[] = []
    if (ref.type === 'ref/resource') values = await completeResourceArgument(services, argument, context)
    else if (promptArgumentsCompletedAsGateway.has(argument.name)) values = await completeResourceArgument(services, argument, context)
    return { completion: { values: values.slice(0, 100), total: values.length, hasMore: values.length > 100 } }
  })
  return server
}

function reportToStderr(error: unknown): void {
  process.stderr.write(`imprun mcp: internal error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
}
