/**
 * What the loopback stub provider servers (test doubles for OpenAI, Anthropic and Ollama) answer.
 * Each stub reduces the request it receives to a `StubRequest`, asks its script for a
 * `StubReply`, and renders that in its provider's wire format — stream or not, as asked.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

export interface StubRequest {
  path: string
  headers: IncomingMessage['headers']
  /** The parsed JSON body as sent. */
  body: Record<string, unknown>
  model: string
  stream: boolean
  /** Names of the tools offered. */
  tools: string[]
  /** Text of the last user turn (tool results excluded). */
  lastUserText: string
  /** Contents of the tool results in the last turn, in order. */
  toolResults: string[]
}

export type StubReply =
  | { kind: 'answer'; text?: string; toolCalls?: Array<{ name: string; arguments: string }>; finish?: 'stop' | 'length'; usage?: { input: number; output: number } }
  | { kind: 'error'; status: number; message: string; headers?: Record<string, string> }
  /** A stream that starts, sends `text`, then the connection is destroyed. */
  | { kind: 'cut'; text: string }
  /** Never answers (until the client gives up). */
  | { kind: 'hang' }

export type StubScript = (request: StubRequest) => StubReply

/** Plays replies in order; the last one repeats. */
export function scriptedReplies(...replies: StubReply[]): StubScript {
  let next = 0
  return () => replies[Math.min(next++, replies.length - 1)]!
}

/**
 * A stand-in model that knows one trick: asked about tax with a tool whose name contains
 * `calculateTax` on offer, it calls it with the numbers of the question; given its result, it
 * answers with the tax. Numbers are read as written (`50,000,000`).
 */
export const taxAgentScript: StubScript = (request) => {
  const result = request.toolResults[0]
  if (result !== undefined) {
    const tax = /"tax"\s*:\s*([0-9.]+)/.exec(result)?.[1]
    return { kind: 'answer', text: tax ? `The tax is ${Number(tax).toLocaleString('en-US')}.` : `The tool said: ${result}`, usage: { input: 40, output: 8 } }
  }
  const tool = request.tools.find((name) => name.includes('calculateTax'))
  const numbers = [...request.lastUserText.matchAll(/[0-9][0-9,]*/g)].map((match) => Number(match[0].replaceAll(',', '')))
  if (tool && numbers.length >= 2) {
    return { kind: 'answer', text: 'Let me calculate that. ', toolCalls: [{ name: tool, arguments: JSON.stringify({ income: numbers[0], deductions: numbers[1] }) }], usage: { input: 30, output: 12 } }
  }
  return { kind: 'answer', text: `You said: ${request.lastUserText}`, usage: { input: 10, output: 5 } }
}

export interface StubServer {
  url: string
  /** Every request received, newest last. */
  requests: StubRequest[]
  /** Replace the script. */
  script: StubScript
  /** Chat requests whose connection closed before their answer was complete. */
  abandoned: number
  close(): Promise<void>
}

export interface StubHandlers {
  /** Which paths are chat endpoints. */
  isChatPath(path: string): boolean
  reduce(path: string, headers: IncomingMessage['headers'], body: Record<string, unknown>): StubRequest
  render(request: StubRequest, reply: Exclude<StubReply, { kind: 'hang' }>, response: ServerResponse): void
  /** Answers non-chat paths (e.g. model listing); 404 when absent. */
  other?(path: string, response: ServerResponse): boolean
}

/** Starts a loopback HTTP server with the given provider handlers. */
export async function startStubServer(handlers: StubHandlers, script: StubScript): Promise<StubServer> {
  const state: StubServer = {
    url: '',
    requests: [],
    script,
    abandoned: 0,
    close: async () => {},
  }
  const sockets = new Set<import('node:net').Socket>()
  const server: Server = createServer(async (request, response) => {
    const chunks: Buffer[] = []
    for await (const chunk of request) chunks.push(chunk as Buffer)
    const path = (request.url ?? '/').split('?')[0]!
    if (!handlers.isChatPath(path)) {
      if (handlers.other?.(path, response)) return
      response.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}')
      return
    }
    let body: Record<string, unknown>
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>
    } catch {
      response.writeHead(400, { 'content-type': 'application/json' }).end('{"error":"bad json"}')
      return
    }
    response.on('close', () => {
      if (!response.writableFinished) state.abandoned++
    })
    const reduced = handlers.reduce(path, request.headers, body)
    state.requests.push(reduced)
    const reply = state.script(reduced)
    if (reply.kind === 'hang') return
    handlers.render(reduced, reply, response)
  })
  server.on('connection', (socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  state.url = `http://127.0.0.1:${port}`
  state.close = async () => {
    for (const socket of sockets) socket.destroy()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }
  return state
}

/** Splits text into a few pieces so that streams carry several deltas. */
export function pieces(text: string, size = 8): string[] {
  const out: string[] = []
  for (let index = 0; index < text.length; index += size) out.push(text.slice(index, index + size))
  return out
}

export function writeJson(response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  response.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body))
}

/** Parses scripted tool arguments for providers that send objects; malformed text becomes {}. */
export function argumentsObject(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return {}
  }
}

/** Destroys the connection once what was written so far has reached the client. */
export function cutConnection(response: ServerResponse): void {
  response.write('', () => setTimeout(() => response.socket?.destroy(), 10))
}
