/**
 * One scenario's world: a fresh embedded platform in a temp directory, an admin REST client for
 * setup and grading, and an MCP session on the management endpoint for the agent.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import type { CallToolResult, Tool } from '@modelcontextprotocol/sdk/types.js'
import { startEmbeddedPlatform, type EmbeddedPlatform } from '../control/platform.ts'
import { createDefaultCompiler } from '../runtime/compile/index.ts'
import type { SetupStep } from './scenario.ts'
import { resolveValue, type References } from './values.ts'

export interface HttpAnswer {
  status: number
  body: unknown
}

export interface EvalWorld {
  url: string
  adminToken: string
  admin: AdminClient
  close(): Promise<void>
}

export async function startWorld(): Promise<EvalWorld> {
  const directory = await mkdtemp(join(tmpdir(), 'imprun-evals-'))
  const adminToken = 'eval-admin-token'
  let platform: EmbeddedPlatform
  try {
    platform = await startEmbeddedPlatform({ dataDirectory: directory, port: 0, adminToken, compiler: createDefaultCompiler(), reconciler: { idlePollMs: 20 } })
  } catch (error) {
    await rm(directory, { recursive: true, force: true })
    throw error
  }
  return {
    url: platform.url,
    adminToken,
    admin: new AdminClient(platform.url, adminToken),
    close: async () => {
      await platform.close()
      await rm(directory, { recursive: true, force: true })
    },
  }
}

/** Plain HTTP against the platform; JSON in and out. */
export async function httpRequest(url: string, method: string, body: unknown, headers: Record<string, string> = {}): Promise<HttpAnswer> {
  const hasBody = body !== undefined && method !== 'GET' && method !== 'DELETE'
  const response = await fetch(url, {
    method,
    headers: { ...(hasBody ? { 'content-type': 'application/json' } : {}), ...headers },
    body: hasBody ? JSON.stringify(body) : undefined,
  })
  const text = await response.text()
  let parsed: unknown = text
  try {
    parsed = text === '' ? undefined : JSON.parse(text)
  } catch {
    // not JSON: keep the text
  }
  return { status: response.status, body: parsed }
}

export class AdminClient {
  readonly url: string
  readonly #token: string

  constructor(url: string, token: string) {
    this.url = url
    this.#token = token
  }

  request(method: string, path: string, body?: unknown): Promise<HttpAnswer> {
    return httpRequest(`${this.url}${path}`, method, body, { authorization: `Bearer ${this.#token}` })
  }

  /** Like request, but throws unless the status is 2xx (or `expectStatus`). */
  async must(method: string, path: string, body?: unknown, expectStatus?: number): Promise<unknown> {
    const answer = await this.request(method, path, body)
    const ok = expectStatus === undefined ? answer.status >= 200 && answer.status < 300 : answer.status === expectStatus
    if (!ok) throw new Error(`${method} ${path}: ${answer.status} ${JSON.stringify(answer.body)} (expected ${expectStatus ?? '2xx'})`)
    return answer.body
  }

  async waitForPhase(gateway: string, phase: string, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const answer = await this.request('GET', `/admin/gateways/${gateway}`)
      if ((answer.body as { phase?: string } | undefined)?.phase === phase) return
      if (Date.now() > deadline) throw new Error(`gateway ${gateway} did not reach ${phase}: ${JSON.stringify(answer.body)}`)
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  }
}

const nextStage = { dev: 'staging', staging: 'prod' } as const

/** Runs the setup steps in order, saving bodies into `references.setup`. */
export async function runSetup(admin: AdminClient, steps: SetupStep[], references: References): Promise<void> {
  for (const raw of steps) {
    const step = resolveValue(raw, references) as SetupStep
    if ('gateway' in step) {
      await admin.must('POST', '/admin/gateways', { id: step.gateway.id, ...(step.gateway.pipeline === undefined ? {} : { pipeline: step.gateway.pipeline }) })
      await admin.waitForPhase(step.gateway.id, 'Started')
    } else if ('deploy' in step) {
      const { gateway, function: name, source, stages, message } = step.deploy
      if ((await admin.request('GET', `/admin/gateways/${gateway}`)).status === 404) {
        await admin.must('POST', '/admin/gateways', { id: gateway })
        await admin.waitForPhase(gateway, 'Started')
      }
      const path = `/admin/gateways/${gateway}/functions/${encodeURIComponent(name)}`
      await admin.must('PUT', path, { source })
      await admin.must('POST', `${path}/publish`, message === undefined ? {} : { message })
      // Walk the pipeline up to the highest stage asked for.
      let stage: 'dev' | 'staging' | 'prod' = 'dev'
      const highest = stages.includes('prod') ? 'prod' : stages.includes('staging') ? 'staging' : 'dev'
      while (stage !== highest) {
        await admin.must('POST', `${path}/promote`, { from: stage })
        stage = nextStage[stage as 'dev' | 'staging']
      }
    } else {
      const body = await admin.must(step.method, step.path, step.body, step.expectStatus)
      if (step.save) references.setup[step.save] = body
    }
  }
}

/** What the agent did through MCP: every tool call with its outcome. */
export interface RecordedCall {
  tool: string
  arguments: Record<string, unknown>
  isError: boolean
  /** structuredContent, or the text content when there is none. */
  result: unknown
  /** Set when the call was a protocol error (unknown tool, invalid arguments). */
  protocolError?: string
}

/** The agent's MCP session on the management endpoint, recording every call. */
export class McpSession {
  readonly calls: RecordedCall[] = []
  readonly #client: Client

  private constructor(client: Client) {
    this.#client = client
  }

  static async connect(world: EvalWorld): Promise<McpSession> {
    const client = new Client({ name: 'imprun-evals', version: '1.0.0' })
    await client.connect(new StreamableHTTPClientTransport(new URL(`${world.url}/mcp`), { requestInit: { headers: { authorization: `Bearer ${world.adminToken}` } } }))
    return new McpSession(client)
  }

  async listTools(): Promise<Tool[]> {
    return (await this.#client.listTools()).tools
  }

  async call(tool: string, args: Record<string, unknown>): Promise<RecordedCall> {
    let recorded: RecordedCall
    try {
      const result = (await this.#client.callTool({ name: tool, arguments: args }, undefined, { timeout: 60_000 })) as CallToolResult
      const text = result.content.map((part) => (part.type === 'text' ? part.text : `[${part.type}]`)).join('\n')
      recorded = { tool, arguments: args, isError: result.isError === true, result: result.structuredContent ?? text }
    } catch (error) {
      recorded = { tool, arguments: args, isError: true, result: null, protocolError: error instanceof Error ? error.message : String(error) }
    }
    this.calls.push(recorded)
    return recorded
  }

  close(): Promise<void> {
    return this.#client.close()
  }
}
