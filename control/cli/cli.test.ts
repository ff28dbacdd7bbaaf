/**
 * The CLI in-process against a real embedded platform on a loopback port: every command goes
 * through argument parsing, the HTTP client and the admin API, and is judged by what it prints
 * and its exit code.
 */
import assert from 'node:assert/strict'
import { mkdirSync, writeFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import { startEmbeddedPlatform, type EmbeddedPlatform } from '../platform.ts'
import { TestDoubleCompiler } from '../testing/test-doubles.ts'
import { runCli } from './cli.ts'

interface Run {
  code: number
  stdout: string
  stderr: string
}

interface Setup {
  platform: EmbeddedPlatform
  directory: string
  /** Runs `imprun …` against the platform, the token read from its data directory. */
  imprun(...argv: string[]): Promise<Run>
}

async function setUp(t: TestContext): Promise<Setup> {
  const directory = await mkdtemp(join(tmpdir(), 'imprun-cli-'))
  const platform = await startEmbeddedPlatform({
    dataDirectory: directory,
    port: 0,
    compiler: new TestDoubleCompiler(),
    reconciler: { idlePollMs: 20 },
  })
  t.after(async () => {
    await platform.close()
    await rm(directory, { recursive: true, force: true })
  })
  const env = { IMPRUN_URL: platform.url, IMPRUN_DATA_DIR: directory }
  return { platform, directory, imprun: (...argv) => run(argv, env) }
}

async function run(argv: string[], env: Record<string, string | undefined>): Promise<Run> {
  let stdout = ''
  let stderr = ''
  const code = await runCli(argv, {
    stdout: { write: (text: string) => (stdout += text) },
    stderr: { write: (text: string) => (stderr += text) },
    env,
  })
  return { code, stdout, stderr }
}

function succeeded(result: Run): Run {
  assert.equal(result.code, 0, `exit ${result.code}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`)
  assert.equal(result.stderr, '')
  return result
}

test('gateway create --wait reaches Started; stop, start and delete settle with --wait', async (t) => {
  const { imprun } = await setUp(t)
  const created = succeeded(await imprun('gateway', 'create', 'hometax', '--description', 'Income tax', '--wait', '--timeout', '20'))
  assert.match(created.stdout, /gateway hometax created and Started \(dev, staging, prod\)/)

  const listed = succeeded(await imprun('gateway', 'list'))
  assert.match(listed.stdout, /^ID\s+PHASE\s+STATE\s+PIPELINE\s+DESCRIPTION$/m)
  assert.match(listed.stdout, /^hometax\s+Started\s+Running\s+on\s+Income tax$/m)

  const json = JSON.parse(succeeded(await imprun('gateway', 'get', 'hometax', '--json')).stdout)
  assert.equal(json.phase, 'Started')
  assert.deepEqual(json.environments.map((environment: { stage: string }) => environment.stage), ['dev', 'staging', 'prod'])

  assert.match(succeeded(await imprun('gateway', 'stop', 'hometax', '--wait')).stdout, /gateway hometax is Stopped/)
  assert.match(succeeded(await imprun('gateway', 'start', 'hometax', '--wait')).stdout, /gateway hometax is Started/)
  assert.match(succeeded(await imprun('gateway', 'delete', 'hometax', '--wait')).stdout, /gateway hometax is Deleted/)
  assert.match(succeeded(await imprun('gateway', 'list')).stdout, /no gateways/)
})

test('a function is written, published, promoted, rolled back, and shows up in history', async (t) => {
  const { imprun, directory } = await setUp(t)
  succeeded(await imprun('gateway', 'create', 'hometax', '--wait'))
  const file = join(directory, 'calc.ts')
  writeFileSync(file, '// description: tax v1\nexport default () => 1\n')

  // A name with a slash travels as one URL-encoded path parameter.
  assert.match(succeeded(await imprun('function', 'write', 'hometax', 'tax/calc', file)).stdout, /wrote tax\/calc on hometax \(1 file\)/)
  assert.match(succeeded(await imprun('function', 'publish', 'hometax', 'tax/calc', '--message', 'first')).stdout, /published tax\/calc v1 \(new\) to dev/)
  assert.match(succeeded(await imprun('function', 'promote', 'hometax', 'tax/calc', '--from', 'dev')).stdout, /promoted tax\/calc v1 from dev to staging/)

  writeFileSync(file, '// description: tax v2\nexport default () => 2\n')
  succeeded(await imprun('function', 'write', 'hometax', 'tax/calc', file))
  assert.match(succeeded(await imprun('function', 'publish', 'hometax', 'tax/calc')).stdout, /published tax\/calc v2 \(new\) to dev \(was v1\)/)
  succeeded(await imprun('function', 'promote', 'hometax', 'tax/calc', '--from', 'dev', '--to', 'staging'))
  assert.match(succeeded(await imprun('function', 'rollback', 'hometax', 'tax/calc', '--stage', 'staging')).stdout, /staging now runs tax\/calc v1 \(was v2\)/)

  const listed = succeeded(await imprun('function', 'list', 'hometax')).stdout
  assert.match(listed, /^tax\/calc\s+v2\s+v2\s+v1\s+-\s/m)
  const versions = succeeded(await imprun('function', 'versions', 'hometax', 'tax/calc')).stdout
  assert.match(versions, /^v2\s+dev\s.*tax v2/m)
  assert.match(versions, /^v1\s+staging\s.*tax v1\s+first$/m)

  const history = succeeded(await imprun('function', 'history', 'hometax')).stdout.trim().split('\n')
  assert.equal(history.length, 1 + 5, history.join('\n'))
  assert.match(history[1]!, /tax\/calc\s+staging\s+rollback\s+v2 → v1$/)
  assert.match(history[5]!, /tax\/calc\s+dev\s+publish\s+- → v1$/)
  const stagingOnly = JSON.parse(succeeded(await imprun('function', 'history', 'hometax', '--stage', 'staging', '--json')).stdout)
  assert.deepEqual(stagingOnly.history.map((entry: { action: string }) => entry.action), ['rollback', 'promote', 'promote'])

  assert.match(succeeded(await imprun('function', 'undeploy', 'hometax', 'tax/calc', '--stage', 'staging')).stdout, /undeployed tax\/calc from staging \(was v1\)/)
  assert.match(succeeded(await imprun('function', 'delete', 'hometax', 'tax/calc')).stdout, /deleted tax\/calc from hometax \(undeployed from dev\)/)
})

test('function write sends a directory as relative files; get shows the draft', async (t) => {
  const { imprun, directory } = await setUp(t)
  succeeded(await imprun('gateway', 'create', 'shop', '--no-pipeline', '--wait'))
  const source = join(directory, 'cart')
  mkdirSync(join(source, 'lib'), { recursive: true })
  mkdirSync(join(source, 'node_modules', 'left-pad'), { recursive: true })
  writeFileSync(join(source, 'index.ts'), "// description: cart\nimport { total } from './lib/total.ts'\nexport default () => total\n")
  writeFileSync(join(source, 'lib', 'total.ts'), 'export const total = 3\n')
  writeFileSync(join(source, 'prices.json'), '{"apple": 1}\n')
  writeFileSync(join(source, 'README.md'), 'not source\n')
  writeFileSync(join(source, 'node_modules', 'left-pad', 'index.ts'), 'export {}\n')

  assert.match(succeeded(await imprun('function', 'write', 'shop', 'cart', source)).stdout, /wrote cart on shop \(3 files\)/)
  const detail = JSON.parse(succeeded(await imprun('function', 'get', 'shop', 'cart', '--json')).stdout)
  assert.deepEqual(Object.keys(detail.files).sort(), ['index.ts', 'lib/total.ts', 'prices.json'])
  assert.equal(succeeded(await imprun('function', 'get', 'shop', 'cart', '--source')).stdout, "// description: cart\nimport { total } from './lib/total.ts'\nexport default () => total\n")
  assert.match(succeeded(await imprun('function', 'get', 'shop', 'cart')).stdout, /^draft\s+never published$/m)

  // Without the pipeline any stage can be published to directly.
  assert.match(succeeded(await imprun('function', 'publish', 'shop', 'cart', '--stage', 'prod')).stdout, /published cart v1 \(new\) to prod/)
  assert.match(succeeded(await imprun('env', 'functions', 'shop', 'prod')).stdout, /^cart\s+v1\s+none\s+cart$/m)

  const missing = await imprun('function', 'write', 'shop', 'cart', join(directory, 'nope.ts'))
  assert.equal(missing.code, 1)
  assert.match(missing.stderr, /^error file_not_found: cannot read .*nope\.ts: ENOENT/)
})

test('a compile failure is reported with its code and location', async (t) => {
  const { imprun, directory } = await setUp(t)
  succeeded(await imprun('gateway', 'create', 'hometax', '--wait'))
  const file = join(directory, 'broken.ts')
  writeFileSync(file, 'export default () => 1\nSYNTAX ERROR\n')
  succeeded(await imprun('function', 'write', 'hometax', 'broken', file))
  const result = await imprun('function', 'publish', 'hometax', 'broken')
  assert.equal(result.code, 1)
  assert.equal(result.stderr, 'error compile_failed: index.ts:2:1: syntax error\n')
})

test('plugins are set at gateway, environment and function level from inline JSON or @file', async (t) => {
  const { imprun, directory } = await setUp(t)
  succeeded(await imprun('gateway', 'create', 'hometax', '--wait'))
  const limit = JSON.stringify({ 'limit-count': { count: 10, time_window: 60 } })

  assert.match(succeeded(await imprun('gateway', 'plugins', 'hometax', '{"cors":{}}')).stdout, /gateway hometax plugins: cors/)
  const file = join(directory, 'prod-plugins.json')
  writeFileSync(file, JSON.stringify({ plugins: JSON.parse(limit) }))
  assert.match(succeeded(await imprun('env', 'plugins', 'hometax', 'prod', `@${file}`)).stdout, /hometax\/prod plugins: limit-count/)
  const environment = JSON.parse(succeeded(await imprun('env', 'get', 'hometax', 'prod', '--json')).stdout)
  assert.equal(environment.plugins['limit-count'].count, 10)

  const source = join(directory, 'calc.ts')
  writeFileSync(source, 'export default () => 1\n')
  succeeded(await imprun('function', 'write', 'hometax', 'calc', source))
  assert.match(succeeded(await imprun('function', 'plugins', 'hometax', 'calc', limit)).stdout, /calc plugins: limit-count/)

  // --merge sets only the named plugins (null removes one) and keeps the rest.
  assert.match(succeeded(await imprun('env', 'plugins', 'hometax', 'prod', '{"key-auth":{}}', '--merge')).stdout, /hometax\/prod plugins: (key-auth, limit-count|limit-count, key-auth)/)
  assert.match(succeeded(await imprun('env', 'plugins', 'hometax', 'prod', '{"limit-count":null}', '--merge')).stdout, /hometax\/prod plugins: key-auth$/m)
  assert.match(succeeded(await imprun('function', 'plugins', 'hometax', 'calc', '{"cors":{}}', '--merge')).stdout, /calc plugins: (cors, limit-count|limit-count, cors)/)
  assert.match(succeeded(await imprun('gateway', 'plugins', 'hometax', '{"ip-restriction":{"whitelist":["127.0.0.1"]}}', '--merge')).stdout, /gateway hometax plugins: (cors, ip-restriction|ip-restriction, cors)/)

  const invalid = await imprun('env', 'plugins', 'hometax', 'prod', '{"limit-count":{"count":"many"}}')
  assert.equal(invalid.code, 1)
  assert.match(invalid.stderr, /^error invalid_plugin_config: /)
  const notJson = await imprun('env', 'plugins', 'hometax', 'prod', '{cors}')
  assert.equal(notJson.code, 2)
  assert.match(notJson.stderr, /^error usage: the plugin configs is not valid JSON/)
})

test('an application gets a grant whose key is printed once; rotate, revoke and delete', async (t) => {
  const { imprun } = await setUp(t)
  succeeded(await imprun('gateway', 'create', 'hometax', '--wait'))
  assert.match(succeeded(await imprun('app', 'create', 'mobile', '--description', 'iOS app')).stdout, /created application mobile \(app_/)
  assert.match(succeeded(await imprun('app', 'list')).stdout, /^mobile\s+app_\S+\s+.*iOS app$/m)

  const granted = succeeded(await imprun('grant', 'create', 'mobile', 'hometax', 'prod')).stdout
  assert.match(granted, /granted mobile access to hometax\/prod \(grant grt_/)
  assert.match(granted, /shown once/)
  const key = /^\s+(imp_\S+)$/m.exec(granted)?.[1]
  assert.ok(key?.startsWith('imp_'), granted)
  const grantId = /\(grant (grt_\w+)\)/.exec(granted)?.[1]
  assert.ok(grantId)

  const listed = succeeded(await imprun('grant', 'list', '--app', 'mobile')).stdout
  assert.match(listed, new RegExp(`^${grantId}\\s+mobile\\s+hometax/prod\\s+active\\s`, 'm'))
  assert.ok(!listed.includes(key!), 'the key is never listed')

  const rotated = succeeded(await imprun('grant', 'rotate', grantId!, '--grace-seconds', '30')).stdout
  assert.match(rotated, /the old key keeps working for 30 s/)
  const newKey = /^\s+(imp_\S+)$/m.exec(rotated)?.[1]
  assert.ok(newKey && newKey !== key)

  assert.match(succeeded(await imprun('grant', 'revoke', grantId!)).stdout, /revoked grant grt_\w+ \(hometax\/prod\)/)
  assert.equal(JSON.parse(succeeded(await imprun('grant', 'list', '--gateway', 'hometax', '--json')).stdout).grants[0].status, 'revoked')
  assert.match(succeeded(await imprun('app', 'delete', 'mobile')).stdout, /deleted application mobile and its grants/)
  assert.match(succeeded(await imprun('grant', 'list')).stdout, /no grants/)
})

test('API errors print their code and exit 1', async (t) => {
  const { imprun } = await setUp(t)
  const unknown = await imprun('gateway', 'get', 'nowhere')
  assert.equal(unknown.code, 1)
  assert.equal(unknown.stdout, '')
  assert.equal(unknown.stderr, "error not_found: gateway 'nowhere' was not found\n")

  const functionOfUnknown = await imprun('function', 'list', 'nowhere')
  assert.equal(functionOfUnknown.code, 1)
  assert.match(functionOfUnknown.stderr, /^error not_found: /)

  const badId = await imprun('gateway', 'create', 'Not_A_Label')
  assert.equal(badId.code, 1)
  assert.match(badId.stderr, /^error (bad_request|invalid_name): /)
})

test('without a token the server answers unauthorized and the hint says where a token was looked for', async (t) => {
  const { platform } = await setUp(t)
  const empty = await mkdtemp(join(tmpdir(), 'imprun-cli-empty-'))
  t.after(() => rm(empty, { recursive: true, force: true }))

  const missing = await run(['gateway', 'list', '--url', platform.url, '--data-dir', empty], {})
  assert.equal(missing.code, 1)
  assert.match(missing.stderr, /^error unauthorized: /)
  assert.ok(missing.stderr.includes(`looked for ${join(empty, 'admin-token')}`), missing.stderr)

  const wrong = await run(['gateway', 'list'], { IMPRUN_URL: platform.url, IMPRUN_TOKEN: 'imp_admin_wrong' })
  assert.equal(wrong.code, 1)
  assert.match(wrong.stderr, /^error unauthorized: [^\n]*\nhint: the token in IMPRUN_TOKEN was refused\n$/)

  const byFlag = await run(['gateway', 'list', '--url', platform.url, '--token', platform.createdAdminToken!, '--data-dir', empty], {})
  succeeded(byFlag)
})

test('a server that is not running is named, with a hint to start one', async () => {
  const port = await freePort()
  const result = await run(['gateway', 'list', '--url', `http://127.0.0.1:${port}`], { IMPRUN_TOKEN: 'x' })
  assert.equal(result.code, 1)
  assert.ok(result.stderr.startsWith(`error unreachable: cannot connect to http://127.0.0.1:${port}: connection refused\n`), result.stderr)
  assert.match(result.stderr, /imprun start/)
})

test('usage mistakes exit 2 with usage on stderr; help exits 0 with usage on stdout', async () => {
  const env = { IMPRUN_URL: 'http://127.0.0.1:9', IMPRUN_TOKEN: 'x' }
  const cases: Array<[string[], RegExp]> = [
    [[], /^error usage: missing command\n\nimprun — /],
    [['frobnicate'], /^error usage: unknown command 'frobnicate'\n[\s\S]*Usage: imprun <command>/],
    [['gateway'], /^error usage: missing gateway command\n[\s\S]*Usage: imprun gateway <command>/],
    [['gateway', 'explode'], /^error usage: unknown gateway command 'explode'/],
    [['gateway', 'create'], /^error usage: missing <id>\n[\s\S]*Usage: imprun gateway create <id>/],
    [['gateway', 'get', 'a', 'b'], /^error usage: unexpected argument 'b'/],
    [['gateway', 'list', '--colour'], /^error usage: Unknown option '--colour'/],
    [['gateway', 'create', 'x', '--wait', '--timeout', 'soon'], /^error usage: --timeout must be an integer/],
    [['function', 'promote', 'gw', 'fn'], /^error usage: --from is required\n[\s\S]*Usage: imprun function promote/],
    [['function', 'rollback', 'gw', 'fn', '--stage', 'prod', '--version', '0'], /^error usage: --version must be an integer from 1/],
    [['grant', 'rotate', 'g', '--grace-seconds=-1'], /^error usage: --grace-seconds must be an integer from 0 to 86400/],
    [['gateway', 'list', '--url', 'not a url'], /^error usage: --url 'not a url' is not a URL/],
    [['start', '--port', '70000'], /^error usage: the port must be an integer from 0 to 65535/],
  ]
  for (const [argv, pattern] of cases) {
    const result = await run(argv, env)
    assert.equal(result.code, 2, `imprun ${argv.join(' ')}: exit ${result.code}\n${result.stderr}`)
    assert.equal(result.stdout, '', `imprun ${argv.join(' ')}`)
    assert.match(result.stderr, pattern, `imprun ${argv.join(' ')}`)
  }

  const helps: Array<[string[], RegExp]> = [
    [['help'], /^imprun — [\s\S]*Commands:\n\s+start /],
    [['--help'], /^imprun — /],
    [['help', 'gateway'], /^Usage: imprun gateway <command> \[options\][\s\S]*create <id>/],
    [['gateway', '--help'], /^Usage: imprun gateway <command>/],
    [['help', 'function', 'promote'], /^Usage: imprun function promote <gateway> <name> \[options\][\s\S]*--from STAGE/],
    [['grant', 'create', '--help'], /^Usage: imprun grant create <app> <gateway> <stage>/],
    [['help', 'start'], /^Usage: imprun start \[options\][\s\S]*--data-dir DIR/],
    [['env', 'plugins', '-h'], /^Usage: imprun env plugins <gateway> <stage> <json-or-@file>/],
    [['version'], /^imprun \d+\.\d+\.\d+\n$/],
  ]
  for (const [argv, pattern] of helps) {
    const result = await run(argv, env)
    assert.equal(result.code, 0, `imprun ${argv.join(' ')}: exit ${result.code}\n${result.stderr}`)
    assert.match(result.stdout, pattern, `imprun ${argv.join(' ')}`)
  }
})

async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  await new Promise((resolve) => server.close(resolve))
  return typeof address === 'object' && address ? address.port : 0
}
