/**
 * The LLM eval loop, end to end, for each provider kind: `npm run evals -- --provider X` against
 * a loopback stub server speaking X's wire format (through the official SDK inside our adaptor),
 * whose model is a test double that follows each scenario's reference trajectory by reading the
 * tool results it is sent. Every scenario must pass, with the model's own tool calls through the
 * real MCP server, and the report must carry tool calls and tokens. Then the loop's limits: the
 * step budget, the token budget, a provider that keeps failing, and a model that makes bad calls
 * first (malformed JSON, an unknown tool, invalid arguments) and recovers from the errors it is
 * shown.
 */
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { startStubAnthropicServer } from '../adaptors/testing/stub-anthropic-server.ts'
import type { StubRequest, StubScript, StubServer } from '../adaptors/testing/stub-model-script.ts'
import { startStubOllamaServer } from '../adaptors/testing/stub-ollama-server.ts'
import { startStubOpenAIServer } from '../adaptors/testing/stub-openai-server.ts'
import { main } from './run-evals.ts'
import type { ScenarioResult } from './run-scenario.ts'
import { loadScenarios } from './scenario.ts'
import { referenceStubModel } from './testing/reference-stub-model.ts'

const scenarios = await loadScenarios()

const providers = [
  { kind: 'openai', start: startStubOpenAIServer, env: (url: string) => ({ OPENAI_BASE_URL: `${url}/v1`, OPENAI_API_KEY: 'stub-key' }) },
  { kind: 'anthropic', start: startStubAnthropicServer, env: (url: string) => ({ ANTHROPIC_BASE_URL: url, ANTHROPIC_API_KEY: 'stub-key' }) },
  { kind: 'ollama', start: startStubOllamaServer, env: (url: string) => ({ OLLAMA_BASE_URL: url }) },
] as const

interface Report {
  provider: string
  model: string
  passed: number
  total: number
  results: ScenarioResult[]
}

let directory: string
before(async () => {
  directory = await mkdtemp(join(tmpdir(), 'imprun-llm-evals-'))
})
after(() => rm(directory, { recursive: true, force: true }))

async function runEvals(stub: StubServer, provider: (typeof providers)[number], extra: string[]): Promise<{ code: number; report: Report }> {
  const path = join(directory, `${provider.kind}-${stub.requests.length}-${Math.random().toString(36).slice(2)}.json`)
  const code = await main(['--provider', provider.kind, '--model', 'stub-model', '--json', path, ...extra], provider.env(stub.url))
  return { code, report: JSON.parse(await readFile(path, 'utf8')) as Report }
}

for (const provider of providers) {
  describe(`--provider ${provider.kind}`, () => {
    let stub: StubServer
    before(async () => {
      stub = await provider.start(() => ({ kind: 'answer', text: 'unset' }))
    })
    after(() => stub.close())

    test('a model following the reference trajectories solves every scenario', async () => {
      const model = referenceStubModel(scenarios)
      stub.script = model.script
      const { code, report } = await runEvals(stub, provider, [])
      assert.equal(code, 0)
      assert.equal(report.provider, provider.kind)
      assert.equal(report.model, 'stub-model')
      for (const result of report.results) {
        const scenario = scenarios.find((candidate) => candidate.id === result.id)!
        assert.ok(result.pass, `${result.id}: ${result.error ?? JSON.stringify(result.grade?.failure)}`)
        assert.equal(result.stopReason, 'done', result.id)
        assert.equal(result.toolCalls, scenario.reference.length, result.id)
        assert.deepEqual(
          result.calls.map((call) => call.tool),
          scenario.reference.map((step) => step.tool),
          `${result.id}: the model's calls reached MCP in order`,
        )
        assert.ok(result.inputTokens > 1000 && result.outputTokens > 0, `${result.id}: tokens are counted`)
        assert.equal(model.seen.get(result.id)?.length, scenario.reference.length, `${result.id}: every tool result went back to the model`)
      }
      assert.equal(report.passed, scenarios.length)
      assert.equal(report.total, scenarios.length)
      const first = stub.requests.find((request) => request.lastUserText === scenarios[0]!.task)!
      assert.ok(first.tools.length >= 30, 'the management tools were offered to the model')
    })
  })
}

describe('the loop stops and recovers', () => {
  const provider = providers[0]
  const scenario = scenarios.find((candidate) => candidate.id === 'hello-publish') ?? scenarios[0]!
  let stub: StubServer
  before(async () => {
    stub = await provider.start(() => ({ kind: 'answer', text: 'unset' }))
  })
  after(() => stub.close())

  const listForever: StubScript = () => ({ kind: 'answer', toolCalls: [{ name: 'gateway_list', arguments: '{}' }], usage: { input: 100, output: 10 } })

  test('the step budget ends a model that never stops calling tools', async () => {
    stub.script = listForever
    const { report } = await runEvals(stub, provider, ['--scenario', scenario.id, '--max-steps', '3'])
    const [result] = report.results
    assert.equal(result!.stopReason, 'max-steps')
    assert.equal(result!.toolCalls, 3)
    assert.equal(result!.pass, false)
    assert.equal(result!.inputTokens + result!.outputTokens, 330)
  })

  test('the token budget ends it too, and caps what one turn may ask for', async () => {
    stub.script = listForever
    const { report } = await runEvals(stub, provider, ['--scenario', scenario.id, '--max-tokens', '250'])
    const [result] = report.results
    assert.equal(result!.stopReason, 'max-tokens')
    assert.equal(result!.toolCalls, 3, 'three turns of 110 tokens pass 250')
    const asked = stub.requests.slice(-3).map((request) => request.body.max_tokens ?? request.body.max_completion_tokens)
    assert.deepEqual(asked, [250, 140, 30])
  })

  test('a provider that keeps failing ends the scenario with its error after retries', async () => {
    const before = stub.requests.length
    stub.script = () => ({ kind: 'error', status: 503, message: 'overloaded', headers: { 'retry-after': '0' } })
    const { report } = await runEvals(stub, provider, ['--scenario', scenario.id])
    const [result] = report.results
    assert.equal(result!.stopReason, 'error')
    assert.match(result!.error ?? '', /overloaded/)
    assert.equal(stub.requests.length - before, 5, 'the first attempt and four retries')
    assert.equal(result!.pass, false)
  })

  test('bad calls come back to the model as errors it can act on', async () => {
    const model = referenceStubModel([scenario])
    const bad = [
      { name: 'gateway_create', arguments: '{"id": "hello' },
      { name: 'gateway_explode', arguments: '{}' },
      { name: 'gateway_create', arguments: '{"id": 42}' },
    ]
    const shown: string[] = []
    stub.script = (request: StubRequest) => {
      shown.push(...request.toolResults)
      const turn = shown.length
      if (turn < bad.length) return { kind: 'answer', toolCalls: [bad[turn]!], usage: { input: 10, output: 5 } }
      // The bad turns are over: the model starts afresh on the reference.
      return model.script(turn === bad.length && request.toolResults.length ? { ...request, toolResults: [] } : request)
    }
    const { report } = await runEvals(stub, provider, ['--scenario', scenario.id])
    const [result] = report.results
    assert.ok(result!.pass, result!.error ?? JSON.stringify(result!.grade?.failure))
    assert.match(shown[0]!, /arguments are not valid JSON/)
    assert.match(shown[1]!, /unknown tool 'gateway_explode'/)
    assert.match(shown[2]!, /invalid arguments for tool gateway_create: id: /)
    assert.equal(result!.toolErrors, 2, 'the malformed call never reached MCP; the other two did and failed')
    const failed = result!.calls.filter((call) => call.isError)
    assert.deepEqual(failed.map((call) => [call.tool, call.arguments]), [['gateway_explode', {}], ['gateway_create', { id: 42 }]], 'the report keeps the failed calls with their arguments')
    assert.match(failed[1]!.error ?? '', /invalid arguments/)
  })
})
