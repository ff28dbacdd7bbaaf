/**
 * `imprun mcp`: the MCP server on stdin/stdout, for MCP hosts that start a command (Claude
 * Desktop, IDEs). stdout carries only JSON-RPC; everything else goes to stderr.
 *
 * Two modes, chosen by whether a server URL is given:
 * - in-process (default): starts the embedded platform on the data directory in this process
 *   (its HTTP port on 127.0.0.1, port 0 unless --port) and serves MCP from it. Nothing else has
 *   to run. Do not point it at the data directory of a running `imprun start`: two processes
 *   would each serve only the environments they started themselves.
 * - bridge (--url or IMPRUN_URL): relays stdio to the Streamable HTTP endpoint of a running
 *   server (/mcp with the admin token, or /mcp/{gateway}/{stage} with a grant key).
 *
 * With --gateway and --stage it serves that environment's functions as tools instead of the
 * management tools.
 */
import { once } from 'node:events'
import type { Readable, Writable } from 'node:stream'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js'
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js'
import { stages } from '../domain/names.ts'
import type { Compiler, Stage } from '../ports.ts'
import { usageError } from './cli-error.ts'
import type { CliIo } from './cli-io.ts'
import { checkPositionals, formatOptions, helpOption, parseCommandLine, parseInteger, type OptionSpecs } from './command-line.ts'
import { resolveConnection } from './admin-connection.ts'
import { resolveDataDirectory } from './data-directory.ts'
import { waitForStopSignal } from './stop-signal.ts'

export interface McpCommandContext {
  io: CliIo
  loadCompiler: () => Compiler | Promise<Compiler>
  /** Default process.stdin / process.stdout. */
  input?: Readable
  output?: Writable
}

const mcpOptions: OptionSpecs = {
  'data-dir': { type: 'string', value: 'DIR', description: 'Data directory of the in-process platform (env IMPRUN_DATA_DIR; default ./.imprun)' },
  port: { type: 'string', value: 'N', description: 'HTTP port of the in-process platform on 127.0.0.1 (default 0: any free one)' },
  gateway: { type: 'string', value: 'ID', description: "Serve this gateway environment's functions as tools (with --stage)" },
  stage: { type: 'string', value: 'STAGE', description: 'dev, staging or prod (with --gateway)' },
  url: { type: 'string', value: 'URL', description: 'Bridge to a running server instead (env IMPRUN_URL)' },
  token: { type: 'string', value: 'TOKEN', description: 'Admin token for --url (env IMPRUN_TOKEN; default: read <data-dir>/admin-token)' },
  key: { type: 'string', value: 'KEY', description: 'Grant key for --url with --gateway/--stage (env IMPRUN_KEY)' },
}

export const mcpUsage = [
  'Usage: imprun mcp [options]',
  '',
  'Serves MCP on stdin/stdout (logs go to stderr). By default it runs the embedded platform',
  'in this process on the data directory; with --url it relays to a running server instead.',
  'With --gateway and --stage it serves that environment\'s functions as tools.',
  '',
  'Claude Desktop (claude_desktop_config.json):',
  '  { "mcpServers": { "imprun": { "command": "npx", "args": ["imprun", "mcp", "--data-dir", "/path/to/.imprun"] } } }',
  '',
  'Options:',
  ...formatOptions({ ...mcpOptions, ...helpOption }),
  '',
].join('\n')

export async function runMcp(argv: string[], context: McpCommandContext): Promise<number> {
  const { io } = context
  const commandLine = parseCommandLine(argv, mcpOptions, mcpUsage)
  if (commandLine.help) {
    io.stdout.write(mcpUsage)
    return 0
  }
  checkPositionals(commandLine.positionals, [], mcpUsage)
  const gateway = commandLine.string('gateway')
  const stageText = commandLine.string('stage')
  if ((gateway === undefined) !== (stageText === undefined)) throw usageError('give --gateway and --stage together', mcpUsage)
  if (stageText !== undefined && !stages.includes(stageText as Stage)) throw usageError(`--stage must be dev, staging or prod, not '${stageText}'`, mcpUsage)
  const scope = gateway && stageText ? { gatewayId: gateway, stage: stageText as Stage } : null
  const input = context.input ?? process.stdin
  const output = context.output ?? process.stdout
  const url = commandLine.string('url') ?? io.env.IMPRUN_URL

  const stdio = new StdioServerTransport(input, output)
  const inputEnded = once(input, 'end').catch(() => {})
  if (url) {
    await bridge(stdio, commandLine, context, scope, inputEnded)
    return 0
  }

  const { startEmbeddedPlatform } = await import('../platform.ts')
  const { createFunctionServer, createManagementServer, EnvironmentToolDirectory, mcpServicesOf } = await import('../../mcp-server/index.ts')
  const dataDirectory = resolveDataDirectory(commandLine.string('data-dir'), io.env)
  const port = parseInteger(commandLine.string('port') ?? '0', 'the port', { min: 0, max: 65_535 }, mcpUsage)
  const platform = await startEmbeddedPlatform({ dataDirectory, port, host: '127.0.0.1', compiler: await context.loadCompiler(), logger: false })
  io.stderr.write(`imprun mcp: platform running at ${platform.url} on ${platform.dataDirectory}\n`)
  const services = mcpServicesOf(platform.services)
  services.reportInternalError = (error) => io.stderr.write(`imprun mcp: internal error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
  const directory = new EnvironmentToolDirectory(services.catalog)
  let server
  if (scope) {
    await directory.tools(scope.gatewayId, scope.stage)
    server = createFunctionServer({ services, directory }, { ...scope, consumer: null })
  } else {
    server = createManagementServer(services)
  }
  const closed = new Promise<void>((resolve) => (server.onclose = chain(server.onclose, resolve)))
  await server.connect(stdio)
  await Promise.race([inputEnded, closed, waitForStopSignal(io.signals ?? process)])
  await server.close().catch(() => {})
  directory.close()
  await platform.close()
  return 0
}

/** Relays JSON-RPC messages between stdio and the server's Streamable HTTP endpoint. */
async function bridge(stdio: StdioServerTransport, commandLine: ReturnType<typeof parseCommandLine>, context: McpCommandContext, scope: { gatewayId: string; stage: Stage } | null, inputEnded: Promise<unknown>): Promise<void> {
  const { io } = context
  const connection = resolveConnection(commandLine, io.env, mcpUsage)
  const credential = scope ? (commandLine.string('key') ?? io.env.IMPRUN_KEY) : connection.token
  if (!credential) throw usageError(scope ? 'a grant key is needed to bridge to a function endpoint: --key or IMPRUN_KEY' : 'no admin token: --token, IMPRUN_TOKEN or --data-dir with an admin-token file', mcpUsage)
  const endpoint = new URL(scope ? `mcp/${encodeURIComponent(scope.gatewayId)}/${scope.stage}` : 'mcp', connection.url.endsWith('/') ? connection.url : `${connection.url}/`)
  const http = new StreamableHTTPClientTransport(endpoint, { requestInit: { headers: { authorization: `Bearer ${credential}` } } })
  const fail = (error: unknown) => io.stderr.write(`imprun mcp: ${error instanceof Error ? error.message : String(error)}\n`)
  stdio.onmessage = (message: JSONRPCMessage) => {
    http.send(message).catch((error: unknown) => {
      fail(error)
      // A request that could not be delivered still deserves an answer.
      if ('id' in message && 'method' in message) {
        void stdio.send({ jsonrpc: '2.0', id: message.id, error: { code: -32603, message: `relay to ${endpoint.href} failed: ${error instanceof Error ? error.message : String(error)}` } })
      }
    })
  }
  http.onmessage = (message: JSONRPCMessage) => void stdio.send(message).catch(fail)
  http.onerror = fail
  const closed = new Promise<void>((resolve) => (http.onclose = resolve))
  await http.start()
  await stdio.start()
  io.stderr.write(`imprun mcp: relaying stdio to ${endpoint.href}\n`)
  await Promise.race([inputEnded, closed, waitForStopSignal(io.signals ?? process)])
  await http.terminateSession().catch(() => {})
  await http.close().catch(() => {})
  await stdio.close().catch(() => {})
}

function chain(previous: (() => void) | undefined, next: () => void): () => void {
  return () => {
    previous?.()
    next()
  }
}
