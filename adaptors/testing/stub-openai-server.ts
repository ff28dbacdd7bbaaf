/**
 * Test double: a loopback server speaking OpenAI chat completions (JSON and SSE chunks with
 * tool_call deltas, `stream_options.include_usage`, `data: [DONE]`), answering from a script.
 */
import type { ServerResponse } from 'node:http'
import { cutConnection, pieces, startStubServer, writeJson, type StubReply, type StubRequest, type StubScript, type StubServer } from './stub-model-script.ts'

type OpenAIMessage = { role?: string; content?: unknown; tool_calls?: unknown }

function textOf(content: unknown): string {
  if (typeof content === 'string') return content
  if (Array.isArray(content)) return content.map((part) => (part && typeof part === 'object' && 'text' in part ? String(part.text) : '')).join('')
  return ''
}

export function startStubOpenAIServer(script: StubScript): Promise<StubServer> {
  let counter = 0
  return startStubServer(
    {
      isChatPath: (path) => path.endsWith('/chat/completions'),
      other(path, response) {
        if (!path.endsWith('/models')) return false
        writeJson(response, 200, { object: 'list', data: [{ id: 'stub-gpt', object: 'model', created: 0, owned_by: 'stub' }] })
        return true
      },
      reduce(path, headers, body): StubRequest {
        const messages = (Array.isArray(body.messages) ? body.messages : []) as OpenAIMessage[]
        const toolResults: string[] = []
        for (let index = messages.length - 1; index >= 0 && messages[index]?.role === 'tool'; index--) toolResults.unshift(textOf(messages[index]?.content))
        const lastUser = [...messages].reverse().find((message) => message.role === 'user')
        const tools = (Array.isArray(body.tools) ? body.tools : []) as Array<{ function?: { name?: string } }>
        return {
          path,
          headers,
          body,
          model: String(body.model),
          stream: body.stream === true,
          tools: tools.map((tool) => tool.function?.name ?? ''),
          lastUserText: textOf(lastUser?.content),
          toolResults,
        }
      },
      render(request, reply, response) {
        const id = `chatcmpl-stub${++counter}`
        renderOpenAI(request, reply, response, id)
      },
    },
    script,
  )
}

function renderOpenAI(request: StubRequest, reply: Exclude<StubReply, { kind: 'hang' }>, response: ServerResponse, id: string): void {
  if (reply.kind === 'error') {
    writeJson(response, reply.status, { error: { message: reply.message, type: reply.status === 429 ? 'rate_limit_exceeded' : 'server_error', code: null } }, reply.headers)
    return
  }
  const created = Math.floor(Date.now() / 1000)
  const model = request.model
  const toolCalls = reply.kind === 'answer' ? (reply.toolCalls ?? []) : []
  const text = reply.text ?? ''
  const usage = reply.kind === 'answer' ? (reply.usage ?? { input: 10, output: 5 }) : { input: 0, output: 0 }
  const finishReason = toolCalls.length > 0 ? 'tool_calls' : reply.kind === 'answer' ? (reply.finish ?? 'stop') : 'stop'
  const callId = (index: number) => `call_${id.slice(-6)}_${index}`
  if (!request.stream) {
    writeJson(response, 200, {
      id,
      object: 'chat.completion',
      created,
      model,
      choices: [
        {
          index: 0,
          message: {
            role: 'assistant',
            content: text.length > 0 ? text : null,
            refusal: null,
            ...(toolCalls.length > 0 ? { tool_calls: toolCalls.map((call, index) => ({ id: callId(index), type: 'function', function: { name: call.name, arguments: call.arguments } })) } : {}),
          },
          logprobs: null,
          finish_reason: finishReason,
        },
      ],
      usage: { prompt_tokens: usage.input, completion_tokens: usage.output, total_tokens: usage.input + usage.output },
    })
    return
  }
  response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
  const send = (choices: unknown[], extra: Record<string, unknown> = {}) =>
    response.write(`data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model, choices, ...extra })}\n\n`)
  send([{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }])
  for (const piece of pieces(text)) send([{ index: 0, delta: { content: piece }, logprobs: null, finish_reason: null }])
  if (reply.kind === 'cut') {
    cutConnection(response)
    return
  }
  toolCalls.forEach((call, index) => {
    send([{ index: 0, delta: { tool_calls: [{ index, id: callId(index), type: 'function', function: { name: call.name, arguments: '' } }] }, logprobs: null, finish_reason: null }])
    for (const piece of pieces(call.arguments, 10)) send([{ index: 0, delta: { tool_calls: [{ index, function: { arguments: piece } }] }, logprobs: null, finish_reason: null }])
  })
  send([{ index: 0, delta: {}, logprobs: null, finish_reason: finishReason }])
  const options = request.body.stream_options as { include_usage?: boolean } | undefined
  if (options?.include_usage) send([], { usage: { prompt_tokens: usage.input, completion_tokens: usage.output, total_tokens: usage.input + usage.output } })
  response.end('data: [DONE]\n\n')
}
