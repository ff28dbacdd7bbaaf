/**
 * The agent loop: asks the model, runs the calls it makes to function tools in the sandbox,
 * feeds the results back, and repeats until the model answers without calling a function, calls
 * a tool the client defined (which goes back to the client as usual), or the round budget ends.
 *
 * The client sees one assistant message: the text of every round in order, the client's own
 * tool calls of the last round, and a report of the function calls made. Streaming forwards
 * text and client tool calls as they arrive; function tool calls are held back (the client must
 * not answer them) and reported once run.
 */
import type { ResolvedTarget } from '../../control/domain/providers.ts'
import type { ChatMessage, ChatRequest, ChatResult, FinishReason, TextPart, ToolCallPart, Usage } from '../spec/chat-model.ts'
import { ChatStreamAssembler } from '../spec/chat-stream.ts'
import type { FunctionToolSet, ToolCallReport } from './function-tools.ts'
import type { ModelCaller } from './model-caller.ts'

/** Where a streamed answer goes; the wire format decides how each step looks. */
export interface AgentSink {
  text(text: string): void
  toolCallStart(index: number, id: string, name: string): void
  toolCallDelta(index: number, argumentsDelta: string): void
  toolCallEnd(index: number): void
  /** A function call ran; `all` is every call so far (reports are cumulative). */
  toolExecuted(report: ToolCallReport, all: readonly ToolCallReport[], rounds: number): void
}

export interface AgentRun {
  chain: readonly ResolvedTarget[]
  request: Omit<ChatRequest, 'model' | 'signal'>
  functionTools: FunctionToolSet | null
  maxRounds: number
  signal: AbortSignal
  caller: ModelCaller
  /** Present for streamed answers. */
  sink?: AgentSink
  /** Each model call's usage, with the target that served it (for accounting). */
  onUsage?: (target: ResolvedTarget, usage: Usage) => void
}

export interface AgentResult {
  content: Array<TextPart | ToolCallPart>
  finishReason: FinishReason
  usage: Usage
  rounds: number
  toolCalls: ToolCallReport[]
  /** The target that served the last round. */
  served: ResolvedTarget
  /** Set when the loop stopped because it ran out of rounds while the model still called tools. */
  stopReason: 'max_rounds' | null
}

export async function runAgent(run: AgentRun): Promise<AgentResult> {
  const functionTools = run.functionTools
  const tools = [...(run.request.tools ?? []), ...(functionTools?.definitions ?? [])]
  // A round that calls both a client tool and a function could not be continued: the client
  // answers only its own calls, so the model would never see the function results. With both
  // kinds on offer, the model is asked for one call per answer (where the provider can be asked).
  const mixed = Boolean(run.request.tools?.length && functionTools?.definitions.length)
  const messages: ChatMessage[] = [...run.request.messages]
  const usage: Usage = { inputTokens: 0, outputTokens: 0 }
  const reports: ToolCallReport[] = []
  let text = ''
  for (let round = 1; ; round++) {
    const request = { ...run.request, messages, tools: tools.length > 0 ? tools : undefined, ...(mixed ? { parallelToolCalls: false } : {}) }
    const { result, target } = run.sink ? await streamRound(run, request, functionTools) : await run.caller.generate(run.chain, request, run.signal)
    usage.inputTokens += result.usage.inputTokens
    usage.outputTokens += result.usage.outputTokens
    run.onUsage?.(target, result.usage)
    text += result.content.map((part) => (part.type === 'text' ? part.text : '')).join('')
    const calls = result.content.filter((part): part is ToolCallPart => part.type === 'tool-call')
    const functionCalls = functionTools ? calls.filter((call) => functionTools.has(call.name)) : []
    const clientCalls = calls.filter((call) => !functionCalls.includes(call))
    const finish = (finishReason: FinishReason, stopReason: AgentResult['stopReason'] = null): AgentResult => ({
      content: [...(text.length > 0 ? [{ type: 'text' as const, text }] : []), ...clientCalls],
      finishReason,
      usage,
      rounds: round,
      toolCalls: reports,
      served: target,
      stopReason,
    })
    if (functionCalls.length === 0) return finish(result.finishReason)
    if (round >= run.maxRounds && clientCalls.length === 0) return finish('length', 'max_rounds')
    const executed = await Promise.all(functionCalls.map((call) => functionTools!.run(call, round, run.signal)))
    for (const { report } of executed) {
      reports.push(report)
      run.sink?.toolExecuted(report, reports, round)
    }
    // Calls to the client's own tools end the loop. Function calls of the same round (a provider
    // without a switch for parallel calls: Ollama) were run and are reported, but the client's
    // history will only hold its own calls.
    if (clientCalls.length > 0) return finish('tool-calls')
    messages.push({ role: 'assistant', content: result.content }, { role: 'tool', content: executed.map(({ result: toolResult }) => toolResult) })
  }
}

async function streamRound(run: AgentRun, request: Omit<ChatRequest, 'model'>, functionTools: FunctionToolSet | null): Promise<{ result: ChatResult; target: ResolvedTarget }> {
  const sink = run.sink!
  const opened = await run.caller.openStream(run.chain, request, run.signal)
  const assembler = new ChatStreamAssembler()
  // Upstream call index → index among the client's own calls (their numbering on the wire).
  const clientIndex = new Map<number, number>()
  const handle = (event: import('../spec/chat-model.ts').ChatStreamEvent) => {
    assembler.add(event)
    switch (event.type) {
      case 'text-delta':
        sink.text(event.text)
        break
      case 'tool-call-start':
        if (!functionTools?.has(event.name)) {
          const index = clientIndex.size
          clientIndex.set(event.index, index)
          sink.toolCallStart(index, event.id, event.name)
        }
        break
      case 'tool-call-delta': {
        const index = clientIndex.get(event.index)
        if (index !== undefined) sink.toolCallDelta(index, event.argumentsDelta)
        break
      }
      case 'tool-call-end': {
        const index = clientIndex.get(event.index)
        if (index !== undefined) sink.toolCallEnd(index)
        break
      }
      default:
        break
    }
  }
  for (const event of opened.buffered) handle(event)
  while (true) {
    const step = await opened.rest.next()
    if (step.done) break
    handle(step.value)
  }
  return { result: assembler.result(), target: opened.target }
}
