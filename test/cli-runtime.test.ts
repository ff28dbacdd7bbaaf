/**
 * The runtime-facing CLI commands in-process against a real platform (real compiler and
 * sandbox): variables and secrets, test runs of drafts, and logs, once and followed.
 */
import assert from 'node:assert/strict'
import { EventEmitter } from 'node:events'
import { test } from 'node:test'
import { runCli } from '../control/cli/cli.ts'
import { until } from './support/platform-client.ts'
import { useTestPlatform } from './support/test-platform.ts'

const token = 'cli-runtime-token'
const { admin, call, platform } = useTestPlatform({ token, gateways: [{ id: 'shop' }] })


function imprun(argv: string[], options: { env?: Record<string, string>; signals?: EventEmitter; onStdout?: (text: string) => void } = {}) {
  let stdout = ''
  let stderr = ''
  const signals = options.signals
  return runCli(argv, {
    stdout: { write: (text: string) => ((stdout += text), options.onStdout?.(stdout)) },
    stderr: { write: (text: string) => (stderr += text) },
    env: { IMPRUN_URL: platform().url, IMPRUN_TOKEN: token, ...options.env },
    signals: signals ? { once: (name, listener) => signals.once(name, listener), off: (name, listener) => signals.off(name, listener) } : undefined,
  }).then((code) => ({ code, stdout, stderr }))
}

const greet = `
import { z } from 'zod'
export const input = z.object({ name: z.string() })
export default (ctx: any) => {
  console.log('greeting', ctx.input.name)
  if (ctx.input.name === 'nobody') ctx.fail(422, 'nobody cannot be greeted')
  return { text: ctx.env.GREETING + ', ' + ctx.input.name, keyLength: (ctx.env.API_KEY ?? '').length }
}`

test('env set / vars / unset: a secret is set from IMPRUN_VALUE and never printed', async () => {
  const plain = await imprun(['env', 'set', 'shop', 'dev', 'GREETING=Hello'])
  assert.deepEqual([plain.code, plain.stdout.trim()], [0, 'set variable GREETING on shop/dev'])
  const secret = await imprun(['env', 'set', 'shop', 'dev', 'API_KEY', '--secret'], { env: { IMPRUN_VALUE: 'sk-very-secret' } })
  assert.deepEqual([secret.code, secret.stdout.trim()], [0, 'set secret API_KEY on shop/dev'])
  const listed = await imprun(['env', 'vars', 'shop', 'dev'])
  assert.equal(listed.code, 0)
  assert.match(listed.stdout, /API_KEY\s+\(secret\)/)
  assert.match(listed.stdout, /GREETING\s+Hello/)
  const json = await imprun(['env', 'vars', 'shop', 'dev', '--json'])
  assert.ok(!json.stdout.includes('sk-very-secret'))
  const missing = await imprun(['env', 'set', 'shop', 'dev', 'NOVALUE'])
  assert.equal(missing.code, 2)
  const bad = await imprun(['env', 'set', 'shop', 'dev', '9LIVES=x'])
  assert.equal(bad.code, 1)
  assert.match(bad.stderr, /^error invalid_name:/)
  assert.equal((await imprun(['env', 'set', 'shop', 'dev', 'TEMP=1'])).code, 0)
  assert.equal((await imprun(['env', 'unset', 'shop', 'dev', 'TEMP'])).code, 0)
  const gone = await imprun(['env', 'unset', 'shop', 'dev', 'TEMP'])
  assert.equal(gone.code, 1)
  assert.match(gone.stderr, /^error not_found:/)
})

test('function test runs the draft with the environment, prints its logs, fails with its error', async () => {
  await admin('PUT', '/admin/gateways/shop/functions/greet', { source: greet })
  const ok = await imprun(['function', 'test', 'shop', 'greet', '{"name":"Ada"}'])
  assert.equal(ok.code, 0, ok.stderr)
  assert.match(ok.stdout, /info {2}greeting Ada/)
  assert.match(ok.stdout, /"text": "Hello, Ada"/)
  assert.match(ok.stdout, /"keyLength": 14/)
  const failed = await imprun(['function', 'test', 'shop', 'greet', '{"name":"nobody"}'])
  assert.equal(failed.code, 1)
  assert.match(failed.stderr, /^error function_error: nobody cannot be greeted \(status 422\)/)
  const invalid = await imprun(['function', 'test', 'shop', 'greet', '{}'])
  assert.equal(invalid.code, 1)
  assert.match(invalid.stderr, /^error invalid_input:/)
  assert.equal((await admin('GET', '/admin/gateways/shop/functions/greet')).body.latestVersion, 0, 'nothing published')
})

test('logs shows recent invocations; logs -f follows new ones until interrupted', async () => {
  await admin('PUT', '/admin/gateways/shop/functions/greet', { source: greet })
  await admin('POST', '/admin/gateways/shop/functions/greet/publish', {})
  const first = await until(() => call('/shop/dev/greet?name=Bo'), (response) => response.status === 200, 'greet live')
  assert.equal(first.body.text, 'Hello, Bo')
  await until(() => admin('GET', '/admin/gateways/shop/logs?function=greet'), (response) => response.body.logs.some((entry: { method: string }) => entry.method === 'GET'), 'log flushed')
  const recent = await imprun(['logs', 'shop', '--function', 'greet'])
  assert.equal(recent.code, 0, recent.stderr)
  assert.match(recent.stdout, /dev\/greet v1 GET 200/)
  assert.match(recent.stdout, /info {2}greeting Bo/)

  const signals = new EventEmitter()
  let called = false
  const following = imprun(['logs', 'shop', '-f', '--limit', '1'], {
    signals,
    onStdout: (text) => {
      if (!called && text.includes('greeting Bo')) {
        called = true
        // The backlog is printed: now make a new invocation and wait for it to arrive.
        setTimeout(() => void call('/shop/dev/greet?name=Cy'), 50)
      }
      if (text.includes('greeting Cy')) signals.emit('SIGINT')
    },
  })
  const followed = await following
  assert.equal(followed.code, 0, followed.stderr)
  assert.match(followed.stdout, /greeting Cy/)
  const unknown = await imprun(['logs', 'nowhere'])
  assert.equal(unknown.code, 1)
  assert.match(unknown.stderr, /^error not_found:/)
})
