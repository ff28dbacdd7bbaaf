/**
 * Races at the API level on a real platform: parallel publishes of one function, promote racing
 * rollback, many grants at once. Whatever interleaving happens, every answer is a success or a
 * coded 4xx, and versions, deployments and the history stay one consistent total order.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { useTestPlatform } from './support/test-platform.ts'

const token = 'race-token'
const { admin, call } = useTestPlatform({ token, gateways: [{ id: 'race', pipeline: false }] })


async function consistent(name: string): Promise<void> {
  const versions = (await admin('GET', `/admin/gateways/race/functions/${name}/versions`)).body.versions as Array<{ number: number }>
  const numbers = versions.map((version) => version.number).sort((a, b) => a - b)
  numbers.forEach((number, index) => assert.equal(number, index + 1, `${name}: versions without gaps or duplicates`))
  const history = (await admin('GET', `/admin/gateways/race/history?function=${encodeURIComponent(name)}&limit=1000`)).body.history as Array<{ seq: number; stage: string; toVersion: number | null; fromVersion: number | null }>
  const seqs = history.map((entry) => entry.seq)
  assert.equal(new Set(seqs).size, seqs.length, 'history seq unique')
  for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i - 1]! > seqs[i]!, 'history strictly ordered')
  const detail = (await admin('GET', `/admin/gateways/race/functions/${encodeURIComponent(name)}`)).body as { deployed: Record<string, number | undefined> }
  for (const stage of ['dev', 'staging', 'prod']) {
    const entries = history.filter((entry) => entry.stage === stage).reverse()
    // Replaying the history of a stage gives its deployment: each entry starts where the last ended.
    let live: number | null = null
    for (const entry of entries) {
      assert.equal(entry.fromVersion, live, `${name} ${stage}: entry ${entry.seq} starts where the previous ended`)
      live = entry.toVersion
    }
    assert.equal(detail.deployed[stage] ?? null, live, `${name} ${stage}: deployment = replayed history`)
  }
}

test('parallel publishes of one function: one version per distinct source, one history', async () => {
  const results = await Promise.all(
    Array.from({ length: 12 }, async (_, n) => {
      const source = `export default () => ({ n: ${n % 4} })`
      const written = await admin('PUT', '/admin/gateways/race/functions/hot', { source })
      const published = await admin('POST', '/admin/gateways/race/functions/hot/publish', {})
      return [written.status, published.status, published.body?.error?.code]
    }),
  )
  for (const [written, published, code] of results) {
    assert.equal(written, 200)
    assert.ok(published === 200 || (published === 409 && code === 'conflict'), `publish → ${published} ${code}`)
  }
  await consistent('hot')
  const served = await call('/race/dev/hot')
  assert.equal(served.status, 200)
})

test('promote racing rollback on the same stage keeps deployments and history in step', async () => {
  for (let n = 1; n <= 3; n++) {
    await admin('PUT', '/admin/gateways/race/functions/flip', { source: `export default () => ${n}` })
    await admin('POST', '/admin/gateways/race/functions/flip/publish', {})
    await admin('POST', '/admin/gateways/race/functions/flip/promote', { from: 'dev' })
  }
  const outcomes = await Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      i % 2 === 0
        ? admin('POST', '/admin/gateways/race/functions/flip/promote', { from: 'dev' })
        : admin('POST', '/admin/gateways/race/functions/flip/rollback', { stage: 'staging', version: 1 + (i % 3) }),
    ),
  )
  for (const outcome of outcomes) assert.ok(outcome.status === 200 || (outcome.status === 409 && outcome.body.error.code === 'conflict'), `${outcome.status} ${JSON.stringify(outcome.body)}`)
  await consistent('flip')
})

test('many grants at once: each application gets exactly one, every key works only there', async () => {
  const names = Array.from({ length: 25 }, (_, n) => `client-${n}`)
  await Promise.all(names.map((name) => admin('POST', '/admin/applications', { name })))
  // Each application asks twice at once: one grant wins, the other is a conflict.
  const grants = await Promise.all(names.flatMap((name) => [0, 1].map(() => admin('POST', '/admin/grants', { application: name, gateway: 'race', stage: 'prod' }))))
  const created = grants.filter((grant) => grant.status === 201)
  assert.equal(created.length, names.length, `one grant per application: ${grants.map((grant) => grant.status).join(',')}`)
  for (const refused of grants.filter((grant) => grant.status !== 201)) assert.equal(refused.body.error.code, 'already_exists')
  const keys = new Set(created.map((grant) => grant.body.apiKey as string))
  assert.equal(keys.size, names.length, 'every key distinct')
  await admin('PUT', '/admin/gateways/race/functions/who', { source: 'export default () => "ok"' })
  await admin('POST', '/admin/gateways/race/functions/who/publish', {})
  await admin('POST', '/admin/gateways/race/functions/who/promote', { from: 'dev', to: 'prod' })
  const statuses = await Promise.all([...keys].map((key) => call('/race/prod/who', { headers: { apikey: key } }).then((response) => response.status)))
  assert.deepEqual([...new Set(statuses)], [200])
  const listed = (await admin('GET', '/admin/grants?gateway=race')).body.grants as unknown[]
  assert.equal(listed.length, names.length)
})
