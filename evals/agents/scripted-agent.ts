/**
 * Replays a scenario's reference trajectory through the real MCP server. A step that fails
 * (tool error or protocol error) stops the replay: the reference is wrong, and grading will say so.
 */
import type { Agent, AgentRun } from './agent.ts'
import { resolveValue } from '../values.ts'

export function createScriptedAgent(): Agent {
  return {
    name: 'scripted',
    async run(scenario, session, references): Promise<AgentRun> {
      for (const [index, step] of scenario.reference.entries()) {
        const args = resolveValue(step.arguments, references) as Record<string, unknown>
        const call = await session.call(step.tool, args)
        references.steps[index] = call.result
        if (call.isError !== (step.expectError === true)) {
          const detail = call.protocolError ?? JSON.stringify(call.result)
          return { inputTokens: 0, outputTokens: 0, stopReason: 'error', error: `reference step ${index} (${step.tool}) ${call.isError ? 'failed' : 'should have failed'}: ${detail}` }
        }
      }
      return { inputTokens: 0, outputTokens: 0, stopReason: 'done' }
    },
  }
}
