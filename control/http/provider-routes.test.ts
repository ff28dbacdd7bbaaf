/**
 * The provider, model and usage admin routes on the embedded platform, driven through the
 * `imprun provider …` CLI group (which goes through the admin client over loopback HTTP).
 */
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { runCli } from '../cli/cli.ts'
import { startEmbeddedPlatform } from '../platform.ts'
import { TestDoubleCompiler } from '../testing/test-doubles.ts'

test('imprun provider …: add, list, models with fallbacks, update, remove, usage', async (t) => {
  const directory = await mkdtemp(join(tmpdir(), 'imprun-provider-routes-'))
  const platform = await startEmbeddedPlatform({ dataDirectory: directory, port: 0, adminToken: 'provider-token', compiler: new TestDoubleCompiler() })
  t.after(async () => {
    await platform.close()
    await rm(directory, { recursive: true, force: true })
  })
  const env = { IMPRUN_URL: platform.url, IMPRUN_TOKEN: 'provider-token', SECRET_OPENAI: 'sk-proj-abcdefghijklmnop9876' }
  const imprun = async (...argv: string[]) => {
    let stdout = ''
    let stderr = ''
    const code = await runCli(argv, { stdout: { write: (text: string) => (stdout += text) }, stderr: { write: (text: string) => (stderr += text) }, env })
    return { code, stdout, stderr }
  }

  const added = await imprun('provider', 'add', 'openai', 'openai', '--api-key-env', 'SECRET_OPENAI')
  assert.equal(added.code, 0, added.stderr)
  assert.match(added.stdout, /added provider openai \(openai, https:\/\/api\.openai\.com\/v1\), key stored sealed/)
  assert.equal((await imprun('provider', 'add', 'local', 'ollama', '--base-url', 'http://127.0.0.1:11434')).code, 0)
  const listed = await imprun('provider', 'list')
  assert.match(listed.stdout, /openai\s+openai\s+https:\/\/api\.openai\.com\/v1\s+sk-…9876/)
  assert.ok(!listed.stdout.includes('abcdefghijklmnop'))
  const json = await imprun('provider', 'list', '--json')
  assert.ok(!json.stdout.includes('abcdefghijklmnop'))

  assert.equal((await imprun('provider', 'model-set', 'small', 'local', 'llama3.2:3b')).code, 0)
  const set = await imprun('provider', 'model-set', 'fast', 'openai', 'gpt-4o-mini', '--fallback', 'small')
  assert.match(set.stdout, /model fast → openai\/gpt-4o-mini, falling back to small/)
  assert.match((await imprun('provider', 'models')).stdout, /fast\s+openai\s+gpt-4o-mini\s+small/)

  const badKind = await imprun('provider', 'add', 'x', 'cohere')
  assert.equal(badKind.code, 1)
  assert.match(badKind.stderr, /error bad_request: body\.kind: Invalid option/)
  const unknownProvider = await imprun('provider', 'model-set', 'y', 'nope', 'm')
  assert.match(unknownProvider.stderr, /error not_found: provider 'nope' was not found/)
  const inUse = await imprun('provider', 'remove', 'local')
  assert.match(inUse.stderr, /error conflict: provider 'local' is used by model 'small'/)

  const updated = await imprun('provider', 'update', 'openai', '--remove-key', '--timeout-ms', '5000')
  assert.equal(updated.code, 0, updated.stderr)
  const after = await fetch(`${platform.url}/admin/providers/openai`, { headers: { authorization: 'Bearer provider-token' } })
  const provider = (await after.json()) as { apiKeySet: boolean; timeoutMs: number }
  assert.deepEqual([provider.apiKeySet, provider.timeoutMs], [false, 5000])

  assert.match((await imprun('provider', 'usage')).stdout, /no usage recorded/)
  assert.equal((await imprun('provider', 'model-remove', 'fast')).code, 0)
  assert.equal((await imprun('provider', 'model-remove', 'small')).code, 0)
  assert.equal((await imprun('provider', 'remove', 'local')).code, 0)
  assert.doesNotMatch((await imprun('provider', 'list')).stdout, /local/)
  const openapi = await (await fetch(`${platform.url}/admin/openapi.json`)).json() as { paths: Record<string, unknown> }
  assert.ok(openapi.paths['/admin/providers'] && openapi.paths['/admin/usage'], 'documented in the OpenAPI spec')
})
