/**
 * The design's journey set up for chat tests: the embedded platform with the real compiler and
 * sandbox, gateway `hometax` with `calculateTax` published to prod, application `mobile` with a
 * prod grant key, and one loopback stub provider per kind configured as a provider with a model
 * alias (`gpt-stub`, `claude-stub`, `llama-stub`).
 */
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startEmbeddedPlatform, type EmbeddedPlatform } from '../../control/platform.ts'
import { createDefaultCompiler } from '../../runtime/compile/index.ts'
import { startStubAnthropicServer } from './stub-anthropic-server.ts'
import { taxAgentScript, type StubServer } from './stub-model-script.ts'
import { startStubOllamaServer } from './stub-ollama-server.ts'
import { startStubOpenAIServer } from './stub-openai-server.ts'

export interface ChatPlatformFixture {
  platform: EmbeddedPlatform
  /** Prod grant key of application `mobile`. */
  apiKey: string
  applicationId: string
  stubs: { openai: StubServer; anthropic: StubServer; ollama: StubServer }
  /** model alias → stub behind it */
  aliases: { openai: string; anthropic: string; ollama: string }
  admin(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }>
  close(): Promise<void>
}

export const adminToken = 'chat-admin-token'
const calculateTax = readFileSync(join(import.meta.dirname, '..', '..', 'examples', 'hometax', 'calculateTax.ts'), 'utf8')

export async function startChatPlatform(): Promise<ChatPlatformFixture> {
  const directory = await mkdtemp(join(tmpdir(), 'imprun-chat-'))
  const stubs = {
    openai: await startStubOpenAIServer(taxAgentScript),
    anthropic: await startStubAnthropicServer(taxAgentScript),
    ollama: await startStubOllamaServer(taxAgentScript),
  }
  const platform = await startEmbeddedPlatform({ dataDirectory: directory, port: 0, adminToken, compiler: createDefaultCompiler(), reconciler: { idlePollMs: 50 } })
  async function admin(method: string, path: string, body?: unknown) {
    const response = await fetch(`${platform.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${adminToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    })
    const text = await response.text()
    return { status: response.status, body: text ? JSON.parse(text) : null }
  }
  const expect = (response: { status: number; body: any }, status: number, what: string) => {
    if (response.status !== status) throw new Error(`${what}: ${response.status} ${JSON.stringify(response.body)}`)
    return response
  }
  expect(await admin('POST', '/admin/gateways', { id: 'hometax' }), 201, 'create gateway')
  await until(async () => (await admin('GET', '/admin/gateways/hometax')).body.phase === 'Started', 'hometax Started')
  expect(await admin('PUT', '/admin/gateways/hometax/functions/calculateTax', { source: calculateTax }), 200, 'write')
  expect(await admin('POST', '/admin/gateways/hometax/functions/calculateTax/publish', {}), 200, 'publish')
  expect(await admin('POST', '/admin/gateways/hometax/functions/calculateTax/promote', { from: 'dev' }), 200, 'promote staging')
  expect(await admin('POST', '/admin/gateways/hometax/functions/calculateTax/promote', { from: 'staging' }), 200, 'promote prod')
  await until(async () => (await platform.services.catalog.list('hometax', 'prod')).some((item) => item.name === 'calculateTax'), 'calculateTax live on prod')
  const application = expect(await admin('POST', '/admin/applications', { name: 'mobile' }), 201, 'application')
  const grant = expect(await admin('POST', '/admin/grants', { application: 'mobile', gateway: 'hometax', stage: 'prod' }), 201, 'grant')

  expect(await admin('POST', '/admin/providers', { id: 'stub-openai', kind: 'openai', baseUrl: `${stubs.openai.url}/v1`, apiKey: 'sk-openai-stub-key-0001' }), 201, 'provider openai')
  expect(await admin('POST', '/admin/providers', { id: 'stub-anthropic', kind: 'anthropic', baseUrl: stubs.anthropic.url, apiKey: 'sk-ant-stub-key-0002' }), 201, 'provider anthropic')
  expect(await admin('POST', '/admin/providers', { id: 'stub-ollama', kind: 'ollama', baseUrl: stubs.ollama.url }), 201, 'provider ollama')
  expect(await admin('PUT', '/admin/models/gpt-stub', { provider: 'stub-openai', model: 'stub-gpt' }), 200, 'model gpt-stub')
  expect(await admin('PUT', '/admin/models/claude-stub', { provider: 'stub-anthropic', model: 'stub-claude' }), 200, 'model claude-stub')
  expect(await admin('PUT', '/admin/models/llama-stub', { provider: 'stub-ollama', model: 'stub-llama' }), 200, 'model llama-stub')

  return {
    platform,
    apiKey: grant.body.apiKey,
    applicationId: application.body.id,
    stubs,
    aliases: { openai: 'gpt-stub', anthropic: 'claude-stub', ollama: 'llama-stub' },
    admin,
    async close() {
      await platform.close()
      await Promise.all(Object.values(stubs).map((stub) => stub.close()))
      await rm(directory, { recursive: true, force: true })
    },
  }
}

async function until(probe: () => Promise<boolean>, what: string): Promise<void> {
  for (let attempt = 0; attempt < 500; attempt++) {
    if (await probe()) return
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  throw new Error(`timed out waiting for ${what}`)
}
