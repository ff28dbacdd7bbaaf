/**
 * Runs scripts/mcp-conformance.ts: the MCP conformance suite and the Inspector CLI against a
 * real `imprun start`. Offline: both tools are dev dependencies and talk to loopback only.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))

test('MCP conformance suite and Inspector CLI pass', { timeout: 180_000 }, async () => {
  const child = spawn(process.execPath, [join(root, 'scripts', 'mcp-conformance.ts')], { cwd: root, env: process.env })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()))
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()))
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
  assert.equal(code, 0, output)
  assert.match(output, /all conformance checks passed/)
  assert.doesNotMatch(output, /^FAIL/m)
})
