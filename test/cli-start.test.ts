/**
 * `imprun start` as a real process, the way `npm start` runs it: it prints its actual URL (port 0
 * lets the OS pick), the admin token on the first start only, serves /healthz, answers the CLI
 * run as another process, and exits cleanly on SIGTERM.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { cleanEnvironment, imprunBin as bin, startImprunServer } from './support/imprun-process.ts'

const root = fileURLToPath(new URL('..', import.meta.url))
const compilerEntry = join(root, 'runtime', 'compile', 'index.ts')
const skip = existsSync(compilerEntry) ? false : 'runtime/compile/index.ts (createDefaultCompiler) does not exist yet'

async function imprun(argv: string[], environment: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [bin, ...argv], { env: cleanEnvironment(environment), stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  await once(child, 'close')
  return { code: child.exitCode, stdout, stderr }
}

test('imprun start: token on first start only, /healthz, CLI from another process, clean SIGTERM', { skip, timeout: 120_000 }, async (t) => {
  const dataDirectory = await mkdtemp(join(tmpdir(), 'imprun-cli-start-'))
  t.after(() => rm(dataDirectory, { recursive: true, force: true }))

  const first = await startImprunServer(dataDirectory)
  t.after(() => first.child.kill('SIGKILL'))
  assert.match(first.url, /^http:\/\/127\.0\.0\.1:\d+$/)
  const tokenFile = join(dataDirectory, 'admin-token')
  const token = readFileSync(tokenFile, 'utf8').trim()
  assert.match(token, /^imp_admin_/)
  assert.ok(first.stdout().includes(`Admin token (shown once; saved to ${tokenFile}):\n  ${token}\n`), first.stdout())
  assert.equal((await fetch(`${first.url}/healthz`)).status, 200)

  // The CLI as its own process finds the server by URL and the token in the data directory.
  const connection = { IMPRUN_URL: first.url, IMPRUN_DATA_DIR: dataDirectory }
  const created = await imprun(['gateway', 'create', 'demo', '--wait'], connection)
  assert.equal(created.code, 0, created.stderr)
  assert.match(created.stdout, /gateway demo created and Started/)
  const source = join(dataDirectory, 'hello.ts')
  writeFileSync(source, "export const description = 'Says hello'\nexport default async function () {\n  return { hello: 'world' }\n}\n")
  assert.equal((await imprun(['function', 'write', 'demo', 'hello', source], connection)).code, 0)
  const published = await imprun(['function', 'publish', 'demo', 'hello'], connection)
  assert.equal(published.code, 0, published.stderr)
  assert.match(published.stdout, /published hello v1 \(new\) to dev/)
  assert.match((await imprun(['env', 'functions', 'demo', 'dev'], connection)).stdout, /^hello\s+v1\s+none\s+Says hello$/m)

  assert.equal(await first.stop(), 0, first.stderr())
  assert.match(first.stderr(), /received SIGTERM, stopping…\nstopped\n$/)

  const second = await startImprunServer(dataDirectory)
  t.after(() => second.child.kill('SIGKILL'))
  assert.ok(!second.stdout().includes(token), 'the token is shown on the first start only')
  assert.ok(!/imp_admin_/.test(second.stdout()), second.stdout())
  assert.ok(second.stdout().includes(`Admin token: in ${tokenFile}`), second.stdout())
  assert.equal((await fetch(`${second.url}/healthz`)).status, 200)
  const listed = await imprun(['function', 'list', 'demo'], { IMPRUN_URL: second.url, IMPRUN_DATA_DIR: dataDirectory })
  assert.match(listed.stdout, /^hello\s+v1\s+v1\s/m, 'data survives the restart')
  assert.equal(await second.stop(), 0, second.stderr())
})
