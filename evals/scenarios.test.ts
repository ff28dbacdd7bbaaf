/**
 * Grader self-check: every scenario's grader passes after its reference trajectory (replayed
 * through the real MCP server) and fails on a platform where the agent did nothing (setup only),
 * so each grader can both pass and fail.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createScriptedAgent } from './agents/scripted-agent.ts'
import { failureText } from './run-evals.ts'
import { runScenario } from './run-scenario.ts'
import { loadScenarios } from './scenario.ts'

const scenarios = await loadScenarios()

test('there are at least 12 scenarios with unique ids', () => {
  assert.ok(scenarios.length >= 12, `${scenarios.length} scenarios`)
})

for (const scenario of scenarios) {
  test(`${scenario.id}: the reference trajectory passes the grader`, async () => {
    const result = await runScenario(scenario, createScriptedAgent())
    assert.equal(result.stopReason, 'done', failureText(result))
    assert.ok(result.pass, failureText(result))
    assert.equal(result.toolCalls, scenario.reference.length)
  })

  test(`${scenario.id}: doing nothing fails the grader`, async () => {
    const result = await runScenario(scenario, null)
    assert.equal(result.error, undefined, 'setup must succeed')
    assert.equal(result.pass, false, 'the grader passed although the agent did nothing')
    assert.ok(result.grade?.failure, 'a failing check is named')
  })
}
