/**
 * Test double: a loopback server speaking Ollama's native /api/chat (one JSON object, or NDJSON
 * lines ending in `done: true`; tool calls arrive whole with parsed arguments), from a script.
 */
import type { ServerResponse } from 'node:http'
import { cutConnection, argumentsObject, pieces, startStubServer, writeJson, type StubReply, type StubRequest, type StubScript, type StubServer } from './stub-model-script.ts'

type OllamaMessage = { role?: string; content?: string }

export function startStubOllamaServer(script: StubScript): Promise<StubServer> {
  return startStubServer(
    {
      isChatPath: (path) => path === '/api/chat',
      reduce(path, headers, body): StubRequest {
        const messages = (Array.isArray(body.messages) ? body.messages : []) as OllamaMessage[]
        const toolResults: string[] = []
        for (let index = messages.length - 1; index >= 0 && messages[index]?.role === 'tool'; index--) toolResults.unshift(messages[index]?.content ?? '')
        const lastUser = [...messages].reverse().find((message) => message.role === 'user')
        const tools = (Array.isArray(body.tools) ? body.tools : []) as Array<{ function?: { name?: string } }>
        return {
          path,
          headers,
          body,
          model: String(body.model),
          // Ollama streams unless told not to.
          stream: body.stream !== false,
          tools: tools.map((tool) => tool.function?.name ?? ''),
          lastUserText: lastUser?.content ?? '',
          toolResults,
        }
      },
      render: renderOllama,
    },
    script,
  )
}

function renderOllama(request: StubRequest, reply: Exclude<StubReply, { kind: 'hang' }>, response: ServerResponse): void {
  if (reply.kind === 'error') {
    writeJson(response, reply.status, { error: reply.message }, reply.headers)
    return
  }
  const text = reply.text ?? ''
  const toolCalls = (reply.kind === 'answer' ? (reply.toolCalls ?? []) : []).map((call) => ({ function: { name: call.name, arguments: argumentsObject(call.arguments) } }))
  const usage = reply.kind === 'answer' ? (reply.usage ?? { input: 10, output: 5 }) : { input: 0, output: 0 }
  const doneReason = reply.kind === 'answer' && reply.finish === 'length' ? 'length' : 'stop'
  const base = { model: request.model, created_at: new Date().toISOString() }
  const final = { ...base, done: true, done_reason: doneReason, total_duration: 1, load_duration: 1, prompt_eval_count: usage.input, prompt_eval_duration: 1, eval_count: usage.output, eval_duration: 1 }
  if (!request.stream) {
    writeJson(response, 200, { ...final, message: { role: 'assistant', content: text, ...(toolCalls.length > 0 ? { tool_calls: toolCalls } : {}) } })
    return
  }
  response.writeHead(200, { 'content-type': 'application/x-ndjson' })
  const line = (value: unknown) => response.write(`${JSON.stringify(value)}\n`)
  for (const piece of pieces(text)) line({ ...base, message: { role: 'assistant', content: piece }, done: false })
  if (reply.kind === 'cut') {
    cutConnection(response)
    return
  }
  if (toolCalls.length > 0) line({ ...base, message: { role: 'assistant', content: '', tool_calls: toolCalls }, done: false })
  line({ ...final, message: { role: 'assistant', content: '' } })
  response.end()
}
