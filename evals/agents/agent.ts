/** What every eval agent is: given the task and an MCP session, act until done. */
import type { McpSession } from '../harness.ts'
import type { Scenario } from '../scenario.ts'
import type { References } from '../values.ts'

export interface AgentRun {
  /** Tokens used (input + output); 0 for the scripted agent. */
  inputTokens: number
  outputTokens: number
  /** Why the agent stopped: done, step or token budget, or an error. */
  stopReason: 'done' | 'max-steps' | 'max-tokens' | 'error'
  error?: string
  /** The model's last text (LLM agents). */
  finalText?: string
}

export interface Agent {
  readonly name: string
  run(scenario: Scenario, session: McpSession, references: References): Promise<AgentRun>
}
