/**
 * Test double: a loopback server speaking the Anthropic Messages API (JSON, and SSE with
 * `event:` lines in the documented order: message_start, content_block_start/delta/stop …,
 * message_delta, message_stop), answering from a script.
 */
import type { ServerResponse } from 'node:http'
import { cutConnection, argumentsObject, pieces, startStubServer, writeJson, type StubReply, type StubRequest, type StubScript, type StubServer } from './stub-model-script.ts'

type Block = { type?: string; text?: string; content?: unknown }
type AnthropicMessage = { role?: string; content?: string | Block[] }

function blockText(content: unknown): string {
  if (typeof content === 'string') return content
  if (Array.isArray(content)) return content.map((block: Block) => (block?.type === 'text' ? (block.text ?? '') : '')).join('')
  return ''
}

export function startStubAnthropicServer(script: StubScript): Promise<StubServer> {
  let counter = 0
  return startStubServer(
    {
      isChatPath: (path) => path.endsWith('/v1/messages'),
      reduce(path, headers, body): StubRequest {
        const messages = (Array.isArray(body.messages) ? body.messages : []) as AnthropicMessage[]
        const last = messages.at(-1)
        const toolResults = Array.isArray(last?.content) ? last.content.filter((block) => block.type === 'tool_result').map((block) => blockText(block.content)) : []
        const lastUser = [...messages].reverse().find((message) => message.role === 'user' && blockText(message.content).length > 0)
        const tools = (Array.isArray(body.tools) ? body.tools : []) as Array<{ name?: string }>
        return {
          path,
          headers,
          body,
          model: String(body.model),
          stream: body.stream === true,
          tools: tools.map((tool) => tool.name ?? ''),
          lastUserText: blockText(lastUser?.content),
          toolResults,
        }
      },
      render(request, reply, response) {
        renderAnthropic(request, reply, response, `msg_stub${++counter}`)
      },
    },
    script,
  )
}

function renderAnthropic(request: StubRequest, reply: Exclude<StubReply, { kind: 'hang' }>, response: ServerResponse, id: string): void {
  if (reply.kind === 'error') {
    const type = reply.status === 429 ? 'rate_limit_error' : reply.status === 529 ? 'overloaded_error' : reply.status >= 500 ? 'api_error' : 'invalid_request_error'
    writeJson(response, reply.status, { type: 'error', error: { type, message: reply.message } }, reply.headers)
    return
  }
  const text = reply.text ?? ''
  const toolCalls = reply.kind === 'answer' ? (reply.toolCalls ?? []) : []
  const usage = reply.kind === 'answer' ? (reply.usage ?? { input: 10, output: 5 }) : { input: 0, output: 0 }
  const stopReason = toolCalls.length > 0 ? 'tool_use' : reply.kind === 'answer' && reply.finish === 'length' ? 'max_tokens' : 'end_turn'
  const toolId = (index: number) => `toolu_${id.slice(-6)}_${index}`
  if (!request.stream) {
    const content: unknown[] = []
    if (text.length > 0) content.push({ type: 'text', text })
    toolCalls.forEach((call, index) => content.push({ type: 'tool_use', id: toolId(index), name: call.name, input: argumentsObject(call.arguments) }))
    writeJson(response, 200, {
      id,
      type: 'message',
      role: 'assistant',
      model: request.model,
      content,
      stop_reason: stopReason,
      stop_sequence: null,
      usage: { input_tokens: usage.input, output_tokens: usage.output },
    })
    return
  }
  response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
  const send = (event: string, data: Record<string, unknown>) => response.write(`event: ${event}\ndata: ${JSON.stringify({ type: event, ...data })}\n\n`)
  send('message_start', {
    message: { id, type: 'message', role: 'assistant', model: request.model, content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: usage.input, output_tokens: 1 } },
  })
  send('ping', {})
  let block = 0
  if (text.length > 0) {
    send('content_block_start', { index: block, content_block: { type: 'text', text: '' } })
    for (const piece of pieces(text)) send('content_block_delta', { index: block, delta: { type: 'text_delta', text: piece } })
    if (reply.kind === 'cut') {
      cutConnection(response)
      return
    }
    send('content_block_stop', { index: block })
    block++
  }
  toolCalls.forEach((call, index) => {
    send('content_block_start', { index: block, content_block: { type: 'tool_use', id: toolId(index), name: call.name, input: {} } })
    for (const piece of pieces(call.arguments, 10)) send('content_block_delta', { index: block, delta: { type: 'input_json_delta', partial_json: piece } })
    send('content_block_stop', { index: block })
    block++
  })
  send('message_delta', { delta: { stop_reason: stopReason, stop_sequence: null }, usage: { output_tokens: usage.output } })
  send('message_stop', {})
  response.end()
}
