/**
 * `imprun runtime --gateway G --env E`: the cluster-mode runtime of one gateway environment
 * (what each runtime Deployment runs). Store from `--store` / IMPRUN_STORE (`mongodb://…` in a
 * cluster), secret key from IMPRUN_SECRET_KEY; probes at /healthz and /readyz.
 */
import { ensurePlatformIndexes, redact, storeFromUrl } from '../adapters/store-from-url.ts'
import { checkName, gatewayIdSchema, stageSchema } from '../domain/names.ts'
import { isImprunError } from '../errors.ts'
import { createAesSecretBox, parseSecretKey } from '../secrets/aes-secret-box.ts'
import { CliError, usageError } from './cli-error.ts'
import type { CliIo } from './cli-io.ts'
import { waitForStopSignal } from './stop-signal.ts'
import { checkPositionals, formatOptions, helpOption, parseCommandLine, parseInteger, type OptionSpecs } from './command-line.ts'

const runtimeOptions: OptionSpecs = {
  gateway: { type: 'string', value: 'ID', description: 'Gateway to serve (env IMPRUN_GATEWAY)' },
  env: { type: 'string', value: 'STAGE', description: 'Environment to serve: dev, staging or prod (env IMPRUN_ENV)' },
  store: { type: 'string', value: 'URL', description: 'Store: mongodb://… or sqlite:<dir> (env IMPRUN_STORE)' },
  'database-prefix': { type: 'string', value: 'NAME', description: 'MongoDB system database / gateway database prefix (env IMPRUN_DATABASE_PREFIX; default imprun)' },
  port: { type: 'string', value: 'N', description: 'Port (env PORT; default 8080)' },
  host: { type: 'string', value: 'HOST', description: 'Interface (default 0.0.0.0)' },
}

export const runtimeUsage = [
  'Usage: imprun runtime --gateway ID --env STAGE [options]',
  '',
  'Serves one environment of one gateway behind APISIX (cluster mode): /<stage>/<function>,',
  'hot reload from the store\'s change feed, /healthz and /readyz probes.',
  'The secret key that opens environment secrets comes from IMPRUN_SECRET_KEY.',
  '',
  'Options:',
  ...formatOptions({ ...runtimeOptions, ...helpOption }),
  '',
].join('\n')

export async function runRuntime(argv: string[], context: { io: CliIo }): Promise<number> {
  const { io } = context
  const commandLine = parseCommandLine(argv, runtimeOptions, runtimeUsage)
  if (commandLine.help) {
    io.stdout.write(runtimeUsage)
    return 0
  }
  checkPositionals(commandLine.positionals, [], runtimeUsage)
  const gatewayText = commandLine.string('gateway') ?? io.env.IMPRUN_GATEWAY
  const stageText = commandLine.string('env') ?? io.env.IMPRUN_ENV
  const storeUrl = commandLine.string('store') ?? io.env.IMPRUN_STORE
  if (!gatewayText || !stageText) throw usageError('--gateway and --env are required', runtimeUsage)
  if (!storeUrl) throw usageError('--store (or IMPRUN_STORE) is required', runtimeUsage)
  const gatewayId = asUsage(() => checkName(gatewayIdSchema, gatewayText, 'gateway id'))
  const stage = asUsage(() => checkName(stageSchema, stageText, 'stage'))
  const port = parseInteger(commandLine.string('port') ?? io.env.PORT ?? '8080', 'the port', { min: 0, max: 65_535 }, runtimeUsage)
  const secretKey = requireSecretKey(io)
  const databasePrefix = commandLine.string('database-prefix') ?? io.env.IMPRUN_DATABASE_PREFIX
  const store = asUsage(() => storeFromUrl(storeUrl, databasePrefix ? { databasePrefix } : {}))
  const { startClusterRuntime } = await import('../../runtime/cluster-runtime.ts')
  try {
    await ensurePlatformIndexes(store)
  } catch (error) {
    // The store may come up after us: readiness reports it; indexes are made by the control plane too.
    io.stderr.write(`warning: could not create indexes on ${redact(storeUrl)}: ${error instanceof Error ? error.message : String(error)}\n`)
  }
  const runtime = await startClusterRuntime({ store, secretBox: createAesSecretBox(secretKey), gatewayId, stage, port, host: commandLine.string('host') ?? '0.0.0.0' })
  io.stdout.write(`imprun runtime for ${gatewayId}/${stage} listening on port ${runtime.port} (store ${redact(storeUrl)})\n`)
  const signal = await waitForStopSignal(io.signals ?? process)
  io.stderr.write(`received ${signal}, stopping…\n`)
  await runtime.close()
  await store.close()
  return 0
}

/** IMPRUN_SECRET_KEY, parsed; a usage error when absent or malformed. */
export function requireSecretKey(io: CliIo): Buffer {
  const text = io.env.IMPRUN_SECRET_KEY
  if (!text) throw new CliError('missing_secret_key', 'IMPRUN_SECRET_KEY is not set (32 bytes as 64 hex or 43 base64url characters)', { exitCode: 2 })
  return asUsage(() => parseSecretKey(text))
}

function asUsage<T>(work: () => T): T {
  try {
    return work()
  } catch (error) {
    if (isImprunError(error)) throw new CliError(error.code, error.message, { exitCode: 2 })
    throw error
  }
}
