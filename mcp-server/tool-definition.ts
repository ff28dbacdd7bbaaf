/**
 * How a management tool is declared: a zod input schema (every field described), a zod output
 * schema, honest annotations and a thin handler over the control services. The JSON Schemas an
 * MCP client sees are generated once per definition from the same zod schemas that validate the
 * arguments, so the advertised contract and the checked one cannot drift apart.
 */
import { ErrorCode, McpError, type CallToolResult, type Tool, type ToolAnnotations } from '@modelcontextprotocol/sdk/types.js'
import { z } from 'zod'
import { clientToolSchema } from '../runtime/tool-schema.ts'
import type { InvocationObserver } from '../runtime/sandbox/function-sandbox.ts'
import type { ProgressReporter } from './progress.ts'

/** What a handler gets besides its validated arguments. */
export interface ToolCallContext {
  /** Aborted when the client cancels the request or the connection closes. */
  signal: AbortSignal
  /** Progress notifications; a no-op when the client sent no progressToken. */
  progress: ProgressReporter
  /**
   * Watches a function call made for this request: its log lines go to the client as log
   * notifications (logger: the function's name), its `ctx.progress` as this request's progress.
   */
  observe(functionName: string): InvocationObserver
}

export interface ToolDefinition<Input extends z.ZodType = z.ZodType, Output extends z.ZodType = z.ZodType> {
  /** Matches `^[a-zA-Z0-9_.-]{1,128}$` (MCP tool naming). */
  name: string
  title: string
  description: string
  input: Input
  output: Output
  annotations: Required<Pick<ToolAnnotations, 'readOnlyHint' | 'destructiveHint' | 'idempotentHint' | 'openWorldHint'>>
  handler(input: z.output<Input>, context: ToolCallContext): Promise<z.input<Output>>
}

/** A definition with its types erased, for lists of tools of different shapes. */
export type AnyToolDefinition = ToolDefinition<z.ZodType, z.ZodType>

/** Keeps the handler's types tied to its schemas at the definition site. */
export function defineTool<Input extends z.ZodType, Output extends z.ZodType>(definition: ToolDefinition<Input, Output>): AnyToolDefinition {
  return definition as unknown as AnyToolDefinition
}

export const toolNamePattern = /^[a-zA-Z0-9_.-]{1,128}$/

/** Annotations for the common cases, so that each tool states its effect in one word. */
export const effects = {
  read: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  /** Creates or changes something; repeating it with the same arguments changes nothing more. */
  idempotentWrite: { readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  /** Creates something new on every call (ids, keys, versions). */
  additiveWrite: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
  /** Replaces or removes what was there. */
  destructive: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
  /** Runs user code, which may reach the outside world through ctx.fetch. */
  runsCode: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: true },
} as const

const jsonSchemas = new WeakMap<AnyToolDefinition, Tool>()

/** The MCP `Tool` entry of a definition (cached: tools/list is hot). */
export function toolListing(definition: AnyToolDefinition): Tool {
  let listed = jsonSchemas.get(definition)
  if (!listed) {
    listed = {
      name: definition.name,
      title: definition.title,
      description: definition.description,
      inputSchema: clientToolSchema(z.toJSONSchema(definition.input, { io: 'input', unrepresentable: 'any' }), { dropDefaultDialect: true }) as Tool['inputSchema'],
      outputSchema: clientToolSchema(z.toJSONSchema(definition.output, { io: 'output', unrepresentable: 'any' }), { dropDefaultDialect: true }) as Tool['outputSchema'],
      annotations: { title: definition.title, ...definition.annotations },
    }
    jsonSchemas.set(definition, listed)
  }
  return listed
}

/**
 * Validates arguments. Bad arguments are a protocol error (InvalidParams with the zod issues),
 * not a tool result: the call never reached the platform.
 */
export function parseArguments<Input extends z.ZodType>(definition: { name: string; input: Input }, args: unknown): z.output<Input> {
  const parsed = definition.input.safeParse(args ?? {})
  if (parsed.success) return parsed.data
  throw invalidArguments(
    definition.name,
    parsed.error.issues.map((issue) => ({ path: issue.path.map(String).join('.'), message: issue.message, code: issue.code })),
  )
}

export interface ArgumentIssue {
  path: string
  message: string
  code?: string
}

export function invalidArguments(toolName: string, issues: ArgumentIssue[]): McpError {
  const summary = issues.map((issue) => `${issue.path || '(root)'}: ${issue.message}`).join('; ')
  return new McpError(ErrorCode.InvalidParams, `invalid arguments for tool ${toolName}: ${summary}`, { issues })
}

export function unknownTool(name: string): McpError {
  return new McpError(ErrorCode.InvalidParams, `unknown tool '${name}'`, { tool: name })
}

/** A successful result: structured content plus the same JSON as text for clients without it. */
export function structuredResult(value: unknown): CallToolResult {
  return {
    content: [{ type: 'text', text: JSON.stringify(value) }],
    structuredContent: value as Record<string, unknown>,
  }
}
