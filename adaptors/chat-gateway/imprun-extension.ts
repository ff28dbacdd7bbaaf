/**
 * The request extension that lets a chat request use the key's environment's functions as tools.
 * Either a body field (the official SDKs send unknown body fields through) or headers (easiest
 * from an SDK: per-request `headers` options):
 *
 *   "imprun": { "functions": "all" | ["calculateTax", …], "max_rounds": 8, "timeout_ms": 120000 }
 *   imprun-functions: all | calculateTax,user/me
 *   imprun-max-rounds: 8
 *   imprun-timeout-ms: 120000
 *
 * The body wins over headers. Without either, the gateway is a plain proxy: no function tools.
 */
import { z } from 'zod'
import type { AgentResult } from './agent-loop.ts'
import type { ToolCallReport } from './function-tools.ts'

export const imprunExtensionSchema = z
  .object({
    functions: z.union([z.literal('all'), z.array(z.string().min(1)).max(128)]).optional().describe("'all' or function names of the key's environment"),
    max_rounds: z.number().int().min(1).max(32).optional().describe('Model calls at most (default 8)'),
    timeout_ms: z.number().int().min(1000).max(600_000).optional().describe('Time budget for the whole request'),
  })
  .strict()

export type ImprunExtension = z.infer<typeof imprunExtensionSchema>

export interface ResolvedExtension {
  functions: 'all' | string[] | null
  maxRounds: number
  timeoutMs: number
}

export interface ExtensionDefaults {
  maxRounds: number
  timeoutMs: number
}

/** Header values in the same shape as the body field (validated with the same schema). */
export function extensionFromHeaders(headers: Record<string, string | string[] | undefined>): Record<string, unknown> | undefined {
  const header = (name: string) => {
    const value = headers[name]
    return Array.isArray(value) ? value.join(',') : value
  }
  const functions = header('imprun-functions')
  const maxRounds = header('imprun-max-rounds')
  const timeoutMs = header('imprun-timeout-ms')
  if (functions === undefined && maxRounds === undefined && timeoutMs === undefined) return undefined
  const out: Record<string, unknown> = {}
  if (functions !== undefined) {
    const trimmed = functions.trim()
    out.functions = trimmed === 'all' ? 'all' : trimmed.split(',').map((name) => name.trim()).filter((name) => name.length > 0)
  }
  if (maxRounds !== undefined) out.max_rounds = Number(maxRounds)
  if (timeoutMs !== undefined) out.timeout_ms = Number(timeoutMs)
  return out
}

export function resolveExtension(fromBody: ImprunExtension | undefined, fromHeaders: ImprunExtension | undefined, defaults: ExtensionDefaults): ResolvedExtension {
  const merged = { ...fromHeaders, ...fromBody }
  return {
    functions: merged.functions ?? null,
    maxRounds: merged.max_rounds ?? defaults.maxRounds,
    timeoutMs: merged.timeout_ms ?? defaults.timeoutMs,
  }
}

/** What a response reports about the agent loop (field `imprun`). */
export interface ImprunReport {
  rounds: number
  tool_calls: ToolCallReport[]
  provider?: string
  provider_model?: string
  stop_reason?: string | null
}

export function imprunReport(result: Pick<AgentResult, 'rounds' | 'toolCalls' | 'served' | 'stopReason'>): ImprunReport {
  return { rounds: result.rounds, tool_calls: result.toolCalls, provider: result.served.provider.id, provider_model: result.served.model, stop_reason: result.stopReason }
}

