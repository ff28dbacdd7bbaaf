/**
 * An LLM agent for evals: the task prompt, the management endpoint's tools/list as tools, and a
 * loop that runs the model's tool calls through MCP until it answers without tool calls or the
 * step / token budget ends. Providers go through our adaptors; settings come from env vars:
 * OPENAI_API_KEY / OPENAI_BASE_URL, ANTHROPIC_API_KEY / ANTHROPIC_BASE_URL, OLLAMA_BASE_URL.
 */
import { createAnthropicChatModel, createOllamaChatModel, createOpenAIChatModel, type ChatMessage, type ChatModel, type ChatModelSettings, type ToolDefinition } from '../../adaptors/index.ts'
import type { Agent, AgentRun } from './agent.ts'

export const providerKinds = ['openai', 'anthropic', 'ollama'] as const
export type LlmProvider = (typeof providerKinds)[number]

export interface LlmAgentOptions {
  provider: LlmProvider
  model: string
  maxSteps: number
  maxTokens: number
  env: Record<string, string | undefined>
  /** Injectable model (tests). */
  chatModel?: ChatModel
}

const system = [
  'You operate an imprun platform through its MCP management tools.',
  'Do what the user asks completely, using the tools; check your work (e.g. test or call functions) where you can.',
  'When the task is done, reply with a short summary and no tool call.',
].join(' ')

/** LLM-safe tool names (`^[a-zA-Z0-9_-]{1,64}$`); management tool names already are. */
export function llmToolName(name: string): string {
  return name.replace(/[^a-zA-Z0-9_-]/g, '_').slice(0, 64)
}

export function chatModelFor(provider: LlmProvider, env: Record<string, string | undefined>): ChatModel {
  const settings = (baseUrl: string | undefined, apiKey: string | undefined): ChatModelSettings => ({
    ...(baseUrl ? { baseUrl } : {}),
    ...(apiKey ? { apiKey } : {}),
    timeoutMs: 180_000,
  })
  switch (provider) {
    case 'openai':
      if (!env.OPENAI_API_KEY && !env.OPENAI_BASE_URL) throw new Error('--provider openai needs OPENAI_API_KEY (and optionally OPENAI_BASE_URL)')
      return createOpenAIChatModel(settings(env.OPENAI_BASE_URL, env.OPENAI_API_KEY))
    case 'anthropic':
      if (!env.ANTHROPIC_API_KEY) throw new Error('--provider anthropic needs ANTHROPIC_API_KEY (and optionally ANTHROPIC_BASE_URL)')
      return createAnthropicChatModel(settings(env.ANTHROPIC_BASE_URL, env.ANTHROPIC_API_KEY))
    case 'ollama':
      return createOllamaChatModel(settings(env.OLLAMA_BASE_URL ?? env.OLLAMA_HOST, undefined))
  }
}

export function createLlmAgent(options: LlmAgentOptions): Agent {
  const model = options.chatModel ?? chatModelFor(options.provider, options.env)
  return {
    name: options.provider,
    async run(scenario, session): Promise<AgentRun> {
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
        if (run.inputTokens + run.outputTokens >= options.maxTokens) return { ...run, stopReason: 'max-tokens' }
        let answer
        try {
          answer = await model.generate({ model: options.model, system, messages, tools, toolChoice: 'auto', maxTokens: 4096 })
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
          const name = byLlmName.get(call.name) ?? call.name
          const recorded = await session.call(name, (args ?? {}) as Record<string, unknown>)
          const content = recorded.protocolError ?? (typeof recorded.result === 'string' ? recorded.result : JSON.stringify(recorded.result))
          results.content.push({ type: 'tool-result', toolCallId: call.id, toolName: call.name, content, isError: recorded.isError })
        }
        messages.push(results)
      }
    },
  }
}
