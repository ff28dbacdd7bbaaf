import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import { createSqliteStore } from '../adapters/sqlite/sqlite-store.ts'
import { isImprunError } from '../errors.ts'
import { createAesSecretBox } from '../secrets/aes-secret-box.ts'
import { ProviderService } from './providers.ts'

async function setUp(t: TestContext, now = { value: Date.parse('2030-01-02T10:00:00Z') }) {
  const directory = await mkdtemp(join(tmpdir(), 'imprun-providers-'))
  const store = createSqliteStore({ directory })
  t.after(async () => {
    await store.close()
    await rm(directory, { recursive: true, force: true })
  })
  return { store, now, providers: new ProviderService({ store, secretBox: createAesSecretBox(randomBytes(32)), clock: { now: () => now.value } }) }
}

test('provider keys are stored sealed and shown only as a preview', async (t) => {
  const { store, providers } = await setUp(t)
  const created = await providers.createProvider({ id: 'openai', kind: 'openai', apiKey: 'sk-live-1234567890abcd' })
  assert.deepEqual({ set: created.apiKeySet, preview: created.apiKeyPreview, baseUrl: created.baseUrl }, { set: true, preview: 'sk-…abcd', baseUrl: 'https://api.openai.com/v1' })
  assert.ok(!JSON.stringify(created).includes('1234567890'))
  const stored = await store.system().collection('chat_providers').findOne({ _id: 'openai' })
  assert.ok(!JSON.stringify(stored).includes('sk-live-1234567890abcd'), 'the stored record holds no plaintext')
  await providers.setModel('fast', { provider: 'openai', model: 'gpt-4o-mini' })
  const [target] = await providers.resolve('fast')
  assert.equal(target!.provider.apiKey, 'sk-live-1234567890abcd')
  const updated = await providers.updateProvider('openai', { apiKey: null })
  assert.equal(updated.apiKeySet, false)
  assert.equal((await providers.resolve('fast'))[0]!.provider.apiKey, null, 'writes clear the resolve cache')
  await assert.rejects(providers.createProvider({ id: 'openai', kind: 'openai' }), (error: unknown) => isImprunError(error, 'already_exists'))
  await assert.rejects(providers.createProvider({ id: 'Bad_Id', kind: 'openai' }), (error: unknown) => isImprunError(error, 'bad_request') && /id/.test(error.message))
})

test('aliases resolve to their target and fallbacks in order; unknown names list what exists', async (t) => {
  const { providers } = await setUp(t)
  await providers.createProvider({ id: 'openai', kind: 'openai' })
  await providers.createProvider({ id: 'local', kind: 'ollama' })
  await providers.setModel('small', { provider: 'local', model: 'llama3.2:3b' })
  await providers.setModel('smart', { provider: 'openai', model: 'gpt-4o', fallbacks: ['small'] })
  assert.deepEqual((await providers.resolve('smart')).map((target) => `${target.alias}=${target.provider.id}/${target.model}`), ['smart=openai/gpt-4o', 'small=local/llama3.2:3b'])
  assert.deepEqual((await providers.resolve('local/qwen3')).map((target) => target.model), ['qwen3'], 'provider/model addresses a provider directly')
  await assert.rejects(providers.resolve('gpt-9'), (error: unknown) => isImprunError(error, 'not_found') && /available: small, smart/.test(error.message))
  await assert.rejects(providers.setModel('x', { provider: 'openai', model: 'm', fallbacks: ['missing'] }), (error: unknown) => isImprunError(error, 'not_found'))
  await assert.rejects(providers.setModel('smart', { provider: 'openai', model: 'm', fallbacks: ['smart'] }), (error: unknown) => isImprunError(error, 'bad_request'))
  await assert.rejects(providers.deleteProvider('local'), (error: unknown) => isImprunError(error, 'conflict') && /small/.test(error.message))
  await providers.deleteModel('small')
  assert.equal((await providers.resolve('smart')).length, 1, 'a removed fallback is skipped')
  await providers.deleteProvider('local')
  await assert.rejects(providers.getProvider('local'), (error: unknown) => isImprunError(error, 'not_found'))
})

test('usage is summed per application and model across days, filterable', async (t) => {
  const { providers, now } = await setUp(t)
  const entry = { applicationId: 'app_a', gatewayId: 'hometax', stage: 'prod' as const, alias: 'fast', provider: 'openai', model: 'gpt-4o-mini', inputTokens: 10, outputTokens: 3 }
  providers.recordUsage(entry)
  providers.recordUsage(entry)
  now.value += 86_400_000
  providers.recordUsage({ ...entry, inputTokens: 5, outputTokens: 1 })
  providers.recordUsage({ ...entry, applicationId: 'app_b' })
  const all = await providers.usage()
  assert.deepEqual(all.totals, { requests: 4, inputTokens: 35, outputTokens: 10 })
  const a = await providers.usage({ applicationId: 'app_a' })
  assert.deepEqual(a.entries.map((item) => [item.application, item.requests, item.inputTokens, item.outputTokens]), [['app_a', 3, 25, 7]])
  const firstDay = await providers.usage({ applicationId: 'app_a', to: '2030-01-02' })
  assert.equal(firstDay.totals.requests, 2)
})
