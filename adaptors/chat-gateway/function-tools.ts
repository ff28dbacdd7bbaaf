/**
 * An environment's live functions as LLM tools. Function names are path-like (`user/me`) but
 * tool names must match `^[a-zA-Z0-9_-]{1,64}$` everywhere, so each request gets a table from
 * tool name to function name: `/` becomes `__`, long names are cut and given a hash suffix, and
 * a clash (with another function or with a tool the client defined) gets a numbered suffix.
 * Calls run in the sandbox through the catalog, attributed to the calling application.
 */
import { createHash } from 'node:crypto'
import type { Stage } from '../../control/ports.ts'
import { ImprunError } from '../../control/errors.ts'
import type { FunctionCatalog } from '../../runtime/function-catalog.ts'
import { clientToolSchema } from '../../runtime/tool-schema.ts'
import type { ToolCallPart, ToolDefinition, ToolResultPart } from '../spec/chat-model.ts'
import { parseToolArguments } from '../spec/chat-stream.ts'

export const toolNamePattern = /^[a-zA-Z0-9_-]{1,64}$/

/** What the response reports about one function call the gateway made. */
export interface ToolCallReport {
  /** The function's name in imprun (`user/me`). */
  name: string
  /** The name the model saw (`user__me`). */
  tool: string
  /** Parsed arguments, or the raw text when it was not a JSON object. */
  arguments: unknown
  ok: boolean
  result?: unknown
  error?: { code: string; message: string }
  durationMs: number
  round: number
}

export interface FunctionToolSet {
  definitions: ToolDefinition[]
  /** Tool name → function name. */
  has(toolName: string): boolean
  run(call: ToolCallPart, round: number, signal: AbortSignal): Promise<{ report: ToolCallReport; result: ToolResultPart }>
}

export interface FunctionToolScope {
  catalog: Pick<FunctionCatalog, 'list' | 'call'>
  gatewayId: string
  stage: Stage
  applicationId: string
  /** `all`, or the function names to offer. */
  selection: 'all' | readonly string[]
  /** Tool names the client defined itself; function tools avoid them. */
  reservedNames: ReadonlySet<string>
}

export function toolNameFor(functionName: string, taken: ReadonlySet<string>): string {
  let base = functionName.replaceAll('/', '__').replace(/[^a-zA-Z0-9_-]/g, '_')
  if (base.length > 64) base = `${base.slice(0, 55)}_${createHash('sha256').update(functionName).digest('hex').slice(0, 8)}`
  let name = base
  for (let suffix = 2; taken.has(name); suffix++) name = `${base.slice(0, 64 - String(suffix).length - 1)}_${suffix}`
  return name
}

export async function loadFunctionTools(scope: FunctionToolScope): Promise<FunctionToolSet> {
  const live = await scope.catalog.list(scope.gatewayId, scope.stage)
  let chosen = live
  if (scope.selection !== 'all') {
    const byName = new Map(live.map((item) => [item.name, item]))
    const missing = scope.selection.filter((name) => !byName.has(name))
    if (missing.length > 0) {
      throw new ImprunError('bad_request', `imprun.functions: ${missing.map((name) => `'${name}'`).join(', ')} not live on ${scope.gatewayId}/${scope.stage}; live: ${live.map((item) => item.name).join(', ') || 'none'}`, {
        details: { missing, live: live.map((item) => item.name) },
      })
    }
    chosen = scope.selection.map((name) => byName.get(name)!)
  }
  const taken = new Set(scope.reservedNames)
  const toolToFunction = new Map<string, string>()
  const definitions: ToolDefinition[] = []
  for (const item of chosen) {
    const tool = toolNameFor(item.name, taken)
    taken.add(tool)
    toolToFunction.set(tool, item.name)
    definitions.push({ name: tool, description: item.metadata.description || `imprun function ${item.name}`, parameters: toolParameters(item.metadata.inputSchema) })
  }

  return {
    definitions,
    has: (toolName) => toolToFunction.has(toolName),
    async run(call, round, signal) {
      const name = toolToFunction.get(call.name)!
      const started = performance.now()
      const input = parseToolArguments(call.arguments)
      const finish = (report: Omit<ToolCallReport, 'name' | 'tool' | 'round' | 'durationMs'>, content: string, isError: boolean) => ({
        report: { name, tool: call.name, round, durationMs: Math.round((performance.now() - started) * 100) / 100, ...report },
        result: { type: 'tool-result' as const, toolCallId: call.id, toolName: call.name, content, ...(isError ? { isError: true } : {}) },
      })
      if (input === null) {
        const error = { code: 'invalid_arguments', message: 'the arguments are not a JSON object' }
        return finish({ arguments: call.arguments, ok: false, error }, JSON.stringify({ error }), true)
      }
      try {
        const { outcome } = await scope.catalog.call({ gatewayId: scope.gatewayId, stage: scope.stage, name, input, source: 'chat', consumer: scope.applicationId, signal })
        if (outcome.ok) return finish({ arguments: input, ok: true, result: outcome.value }, JSON.stringify(outcome.value ?? null), false)
        const error = { code: outcome.code, message: outcome.message }
        return finish({ arguments: input, ok: false, error }, JSON.stringify({ error }), true)
      } catch (caught) {
        // Unpublished between listing and calling, or the environment stopped: tell the model.
        const error = caught instanceof ImprunError ? { code: caught.code, message: caught.message } : { code: 'internal', message: 'the function could not be called' }
        return finish({ arguments: input, ok: false, error }, JSON.stringify({ error }), true)
      }
    },
  }
}

/** Providers want an object schema; `$schema` and friends are noise to them. */
function toolParameters(schema: Record<string, unknown> | null): Record<string, unknown> {
  if (!schema) return { type: 'object', properties: {} }
  const { $schema: _schema, $id: _id, ...rest } = schema
  return rest.type === 'object' ? clientToolSchema(rest) : { type: 'object', properties: {} }
}
