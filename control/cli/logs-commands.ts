/** `imprun logs <gateway> [-f]`: recent invocations of a gateway's functions, or follow new ones live. */
import { adminPath } from './admin-client.ts'
import type { AdminCommand, AdminCommandGroup } from './admin-command.ts'
import { usageError } from './cli-error.ts'

interface LogEntry {
  at: string
  requestId: string
  stage: string
  function: string
  version: number | null
  method: string
  status: number
  durationMs: number
  consumer: string | null
  error: { code: string; message: string } | null
  lines: Array<{ level: string; message: string; at: string }>
}

/** One invocation as lines: a header, then its log lines indented. */
export function formatLogEntry(entry: LogEntry): string[] {
  const version = entry.version === null ? 'draft' : `v${entry.version}`
  const outcome = entry.error ? `${entry.status} ${entry.error.code}: ${entry.error.message}` : String(entry.status)
  const lines = [`${entry.at} ${entry.stage}/${entry.function} ${version} ${entry.method} ${outcome} ${entry.durationMs}ms ${entry.requestId}`]
  for (const line of entry.lines) lines.push(`  ${line.level.padEnd(5)} ${line.message}`)
  return lines
}

const show: AdminCommand = {
  name: 'show',
  arguments: ['<gateway>'],
  summary: 'Recent invocations with their log lines (oldest first); -f keeps following',
  details: 'Examples:\n  imprun logs hometax\n  imprun logs hometax --function calculateTax --stage prod -f',
  options: {
    function: { type: 'string', value: 'NAME', description: 'Only this function' },
    stage: { type: 'string', value: 'STAGE', description: 'Only this stage (dev, staging, prod)' },
    limit: { type: 'string', value: 'N', description: 'How many recent invocations (default 20, at most 1000)' },
    follow: { type: 'boolean', short: 'f', description: 'Keep printing new invocations until interrupted' },
  },
  async run(invocation) {
    const [gateway] = invocation.arguments as [string]
    const limitText = invocation.commandLine.string('limit')
    const limit = limitText === undefined ? 20 : Number(limitText)
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw usageError('--limit takes a whole number from 1 to 1000', invocation.usage)
    const filter = { function: invocation.commandLine.string('function'), stage: invocation.commandLine.string('stage') }
    const path = adminPath`/admin/gateways/${gateway}/logs`
    const { logs } = await invocation.client.get<{ logs: LogEntry[] }>(path, { ...filter, limit })
    const recent = [...logs].reverse()
    const write = (entry: LogEntry) => {
      if (invocation.json) invocation.io.stdout.write(`${JSON.stringify(entry)}\n`)
      else invocation.io.stdout.write(`${formatLogEntry(entry).join('\n')}\n`)
    }
    if (!invocation.commandLine.flag('follow')) {
      if (invocation.json) return invocation.print({ logs }, () => '')
      if (recent.length === 0) invocation.io.stdout.write(`no invocations on ${gateway} yet\n`)
      for (const entry of recent) write(entry)
      return
    }
    for (const entry of recent) write(entry)
    const seen = new Set(recent.map((entry) => entry.requestId))
    const abort = new AbortController()
    const signals = invocation.io.signals ?? process
    const stop = () => abort.abort()
    signals.once('SIGINT', stop)
    signals.once('SIGTERM', stop)
    try {
      for await (const entry of invocation.client.events<LogEntry>(path, { ...filter, follow: 'true' }, abort.signal)) {
        if (seen.delete(entry.requestId)) continue
        write(entry)
      }
    } finally {
      signals.off('SIGINT', stop)
      signals.off('SIGTERM', stop)
    }
  },
}

export const logsCommands: AdminCommandGroup = {
  name: 'logs',
  summary: "Invocation logs of a gateway's functions (imprun logs <gateway> [-f])",
  commands: [show],
  defaultCommand: 'show',
}
