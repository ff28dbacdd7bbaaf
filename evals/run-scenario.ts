/** Runs one scenario end to end: fresh platform, setup, agent, grade. */
import type { Agent } from './agents/agent.ts'
import { grade, type GradeResult } from './grader.ts'
import { McpSession, runSetup, startWorld } from './harness.ts'
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
  calls: Array<{ tool: string; isError: boolean }>
}

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
      grade: graded,
      calls: session.calls.map((call) => ({ tool: call.tool, isError: call.isError })),
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
