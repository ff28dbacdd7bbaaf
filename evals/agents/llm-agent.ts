/**
 * An LLM agent for evals: the task prompt, the management endpoint's tools/list as tools, and a
 * loop that runs the model's tool calls through MCP until it answers without tool calls or the
 * step / token budget ends. The model is called through our adaptors and the chat gateway's
 * ModelCaller (retries with backoff, `retry-after` honoured), so a rate-limited eval run waits
 * instead of failing. Settings come from env vars: OPENAI_API_KEY / OPENAI_BASE_URL,
 * ANTHROPIC_API_KEY / ANTHROPIC_BASE_URL, OLLAMA_BASE_URL (or OLLAMA_HOST).
 */
import { ModelCaller, type ChatMessage, type RetryPolicy, type ToolDefinition } from '../../adaptors/index.ts'
import { defaultBaseUrls, type ResolvedTarget } from '../../control/domain/providers.ts'
import type { Agent, AgentRun } from './agent.ts'

export const providerKinds = ['openai', 'anthropic', 'ollama'] as const
export type LlmProvider = (typeof providerKinds)[number]

export interface LlmAgentOptions {
  provider: LlmProvider
  model: string
  /** Model turns per scenario. */
  maxSteps: number
  /** Input + output tokens per scenario, as the provider reports them. */
  maxTokens: number
  env: Record<string, string | undefined>
  /** Wall-clock limit per scenario (default 10 minutes). */
  timeoutMs?: number
  retry?: Partial<RetryPolicy>
}

const system = [
  'You operate an imprun platform through its MCP management tools.',
  'Do what the user asks completely, using the tools; check your work (e.g. test or call functions) where you can.',
  'When the task is done, reply with a short summary and no tool call.',
].join(' ')

/** Longest tool result passed back to the model; the rest is cut with a note. */
const maxToolResultCharacters = 20_000
/** Output tokens asked for per turn, at most. */
const maxTokensPerTurn = 4096

/** LLM-safe tool names (`^[a-zA-Z0-9_-]{1,64}$`); management tool names already are. */
export function llmToolName(name: string): string {
  return name.replace(/[^a-zA-Z0-9_-]/g, '_').slice(0, 64)
}

/** The provider and model an eval run talks to, from the environment. */
export function evalTarget(provider: LlmProvider, model: string, env: Record<string, string | undefined>): ResolvedTarget {
  const settings = {
    openai: { baseUrl: env.OPENAI_BASE_URL, apiKey: env.OPENAI_API_KEY },
    anthropic: { baseUrl: env.ANTHROPIC_BASE_URL, apiKey: env.ANTHROPIC_API_KEY },
    ollama: { baseUrl: env.OLLAMA_BASE_URL ?? env.OLLAMA_HOST, apiKey: undefined },
  }[provider]
  if (provider === 'openai' && !settings.apiKey && !settings.baseUrl) throw new Error('--provider openai needs OPENAI_API_KEY (and optionally OPENAI_BASE_URL for a compatible server)')
  if (provider === 'anthropic' && !settings.apiKey) throw new Error('--provider anthropic needs ANTHROPIC_API_KEY (and optionally ANTHROPIC_BASE_URL)')
  return {
    alias: model,
    provider: { id: `evals-${provider}`, kind: provider, baseUrl: settings.baseUrl ?? defaultBaseUrls[provider], apiKey: settings.apiKey ?? null, timeoutMs: 180_000, updatedAt: '' },
    model,
  }
}

export function createLlmAgent(options: LlmAgentOptions): Agent {
  const target = evalTarget(options.provider, options.model, options.env)
  const caller = new ModelCaller({ policy: { maxRetries: 4, maxRetryAfterMs: 60_000, ...options.retry } })
  return {
    name: options.provider,
    async run(scenario, session): Promise<AgentRun> {
      const signal = AbortSignal.timeout(options.timeoutMs ?? 600_000)
      const listed = await session.listTools()
      const byLlmName = new Map(listed.map((tool) => [llmToolName(tool.name), tool.name]))
      const tools: ToolDefinition[] = listed.map((tool) => ({
        name: llmToolName(tool.name),
        description: tool.description ?? tool.title ?? tool.name,
        parameters: tool.inputSchema as Record<string, unknown>,
      }))
      const messages: ChatMessage[] = [{ role: 'user', content: [{ type: 'text', text: scenario.task }] }]
      const run: AgentRun = { inputTokens: 0, outputTokens: 0, stopReason: 'done' }
      for (let step = 0; ; step++) {
        if (step >= options.maxSteps) return { ...run, stopReason: 'max-steps' }
        const left = options.maxTokens - run.inputTokens - run.outputTokens
        if (left <= 0) return { ...run, stopReason: 'max-tokens' }
        let answer
        try {
          answer = (await caller.generate([target], { system, messages, tools, toolChoice: 'auto', maxTokens: Math.min(maxTokensPerTurn, left) }, signal)).result
        } catch (error) {
          return { ...run, stopReason: 'error', error: error instanceof Error ? error.message : String(error) }
        }
        run.inputTokens += answer.usage.inputTokens
        run.outputTokens += answer.usage.outputTokens
        messages.push({ role: 'assistant', content: answer.content })
        const text = answer.content.flatMap((part) => (part.type === 'text' ? [part.text] : [])).join('')
        if (text) run.finalText = text
        const calls = answer.content.flatMap((part) => (part.type === 'tool-call' ? [part] : []))
        if (calls.length === 0) return run
        const results: ChatMessage = { role: 'tool', content: [] }
        for (const call of calls) {
          let args: unknown
          try {
            args = call.arguments.trim() === '' ? {} : JSON.parse(call.arguments)
          } catch {
            results.content.push({ type: 'tool-result', toolCallId: call.id, toolName: call.name, content: `arguments are not valid JSON: ${call.arguments}`, isError: true })
            continue
          }
          if (args === null || typeof args !== 'object' || Array.isArray(args)) {
            results.content.push({ type: 'tool-result', toolCallId: call.id, toolName: call.name, content: `arguments must be a JSON object, got: ${call.arguments}`, isError: true })
            continue
          }
          const recorded = await session.call(byLlmName.get(call.name) ?? call.name, args as Record<string, unknown>)
          const content = recorded.protocolError ?? (typeof recorded.result === 'string' ? recorded.result : JSON.stringify(recorded.result))
          results.content.push({ type: 'tool-result', toolCallId: call.id, toolName: call.name, content: truncate(content), isError: recorded.isError })
        }
        messages.push(results)
      }
    },
  }
}

function truncate(text: string): string {
  if (text.length <= maxToolResultCharacters) return text
  return `${text.slice(0, maxToolResultCharacters)}\n… (${text.length - maxToolResultCharacters} more characters cut)`
}
