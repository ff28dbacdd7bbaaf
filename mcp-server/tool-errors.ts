/**
 * The one error mapper of the MCP surface. A failing operation is a tool result with
 * `isError: true` whose text is `{"error": {code, message, details?}}`, the same shape as the
 * REST API's error bodies, so an agent can match on `code`. Protocol errors (McpError: unknown
 * tool, invalid arguments, cancelled) pass through untouched. Internal errors keep their message
 * to the server log: nothing of the host leaks into a result.
 */
import { McpError, type CallToolResult } from '@modelcontextprotocol/sdk/types.js'
import { toImprunError } from '../control/errors.ts'

export interface ToolErrorBody {
  error: { code: string; message: string; details?: Record<string, unknown> }
}

/** A tool result reporting a failure with a code (domain errors and failed function calls). */
export function errorResult(code: string, message: string, details?: Record<string, unknown>): CallToolResult {
  const body: ToolErrorBody = { error: details ? { code, message, details } : { code, message } }
  return { content: [{ type: 'text', text: JSON.stringify(body) }], isError: true }
}

/**
 * Turns anything a tool handler threw into its result. McpErrors are rethrown: they are the
 * protocol's business. `onInternal` sees unexpected errors (for the server log).
 */
export function toToolResult(error: unknown, onInternal?: (error: unknown) => void): CallToolResult {
  if (error instanceof McpError) throw error
  const failure = toImprunError(error)
  if (failure.code === 'internal') {
    onInternal?.(error)
    return errorResult('internal', 'internal error')
  }
  return errorResult(failure.code, failure.message, failure.details)
}
