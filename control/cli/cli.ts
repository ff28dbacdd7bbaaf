/**
 * The `imprun` command line: picks the command group from the first argument and reports
 * failures as `error <code>: <message>` on stderr. Exit codes: 0 ok, 1 failure (API, network,
 * files), 2 wrong usage.
 */
import type { Compiler } from '../ports.ts'
import { runAdminGroup, type AdminCommandGroup } from './admin-command.ts'
import { appCommands } from './app-commands.ts'
import { CliError, usageError } from './cli-error.ts'
import type { CliIo } from './cli-io.ts'
import { formatColumns } from './command-line.ts'
import { envCommands } from './env-commands.ts'
import { functionCommands } from './function-commands.ts'
import { gatewayCommands } from './gateway-commands.ts'
import { grantCommands } from './grant-commands.ts'
import { logsCommands } from './logs-commands.ts'
import { providerCommands } from './provider-commands.ts'
import packageJson from '../../package.json' with { type: 'json' }

export interface CliContext {
  /**
   * Gives `imprun start` its compiler. A loader rather than a compiler so that the admin
   * commands, which only talk HTTP, never load the compiler's dependencies.
   */
  loadCompiler?: () => Compiler | Promise<Compiler>
}

const groups: readonly AdminCommandGroup[] = [gatewayCommands, functionCommands, envCommands, appCommands, grantCommands, logsCommands, providerCommands]

export const cliUsage = [
  'imprun — a self-hostable, MCP-first serverless API platform',
  '',
  'Usage: imprun <command> [options]',
  '',
  'Commands:',
  ...formatColumns([
    ['start', 'Start the embedded platform in this process'],
    ['mcp', 'Serve MCP on stdio (Claude Desktop, IDEs): in-process, or relayed to --url'],
    ['control', 'Run the cluster control plane (Kubernetes + APISIX, MongoDB store)'],
    ['runtime', 'Run one gateway environment\'s runtime (cluster mode)'],
    ...groups.map((group) => [group.name, group.summary] as const),
    ['help [command]', 'Show help for a command'],
    ['version', 'Print the version'],
  ]),
  '',
  'Admin commands talk to a running server: --url (IMPRUN_URL, default http://127.0.0.1:8080),',
  '--token (IMPRUN_TOKEN, default read from ./.imprun/admin-token), --json for raw JSON output.',
  'Run `imprun help <command>` or `imprun <command> --help` for details.',
  '',
].join('\n')

export async function runCli(argv: string[], io: CliIo, context: CliContext = {}): Promise<number> {
  try {
    return await dispatch(argv, io, context)
  } catch (error) {
    const failure = error instanceof CliError ? error : new CliError('internal', error instanceof Error ? error.message : String(error), { cause: error })
    io.stderr.write(formatFailure(failure))
    return failure.exitCode
  }
}

async function dispatch(argv: string[], io: CliIo, context: CliContext): Promise<number> {
  const [command, ...rest] = argv
  if (command === undefined) throw usageError('missing command', cliUsage)
  if (command === 'help' || command === '--help' || command === '-h') {
    const topic = rest[0]
    if (topic === undefined) {
      io.stdout.write(cliUsage)
      return 0
    }
    return dispatch([topic, '--help', ...rest.slice(1).filter((argument) => argument !== '--help')], io, context)
  }
  if (command === 'version' || command === '--version' || command === '-v') {
    io.stdout.write(`imprun ${packageJson.version}\n`)
    return 0
  }
  if (command === 'start') {
    // Loaded on demand: the admin commands should not pay for fastify and the SQLite store.
    const { runStart } = await import('./start-command.ts')
    const loadCompiler =
      context.loadCompiler ??
      (() => {
        throw new CliError('internal', 'this build of imprun has no compiler to start the platform with')
      })
    return runStart(rest, { io, loadCompiler })
  }
  if (command === 'runtime') {
    // Cluster mode; loaded on demand like start.
    const { runRuntime } = await import('./runtime-command.ts')
    return runRuntime(rest, { io })
  }
  if (command === 'control') {
    const { runControl } = await import('./control-command.ts')
    const loadCompiler =
      context.loadCompiler ??
      (() => {
        throw new CliError('internal', 'this build of imprun has no compiler to run the control plane with')
      })
    return runControl(rest, { io, loadCompiler })
  }
  if (command === 'mcp') {
    // Loaded on demand, like start: it may bring up the whole platform.
    const { runMcp } = await import('./mcp-command.ts')
    const loadCompiler =
      context.loadCompiler ??
      (() => {
        throw new CliError('internal', 'this build of imprun has no compiler to start the platform with')
      })
    return runMcp(rest, { io, loadCompiler })
  }
  const group = groups.find((candidate) => candidate.name === command)
  if (!group) throw usageError(`unknown command '${command}'`, cliUsage)
  return runAdminGroup(group, rest, io)
}

function formatFailure(failure: CliError): string {
  const lines = [`error ${failure.code}: ${failure.message}`]
  const issues = failure.details?.issues
  if (Array.isArray(issues) && issues.length > 1) {
    for (const issue of issues as Array<{ path?: unknown; message?: unknown }>) lines.push(`  ${String(issue.path)}: ${String(issue.message)}`)
  }
  const diagnostics = failure.details?.diagnostics
  // The message already names the first diagnostic; list them all only when there are more.
  if (Array.isArray(diagnostics) && diagnostics.length > 1) {
    for (const diagnostic of diagnostics as Array<{ file?: unknown; line?: unknown; column?: unknown; message?: unknown }>) {
      lines.push(`  ${String(diagnostic.file)}:${String(diagnostic.line)}:${String(diagnostic.column)}: ${String(diagnostic.message)}`)
    }
  }
  for (const hint of failure.hints) lines.push(`hint: ${hint}`)
  if (failure.usage) lines.push('', failure.usage.trimEnd())
  return `${lines.join('\n')}\n`
}
