/**
 * `imprun start` in-process: it announces its URL and the first-start token, stops cleanly on a
 * signal, and explains a port that is taken. The spawned-process version is test/cli-start.test.ts.
 */
import assert from 'node:assert/strict'
import { EventEmitter } from 'node:events'
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import { TestDoubleCompiler } from '../testing/test-doubles.ts'
import { runCli } from './cli.ts'

function startInProcess(argv: string[], env: Record<string, string> = {}) {
  const output = { stdout: '', stderr: '' }
  const signals = new EventEmitter()
  const exit = runCli(
    ['start', ...argv],
    {
      stdout: { write: (text: string) => (output.stdout += text) },
      stderr: { write: (text: string) => (output.stderr += text) },
      env,
      signals,
    },
    { loadCompiler: () => new TestDoubleCompiler() },
  )
  return { output, signals, exit }
}

async function waitForUrl(output: { stdout: string }, exit: Promise<number>): Promise<string> {
  let finished = false
  void exit.then(() => (finished = true))
  for (let attempt = 0; attempt < 200 && !finished; attempt++) {
    const url = /imprun is running at (\S+)/.exec(output.stdout)?.[1]
    if (url) return url
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
  throw new Error(`start printed no URL:\n${output.stdout}`)
}

async function temporaryDirectory(t: TestContext): Promise<string> {
  const directory = await mkdtemp(join(tmpdir(), 'imprun-start-'))
  t.after(() => rm(directory, { recursive: true, force: true }))
  return directory
}

test('start announces its URLs and the token once, and stops on SIGTERM', async (t) => {
  const directory = await temporaryDirectory(t)
  const first = startInProcess(['--port', '0'], { IMPRUN_DATA_DIR: directory })
  const url = await waitForUrl(first.output, first.exit)
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/)
  assert.match(first.output.stdout, new RegExp(`admin API\\s+${url}/admin\\n`))
  assert.match(first.output.stdout, new RegExp(`OpenAPI\\s+${url}/admin/openapi.json\\n`))
  assert.match(first.output.stdout, new RegExp(`health\\s+${url}/healthz\\n`))
  const token = readFileSync(join(directory, 'admin-token'), 'utf8').trim()
  assert.ok(first.output.stdout.includes(`Admin token (shown once; saved to ${join(directory, 'admin-token')}):\n  ${token}\n`), first.output.stdout)
  assert.equal((await fetch(`${url}/healthz`)).status, 200)

  first.signals.emit('SIGTERM')
  assert.equal(await first.exit, 0)
  assert.equal(first.output.stderr, 'received SIGTERM, stopping…\nstopped\n')
  assert.equal(first.signals.listenerCount('SIGINT') + first.signals.listenerCount('SIGTERM'), 0)

  const second = startInProcess(['--port', '0', '--data-dir', directory])
  await waitForUrl(second.output, second.exit)
  assert.ok(!second.output.stdout.includes(token), 'the token is shown on the first start only')
  assert.match(second.output.stdout, /Admin token: in .*admin-token/)
  second.signals.emit('SIGINT')
  assert.equal(await second.exit, 0)
})

test('a port in use is a clear error with exit 1', async (t) => {
  const directory = await temporaryDirectory(t)
  const blocker = createServer()
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve))
  t.after(() => new Promise((resolve) => blocker.close(resolve)))
  const address = blocker.address()
  const port = typeof address === 'object' && address ? address.port : 0

  const { output, exit } = startInProcess(['--data-dir', directory], { PORT: String(port) })
  assert.equal(await exit, 1)
  assert.equal(output.stdout, '')
  assert.match(output.stderr, new RegExp(`^error port_in_use: port ${port} on 127\\.0\\.0\\.1 is already in use\\nhint: .*--port`))
})
