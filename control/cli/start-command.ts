/**
 * `imprun start`: the embedded platform in this process until SIGINT or SIGTERM. Prints where
 * it listens and, on the first start only, the admin token.
 */
import { startEmbeddedPlatform, type EmbeddedPlatform } from '../platform.ts'
import type { Compiler } from '../ports.ts'
import { CliError } from './cli-error.ts'
import type { CliIo } from './cli-io.ts'
import { waitForStopSignal } from './stop-signal.ts'
import { checkPositionals, formatColumns, formatOptions, helpOption, parseCommandLine, parseInteger, type OptionSpecs } from './command-line.ts'
import { resolveDataDirectory } from './data-directory.ts'
import { platformUrls } from './platform-urls.ts'

export interface StartContext {
  io: CliIo
  /** Called once the arguments are known to be good: a compiler is heavy to load. */
  loadCompiler: () => Compiler | Promise<Compiler>
}

const startOptions: OptionSpecs = {
  'data-dir': { type: 'string', value: 'DIR', description: 'Data directory (env IMPRUN_DATA_DIR; default ./.imprun)' },
  port: { type: 'string', value: 'N', description: 'Port, 0 for any free one (env IMPRUN_PORT or PORT; default 8080)' },
  host: { type: 'string', value: 'HOST', description: 'Interface to listen on (env IMPRUN_HOST; default 127.0.0.1)' },
}

export const startUsage = [
  'Usage: imprun start [options]',
  '',
  'Runs the embedded platform in this process: SQLite store, reconciler and admin API on one port.',
  'The first start creates the admin token, prints it once and saves it to <data-dir>/admin-token.',
  'Stop with Ctrl-C (SIGINT) or SIGTERM.',
  '',
  'Options:',
  ...formatOptions({ ...startOptions, ...helpOption }),
  '',
].join('\n')

/** Resolves with the exit code once the platform has been stopped by a signal. */
export async function runStart(argv: string[], context: StartContext): Promise<number> {
  const { io } = context
  const commandLine = parseCommandLine(argv, startOptions, startUsage)
  if (commandLine.help) {
    io.stdout.write(startUsage)
    return 0
  }
  checkPositionals(commandLine.positionals, [], startUsage)
  const dataDirectory = resolveDataDirectory(commandLine.string('data-dir'), io.env)
  const portText = commandLine.string('port') ?? (io.env.IMPRUN_PORT || io.env.PORT || '8080')
  const port = parseInteger(portText, 'the port', { min: 0, max: 65_535 }, startUsage)
  const host = commandLine.string('host') ?? (io.env.IMPRUN_HOST || '127.0.0.1')

  const compiler = await context.loadCompiler()
  let platform: EmbeddedPlatform
  try {
    platform = await startEmbeddedPlatform({ dataDirectory, port, host, compiler })
  } catch (error) {
    throw startFailure(error, host, port)
  }

  io.stdout.write(announcement(platform))
  const signal = await waitForStopSignal(io.signals ?? process)
  io.stderr.write(`received ${signal}, stopping…\n`)
  await platform.close()
  io.stderr.write('stopped\n')
  return 0
}

function announcement(platform: EmbeddedPlatform): string {
  const lines = [
    `imprun is running at ${platform.url}`,
    '',
    ...formatColumns([...platformUrls(platform.url).map(({ label, url }) => [label, url] as const), ['data', platform.dataDirectory]]),
    '',
  ]
  if (platform.createdAdminToken) {
    lines.push(
      `Admin token (shown once; saved to ${platform.tokenFile}):`,
      `  ${platform.createdAdminToken}`,
      '',
      'The imprun CLI on this machine reads it from there; elsewhere pass --token or set IMPRUN_TOKEN.',
    )
  } else {
    lines.push(`Admin token: in ${platform.tokenFile} (the CLI on this machine reads it from there)`)
  }
  lines.push('Press Ctrl-C to stop.', '')
  return lines.join('\n')
}

function startFailure(error: unknown, host: string, port: number): CliError {
  const code = (error as NodeJS.ErrnoException | undefined)?.code
  if (code === 'EADDRINUSE') {
    return new CliError('port_in_use', `port ${port} on ${host} is already in use`, {
      cause: error,
      hints: ['stop the other process (another `imprun start`?) or choose a port with --port N (0 picks a free one)'],
    })
  }
  if (code === 'EACCES') {
    return new CliError('permission_denied', `not allowed to listen on ${host}:${port}`, { cause: error, hints: ['use a port above 1023 with --port N'] })
  }
  if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND') {
    return new CliError('bad_host', `cannot listen on ${host}: no such local address`, { cause: error, hints: ['use --host 127.0.0.1 or --host 0.0.0.0'] })
  }
  const message = error instanceof Error ? error.message : String(error)
  return new CliError(typeof code === 'string' ? code.toLowerCase() : 'start_failed', `could not start: ${message}`, { cause: error })
}
