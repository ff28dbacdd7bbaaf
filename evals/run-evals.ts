/**
 * The eval runner: `npm run evals -- --provider scripted|openai|anthropic|ollama [--model id]
 * [--scenario id]… [--json report.json] [--max-steps 30] [--max-tokens 200000]`.
 *
 * Each scenario runs on a fresh embedded platform (temp directory), setup through the admin API,
 * then the agent through the real MCP management endpoint, then the end-state grader. Prints a
 * table, optionally writes a JSON report; exits 1 when a scripted scenario fails (the reference
 * trajectories are CI's check that every grader can pass).
 */
import { writeFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import type { Agent } from './agents/agent.ts'
import { createLlmAgent, providerKinds, type LlmProvider } from './agents/llm-agent.ts'
import { createScriptedAgent } from './agents/scripted-agent.ts'
import { runScenario, type ScenarioResult } from './run-scenario.ts'
import { loadScenarios } from './scenario.ts'

const usage = 'usage: npm run evals -- --provider scripted|openai|anthropic|ollama [--model id] [--scenario id]… [--json report.json] [--max-steps 30] [--max-tokens 200000]'

export async function main(argv: string[], env: Record<string, string | undefined> = process.env): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      provider: { type: 'string', default: 'scripted' },
      model: { type: 'string' },
      scenario: { type: 'string', multiple: true },
      json: { type: 'string' },
      'max-steps': { type: 'string', default: '30' },
      'max-tokens': { type: 'string', default: '200000' },
      help: { type: 'boolean', short: 'h' },
    },
  })
  if (values.help) {
    console.log(usage)
    return 0
  }
  const maxSteps = Number(values['max-steps'])
  const maxTokens = Number(values['max-tokens'])
  if (!Number.isInteger(maxSteps) || maxSteps < 1 || !Number.isInteger(maxTokens) || maxTokens < 1) throw new Error(`--max-steps and --max-tokens take positive integers\n${usage}`)

  let agent: Agent
  if (values.provider === 'scripted') agent = createScriptedAgent()
  else if ((providerKinds as readonly string[]).includes(values.provider)) {
    if (!values.model) throw new Error(`--model is required for --provider ${values.provider}\n${usage}`)
    agent = createLlmAgent({ provider: values.provider as LlmProvider, model: values.model, maxSteps, maxTokens, env })
  } else throw new Error(`unknown provider '${values.provider}'\n${usage}`)

  let scenarios = await loadScenarios()
  if (values.scenario?.length) {
    const unknown = values.scenario.filter((id) => !scenarios.some((scenario) => scenario.id === id))
    if (unknown.length) throw new Error(`unknown scenario ${unknown.join(', ')}; known: ${scenarios.map((scenario) => scenario.id).join(', ')}`)
    scenarios = scenarios.filter((scenario) => values.scenario!.includes(scenario.id))
  }

  const results: ScenarioResult[] = []
  for (const scenario of scenarios) {
    const result = await runScenario(scenario, agent)
    results.push(result)
    process.stderr.write(`${result.pass ? 'pass' : 'FAIL'} ${scenario.id}${result.pass ? '' : `: ${failureText(result)}`}\n`)
  }
  console.log(table(results))
  const passed = results.filter((result) => result.pass).length
  console.log(`\n${passed}/${results.length} passed (provider ${agent.name}${values.model ? `, model ${values.model}` : ''})`)
  if (values.json) {
    const report = { provider: values.provider, model: values.model ?? null, at: new Date().toISOString(), passed, total: results.length, results }
    await writeFile(values.json, `${JSON.stringify(report, null, 2)}\n`)
  }
  return values.provider === 'scripted' && passed < results.length ? 1 : 0
}

export function failureText(result: ScenarioResult): string {
  return [result.error, result.grade?.failure && `check ${result.grade.failure.index}: ${result.grade.failure.reason}`].filter(Boolean).join('; ')
}

function table(results: ScenarioResult[]): string {
  const rows = [
    ['scenario', 'pass', 'tool calls', 'errors', 'tokens', 'seconds'],
    ...results.map((result) => [
      result.id,
      result.pass ? 'yes' : 'NO',
      String(result.toolCalls),
      String(result.toolErrors),
      String(result.inputTokens + result.outputTokens),
      result.seconds.toFixed(2),
    ]),
  ]
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)))
  const line = (row: string[]) => row.map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join('  ')
  return [line(rows[0]!), widths.map((width) => '-'.repeat(width)).join('  '), ...rows.slice(1).map(line)].join('\n')
}

if (import.meta.main) {
  main(process.argv.slice(2)).then(
    (code) => (process.exitCode = code),
    (error: unknown) => {
      console.error(error instanceof Error ? error.message : error)
      process.exitCode = 2
    },
  )
}
