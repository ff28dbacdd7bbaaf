/**
 * Test double of an LLM for the eval loop: a stub-provider script (see
 * adaptors/testing/stub-model-script.ts) that "solves" a scenario by calling, one turn at a
 * time, the tools of its reference trajectory. It knows the scenario by the task text of the
 * conversation, reads each tool result back out of the conversation the provider was sent, and
 * resolves `${steps.N.…}` references from those results, as a model reading its tool output
 * would. So a passing run proves that the tools reached the model through the provider's wire
 * format, that the model's calls reached MCP, and that the results came back.
 *
 * A tool the trajectory needs but the request did not offer ends the conversation with a text
 * saying so (and the grader then fails).
 */
import type { StubReply, StubRequest, StubScript } from '../../adaptors/testing/stub-model-script.ts'
import type { Scenario } from '../scenario.ts'
import { emptyReferences, resolveValue, type References } from '../values.ts'

export interface ReferenceStubModel {
  script: StubScript
  /** Every tool result the model was sent, per scenario id, in order. */
  seen: Map<string, string[]>
}

interface Conversation {
  scenario: Scenario
  /** Index of the next reference step to call. */
  next: number
  references: References
}

export function referenceStubModel(scenarios: Scenario[]): ReferenceStubModel {
  const byTask = new Map(scenarios.map((scenario) => [scenario.task, scenario]))
  const conversations = new Map<string, Conversation>()
  const seen = new Map<string, string[]>()
  const script: StubScript = (request) => {
    const scenario = byTask.get(request.lastUserText)
    if (!scenario) return answer(request, 'I do not know this task.')
    let conversation = conversations.get(scenario.task)
    if (!conversation || request.toolResults.length === 0) {
      conversation = { scenario, next: 0, references: emptyReferences() }
      conversations.set(scenario.task, conversation)
      seen.set(scenario.id, [])
    }
    if (request.toolResults.length > 0) {
      seen.get(scenario.id)!.push(...request.toolResults)
      conversation.references.steps[conversation.next - 1] = parsed(request.toolResults[0]!)
    }
    const step = scenario.reference[conversation.next]
    if (!step) return answer(request, `Done: ${scenario.title}.`)
    if (!request.tools.includes(step.tool)) return answer(request, `I need the tool ${step.tool}, which was not offered.`)
    let args: unknown
    try {
      args = resolveValue(step.arguments, conversation.references)
    } catch (error) {
      return answer(request, `I cannot go on: ${error instanceof Error ? error.message : String(error)}`)
    }
    conversation.next++
    return { kind: 'answer', toolCalls: [{ name: step.tool, arguments: JSON.stringify(args) }], usage: usage(request, 20) }
  }
  return { script, seen }
}

function answer(request: StubRequest, text: string): StubReply {
  return { kind: 'answer', text, usage: usage(request, Math.ceil(text.length / 4)) }
}

/** Token counts of the stub: the request's JSON size / 4 in, a fixed amount out. */
function usage(request: StubRequest, output: number): { input: number; output: number } {
  return { input: Math.ceil(JSON.stringify(request.body).length / 4), output }
}

function parsed(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}
