/** Runs one scenario end to end: fresh platform, setup, agent, grade. */
import type { Agent } from './agents/agent.ts'
import { grade, type GradeResult } from './grader.ts'
import { McpSession, runSetup, startWorld, type RecordedCall } from './harness.ts'
import type { Scenario } from './scenario.ts'
import { emptyReferences } from './values.ts'

export interface ScenarioResult {
  id: string
  agent: string
  pass: boolean
  toolCalls: number
  toolErrors: number
  inputTokens: number
  outputTokens: number
  seconds: number
  stopReason: string
  error?: string
  grade?: GradeResult
  /** The agent's last text (LLM agents). */
  finalText?: string
  /** Every tool call with its arguments; failed ones with what the agent was told. */
  calls: Array<{ tool: string; isError: boolean; arguments: Record<string, unknown>; error?: string }>
}

const maxErrorCharacters = 500

/** `agent: null` runs setup only (the do-nothing baseline every grader must fail). */
export async function runScenario(scenario: Scenario, agent: Agent | null): Promise<ScenarioResult> {
  const started = performance.now()
  const references = emptyReferences()
  const world = await startWorld()
  const base = { id: scenario.id, agent: agent?.name ?? 'none' }
  try {
    await runSetup(world.admin, scenario.setup, references)
    const session = await McpSession.connect(world)
    let run
    try {
      run = agent ? await agent.run(scenario, session, references) : { inputTokens: 0, outputTokens: 0, stopReason: 'done' as const }
    } catch (error) {
      run = { inputTokens: 0, outputTokens: 0, stopReason: 'error' as const, error: error instanceof Error ? error.message : String(error) }
    } finally {
      await session.close()
    }
    const graded = await grade(world.admin, scenario.grader, references)
    return {
      ...base,
      pass: graded.pass,
      toolCalls: session.calls.length,
      toolErrors: session.calls.filter((call) => call.isError).length,
      inputTokens: run.inputTokens,
      outputTokens: run.outputTokens,
      seconds: (performance.now() - started) / 1000,
      stopReason: run.stopReason,
      ...(run.error === undefined ? {} : { error: run.error }),
      ...(run.finalText === undefined ? {} : { finalText: run.finalText }),
      grade: graded,
      calls: session.calls.map((call) => ({ tool: call.tool, isError: call.isError, arguments: call.arguments, ...(call.isError ? { error: errorText(call) } : {}) })),
    }
  } catch (error) {
    return {
      ...base,
      pass: false,
      toolCalls: 0,
      toolErrors: 0,
      inputTokens: 0,
      outputTokens: 0,
      seconds: (performance.now() - started) / 1000,
      stopReason: 'error',
      error: `setup: ${error instanceof Error ? error.message : String(error)}`,
      calls: [],
    }
  } finally {
    await world.close()
  }
}

function errorText(call: RecordedCall): string {
  const text = call.protocolError ?? (typeof call.result === 'string' ? call.result : JSON.stringify(call.result))
  return text.length > maxErrorCharacters ? `${text.slice(0, maxErrorCharacters)}…` : text
}
