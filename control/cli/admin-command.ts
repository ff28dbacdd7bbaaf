/**
 * The shape shared by every admin command group (`gateway`, `function`, `env`, `app`, `grant`):
 * a table of subcommands with their arguments and options, from which both parsing and usage
 * text come. Running one resolves the connection, calls the command, and prints its result as
 * short human lines or, with --json, as the raw response.
 */
import { AdminClient } from './admin-client.ts'
import { connectionOptions, resolveConnection, unauthorizedHint } from './admin-connection.ts'
import { CliError, usageError } from './cli-error.ts'
import type { CliIo } from './cli-io.ts'
import { checkPositionals, formatColumns, formatOptions, helpOption, parseCommandLine, type OptionSpecs, type ParsedCommandLine } from './command-line.ts'

export interface AdminInvocation {
  commandLine: ParsedCommandLine
  /** The positional arguments, in the order of `AdminCommand.arguments`. */
  arguments: string[]
  client: AdminClient
  io: CliIo
  json: boolean
  usage: string
  /** Prints `data` as JSON with --json, else the lines `human` renders. */
  print(data: unknown, human: () => string | string[]): void
}

export interface AdminCommand {
  name: string
  /** `<required>` and `[optional]` positional arguments, for parsing and usage. */
  arguments?: readonly string[]
  summary: string
  /** Extra usage paragraph: examples, defaults, formats. */
  details?: string
  options?: OptionSpecs
  run(invocation: AdminInvocation): Promise<void>
}

export interface AdminCommandGroup {
  name: string
  summary: string
  commands: readonly AdminCommand[]
  /** Runs when the first argument is not a command name (`imprun logs hometax -f`). */
  defaultCommand?: string
}

export async function runAdminGroup(group: AdminCommandGroup, argv: string[], io: CliIo): Promise<number> {
  const first = argv[0]
  const known = first !== undefined && (group.commands.some((command) => command.name === first) || ['help', '--help', '-h'].includes(first))
  const [name, ...rest] = group.defaultCommand && first !== undefined && !known ? [group.defaultCommand, ...argv] : argv
  if (name === undefined) throw usageError(`missing ${group.name} command`, groupUsage(group))
  if (name === 'help' || name === '--help' || name === '-h') {
    const command = rest[0] === undefined ? undefined : group.commands.find((candidate) => candidate.name === rest[0])
    io.stdout.write(command ? commandUsage(group, command) : groupUsage(group))
    return 0
  }
  const command = group.commands.find((candidate) => candidate.name === name)
  if (!command) throw usageError(`unknown ${group.name} command '${name}'`, groupUsage(group))

  const usage = commandUsage(group, command)
  const commandLine = parseCommandLine(rest, { ...command.options, ...connectionOptions }, usage)
  if (commandLine.help) {
    io.stdout.write(usage)
    return 0
  }
  checkPositionals(commandLine.positionals, command.arguments ?? [], usage)
  const connection = resolveConnection(commandLine, io.env, usage)
  const json = commandLine.flag('json') === true
  const invocation: AdminInvocation = {
    commandLine,
    arguments: commandLine.positionals,
    client: new AdminClient({ url: connection.url, token: connection.token, fetch: io.fetch ?? globalThis.fetch }),
    io,
    json,
    usage,
    print(data, human) {
      if (json) {
        io.stdout.write(`${JSON.stringify(data ?? {}, null, 2)}\n`)
        return
      }
      const lines = human()
      const text = Array.isArray(lines) ? lines.join('\n') : lines
      if (text.length > 0) io.stdout.write(`${text}\n`)
    },
  }
  try {
    await command.run(invocation)
  } catch (error) {
    if (error instanceof CliError && error.code === 'unauthorized') throw error.withHint(unauthorizedHint(connection))
    throw error
  }
  return 0
}

export function groupUsage(group: AdminCommandGroup): string {
  const rows = group.commands.map((command) => [[command.name, ...(command.arguments ?? [])].join(' '), command.summary] as const)
  return [
    `Usage: imprun ${group.name} <command> [options]`,
    '',
    group.summary,
    '',
    'Commands:',
    ...formatColumns(rows),
    '',
    `Run \`imprun ${group.name} <command> --help\` for a command's options.`,
    '',
  ].join('\n')
}

export function commandUsage(group: AdminCommandGroup, command: AdminCommand): string {
  const lines = [`Usage: imprun ${[group.name, command.name, ...(command.arguments ?? [])].join(' ')} [options]`, '', command.summary]
  if (command.details) lines.push('', command.details)
  if (command.options && Object.keys(command.options).length > 0) lines.push('', 'Options:', ...formatOptions(command.options))
  lines.push('', 'Connection:', ...formatOptions({ ...connectionOptions, ...helpOption }), '')
  return lines.join('\n')
}
