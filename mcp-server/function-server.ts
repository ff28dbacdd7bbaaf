/**
 * The MCP server of one gateway environment: one tool per function live there, named after it
 * (`user/me` → `user.me`), described by the metadata stored at publish. A call runs through the
 * catalog like an HTTP request (limits, invocation log, caller attribution). The tool set
 * follows publishes, promotions and rollbacks: connected clients get
 * `notifications/tools/list_changed`.
 *
 * Annotations are left out on purpose: user code may write, delete or reach the network, and the
 * spec's defaults for a tool without hints say exactly that.
 */
import { Server } from '@modelcontextprotocol/sdk/server/index.js'
import { CallToolRequestSchema, ListToolsRequestSchema, type CallToolResult } from '@modelcontextprotocol/sdk/types.js'
import { isImprunError } from '../control/errors.ts'
import type { Stage } from '../control/ports.ts'
import type { EnvironmentToolDirectory } from './environment-tools.ts'
import { functionToolResult } from './function-result.ts'
import type { McpServices } from './mcp-services.ts'
import { progressReporter } from './progress.ts'
import { installLogging, serverInfo } from './server-support.ts'
import { invalidArguments, unknownTool, type ArgumentIssue } from './tool-definition.ts'
import { errorResult, toToolResult } from './tool-errors.ts'

export interface FunctionEndpointScope {
  gatewayId: string
  stage: Stage
  /** Application id of the grant that opened the session (for invocation logs); null for the admin. */
  consumer: string | null
}

export interface FunctionServerOptions {
  services: McpServices
  directory: EnvironmentToolDirectory
  /** Send list_changed on function changes (off for stateless one-request servers). */
  notifyChanges?: boolean
}

export function createFunctionServer(options: FunctionServerOptions, scope: FunctionEndpointScope): Server {
  const { services, directory } = options
  const { gatewayId, stage } = scope
  const server = new Server(serverInfo, {
    capabilities: { tools: { listChanged: true }, logging: {} },
    instructions: `The functions live on ${gatewayId}/${stage}, one tool each. Tool names are function names with / written as .`,
  })
  const logging = installLogging(server)

  server.setRequestHandler(ListToolsRequestSchema, async () => ({ tools: (await directory.tools(gatewayId, stage)).tools }))

  server.setRequestHandler(CallToolRequestSchema, async (request, extra): Promise<CallToolResult> => {
    const toolName = request.params.name
    const entry = (await directory.tools(gatewayId, stage)).byToolName.get(toolName)
    if (!entry) throw unknownTool(toolName)
    const progress = progressReporter(extra)
    let result
    try {
      progress.report(0, undefined, `calling ${entry.function.name}`)
      const call = services.catalog.call({
        gatewayId,
        stage,
        name: entry.function.name,
        input: request.params.arguments ?? {},
        source: 'mcp',
        consumer: scope.consumer,
        signal: extra.signal,
        // Log lines and the function's own progress reach the client while it runs.
        observer: {
          log: (line) => logging.forward(line, entry.function.name, extra),
          progress: (report) => progress.relay(report.progress, report.total, report.message),
        },
      })
      result = await progress.during(call, `running ${entry.function.name}`)
    } catch (error) {
      // Unpublished between listing and calling: for the client it is an unknown tool.
      if (isImprunError(error, 'not_found')) throw unknownTool(toolName)
      return toToolResult(error, services.reportInternalError)
    }
    const { outcome } = result
    progress.report(Math.round(result.durationMs) + 1, Math.round(result.durationMs) + 1, outcome.ok ? 'done' : `failed: ${outcome.code}`)
    if (outcome.ok) return functionToolResult(outcome.value, { empty: outcome.empty, hasOutputSchema: entry.hasOutputSchema })
    const issues = outcome.details?.issues
    if (outcome.code === 'invalid_input' && Array.isArray(issues)) throw invalidArguments(toolName, issues as ArgumentIssue[])
    return errorResult(outcome.code, outcome.message)
  })

  if (options.notifyChanges !== false) {
    const unwatch = directory.watch(gatewayId, stage, () => {
      server.sendToolListChanged().catch(() => {})
    })
    server.onclose = unwatch
  }
  return server
}
