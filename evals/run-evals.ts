/**
 * The eval runner: `npm run evals -- --provider scripted|openai|anthropic|ollama [--model id]
 * [--scenario id]… [--json report.json] [--max-steps 30] [--max-tokens 200000] [--repeat 1]
 * [--concurrency 1]`.
 *
 * Each run of a scenario gets a fresh embedded platform (temp directory), setup through the admin
 * API, then the agent through the real MCP management endpoint, then the end-state grader. Models
 * are not deterministic, so `--repeat N` runs each scenario N times and the table shows passes
 * out of N with mean calls, tokens and seconds; `--concurrency` runs that many at once (each on
 * its own platform). Prints a table, optionally writes a JSON report with every run's calls;
 * exits 1 when a scripted run fails (the reference trajectories are CI's check that every grader
 * can pass).
 */
import { writeFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import type { Agent } from './agents/agent.ts'
import { createLlmAgent, providerKinds, type LlmProvider } from './agents/llm-agent.ts'
import { createScriptedAgent } from './agents/scripted-agent.ts'
import { runScenario, type ScenarioResult } from './run-scenario.ts'
import { loadScenarios } from './scenario.ts'

const usage = 'usage: npm run evals -- --provider scripted|openai|anthropic|ollama [--model id] [--scenario id]… [--json report.json] [--max-steps 30] [--max-tokens 200000] [--repeat 1] [--concurrency 1]'

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
      repeat: { type: 'string', default: '1' },
      concurrency: { type: 'string', default: '1' },
      help: { type: 'boolean', short: 'h' },
    },
  })
  if (values.help) {
    console.log(usage)
    return 0
  }
  const [maxSteps, maxTokens, repeat, concurrency] = (['max-steps', 'max-tokens', 'repeat', 'concurrency'] as const).map((name) => {
    const value = Number(values[name])
    if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} takes a positive integer, not '${values[name]}'\n${usage}`)
    return value
  }) as [number, number, number, number]

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

  const jobs = scenarios.flatMap((scenario) => Array.from({ length: repeat }, () => scenario))
  const results: ScenarioResult[] = new Array(jobs.length)
  let next = 0
  const worker = async () => {
    for (let index = next++; index < jobs.length; index = next++) {
      const result = await runScenario(jobs[index]!, agent)
      results[index] = result
      process.stderr.write(`${result.pass ? 'pass' : 'FAIL'} ${result.id}${result.pass ? '' : `: ${failureText(result)}`}\n`)
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, jobs.length) }, worker))
  console.log(table(results))
  const passed = results.filter((result) => result.pass).length
  console.log(`\n${passed}/${results.length} runs passed (provider ${agent.name}${values.model ? `, model ${values.model}` : ''}${repeat > 1 ? `, ${repeat} runs per scenario` : ''})`)
  if (values.json) {
    const report = { provider: values.provider, model: values.model ?? null, at: new Date().toISOString(), repeat, passed, total: results.length, results }
    await writeFile(values.json, `${JSON.stringify(report, null, 2)}\n`)
  }
  return values.provider === 'scripted' && passed < results.length ? 1 : 0
}

export function failureText(result: ScenarioResult): string {
  return [result.error, result.grade?.failure && `check ${result.grade.failure.index}: ${result.grade.failure.reason}`].filter(Boolean).join('; ')
}

/** One row per scenario; with repeated runs, passes out of runs and the means of the rest. */
export function table(results: ScenarioResult[]): string {
  const byScenario = Map.groupBy(results, (result) => result.id)
  const repeated = results.length > byScenario.size
  const mean = (runs: ScenarioResult[], value: (result: ScenarioResult) => number) => runs.reduce((sum, result) => sum + value(result), 0) / runs.length
  const rows = [
    ['scenario', 'pass', 'tool calls', 'errors', 'tokens', 'seconds'],
    ...[...byScenario].map(([id, runs]) => {
      const passes = runs.filter((result) => result.pass).length
      const whole = (value: number) => (repeated ? value.toFixed(1) : String(value))
      return [
        id,
        repeated ? `${passes}/${runs.length}` : passes ? 'yes' : 'NO',
        whole(mean(runs, (result) => result.toolCalls)),
        whole(mean(runs, (result) => result.toolErrors)),
        String(Math.round(mean(runs, (result) => result.inputTokens + result.outputTokens))),
        mean(runs, (result) => result.seconds).toFixed(2),
      ]
    }),
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
