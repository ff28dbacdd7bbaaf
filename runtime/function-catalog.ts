/**
 * The runtime as other surfaces see it: which functions an environment serves (with the metadata
 * stored at publish time, never their code) and a way to call one. The MCP server turns each into
 * a tool, the chat gateway into an LLM tool; both call through here so that every call is
 * limited, logged and attributed like an HTTP request.
 */
import type { FunctionMetadata, Stage } from '../control/ports.ts'
import type { InvocationObserver, InvocationOutcome, LogLine } from './sandbox/function-sandbox.ts'

export interface CatalogFunction {
  name: string
  version: number
  metadata: FunctionMetadata
}

/** Which surface made a call (shown in invocation logs as the method). */
export type CallSource = 'mcp' | 'chat' | 'draft' | 'internal'

export interface FunctionCall {
  gatewayId: string
  stage: Stage
  name: string
  input: unknown
  source: CallSource
  /** Who called (application id), for logs. */
  consumer?: string | null
  requestId?: string
  signal?: AbortSignal
  /** Told of log lines and `ctx.progress` reports as they happen. */
  observer?: InvocationObserver
}

export interface FunctionCallResult {
  requestId: string
  version: number
  outcome: InvocationOutcome
  logs: LogLine[]
  durationMs: number
}

export interface DraftCall {
  gatewayId: string
  stage: Stage
  name: string
  /** Compiled bundle of the draft (from the Compiler). */
  code: string
  input: unknown
  requestId?: string
  signal?: AbortSignal
  /** Told of log lines and `ctx.progress` reports as they happen. */
  observer?: InvocationObserver
}

export interface EnvironmentChange {
  gatewayId: string
  stage: Stage
}

export interface FunctionCatalog {
  /**
   * Functions live on an environment, sorted by name. Fails with `not_found` for an unknown
   * gateway; an environment that is not serving lists its functions all the same.
   */
  list(gatewayId: string, stage: Stage): Promise<CatalogFunction[]>
  /** Whether the environment is serving (a call to a stopped one fails with `not_serving`). */
  isServing(gatewayId: string, stage: Stage): boolean
  /**
   * Runs a live function. User errors are outcomes (`ok: false`), not exceptions; only an
   * unknown function throws (`not_found`).
   */
  call(call: FunctionCall): Promise<FunctionCallResult>
  /** Runs compiled draft code with an environment's variables, without publishing it. */
  runDraft(call: DraftCall): Promise<FunctionCallResult>
  /** Told whenever the set or versions of an environment's functions change. */
  onChange(listener: (change: EnvironmentChange) => void): () => void
}
