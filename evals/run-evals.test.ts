/** The runner's options and table: repeated runs, concurrency, the per-scenario summary. */
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { main, table } from './run-evals.ts'
import type { ScenarioResult } from './run-scenario.ts'

test('--repeat runs each scenario that many times, --concurrency at once, each on its own platform', async () => {
  const directory = await mkdtemp(join(tmpdir(), 'imprun-run-evals-'))
  try {
    const path = join(directory, 'report.json')
    const code = await main(['--provider', 'scripted', '--scenario', 'hello-publish', '--repeat', '3', '--concurrency', '3', '--json', path])
    assert.equal(code, 0)
    const report = JSON.parse(await readFile(path, 'utf8')) as { repeat: number; passed: number; total: number; results: ScenarioResult[] }
    assert.equal(report.repeat, 3)
    assert.equal(report.total, 3)
    assert.equal(report.passed, 3, 'concurrent runs do not see each other (same gateway id in each)')
  } finally {
    await rm(directory, { recursive: true, force: true })
  }
})

test('bad options are refused with the usage', async () => {
  await assert.rejects(main(['--provider', 'scripted', '--repeat', '0']), /--repeat takes a positive integer, not '0'/)
  await assert.rejects(main(['--provider', 'gemini']), /unknown provider 'gemini'/)
  await assert.rejects(main(['--provider', 'openai']), /--model is required/)
  await assert.rejects(main(['--provider', 'anthropic', '--model', 'x'], {}), /needs ANTHROPIC_API_KEY/)
  await assert.rejects(main(['--scenario', 'nope']), /unknown scenario nope/)
})

test('the table has one row per scenario: passes out of runs and means', () => {
  const run = (id: string, pass: boolean, toolCalls: number, tokens: number): ScenarioResult => ({ id, agent: 'x', pass, toolCalls, toolErrors: 0, inputTokens: tokens, outputTokens: 0, seconds: 1, stopReason: 'done', calls: [] })
  const lines = table([run('a', true, 4, 100), run('a', false, 6, 300), run('b', true, 2, 50)]).split('\n')
  assert.equal(lines.length, 4)
  assert.match(lines[2]!, /^a\s+1\/2\s+5\.0\s+0\.0\s+200\s+1\.00$/)
  assert.match(lines[3]!, /^b\s+1\/1\s+2\.0\s+0\.0\s+50\s+1\.00$/)
})
