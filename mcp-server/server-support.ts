/**
 * What every imprun MCP server shares: its name and version, and a per-connection logging level
 * (`logging/setLevel`) that decides which function log lines are forwarded as
 * `notifications/message`.
 */
import type { Server } from '@modelcontextprotocol/sdk/server/index.js'
import { SetLevelRequestSchema, type LoggingLevel } from '@modelcontextprotocol/sdk/types.js'
import packageJson from '../package.json' with { type: 'json' }
import type { LogLine } from '../runtime/sandbox/function-sandbox.ts'
import type { RequestExtra } from './progress.ts'

export const serverInfo = { name: 'imprun', title: 'imprun', version: packageJson.version }

const severity: readonly LoggingLevel[] = ['debug', 'info', 'notice', 'warning', 'error', 'critical', 'alert', 'emergency']

const levelOfLine: Record<LogLine['level'], LoggingLevel> = { debug: 'debug', info: 'info', warn: 'warning', error: 'error' }

export interface LogForwarder {
  /**
   * Sends a function's log line on the request's stream as it is written, if at or above the
   * client's level (fire and forget; lines go out in the order written).
   */
  forward(line: LogLine, logger: string, extra: Pick<RequestExtra, 'sendNotification'>): void
}

/** Installs `logging/setLevel` on a server (declared with the logging capability). */
export function installLogging(server: Server): LogForwarder {
  // Until the client sets a level everything is sent, as the SDK does.
  let minimum = 0
  server.setRequestHandler(SetLevelRequestSchema, async (request) => {
    minimum = Math.max(0, severity.indexOf(request.params.level))
    return {}
  })
  return {
    forward(line, logger, extra) {
      const level = levelOfLine[line.level]
      if (severity.indexOf(level) < minimum) return
      extra.sendNotification({ method: 'notifications/message', params: { level, logger, data: line.message } }).catch(() => {})
    },
  }
}
