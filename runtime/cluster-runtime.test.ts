import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { storeFromUrl } from '../control/adapters/store-from-url.ts'
import { createControlPlane } from '../control/control-plane.ts'
import type { Store } from '../control/ports.ts'
import { createAesSecretBox } from '../control/secrets/aes-secret-box.ts'
import { TestDoubleProvisioner } from '../control/testing/test-doubles.ts'
import { createDefaultCompiler } from './compile/index.ts'
import { runtimeLayerPlugins, startClusterRuntime } from './cluster-runtime.ts'
import { dropMongoDatabases } from '../control/adapters/mongodb/testing/drop-databases.ts'

const source = (rate: number) => `import { z } from 'zod'
export const description = 'tax'
export const input = z.object({ income: z.number() })
export default async function (ctx) { return { tax: ctx.input.income * ${rate} } }
`

async function scenario(store: Store): Promise<void> {
  const secretBox = createAesSecretBox(randomBytes(32))
  const control = createControlPlane({ store, provisioner: new TestDoubleProvisioner(), compiler: createDefaultCompiler(), secretBox, reconciler: { backoffBaseMs: 1, readinessPollMs: 1 } })
  await control.access.ensureIndexes()
  await control.gateways.create({ id: 'hometax' })
  await control.reconciler.drain()
  await control.functions.write('hometax', 'calc', { files: { 'index.ts': source(0.1) } })
  await control.functions.publish('hometax', 'calc')
  const dev = await startClusterRuntime({ store, secretBox, gatewayId: 'hometax', stage: 'dev', port: 0, host: '127.0.0.1' })
  const prod = await startClusterRuntime({ store, secretBox, gatewayId: 'hometax', stage: 'prod', port: 0, host: '127.0.0.1' })
  try {
    assert.equal((await fetch(`${dev.url}/healthz`)).status, 200)
    assert.equal((await fetch(`${dev.url}/readyz`)).status, 200)
    const call = (url: string, path: string, headers: Record<string, string> = {}) =>
      fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ income: 100 }) })

    // APISIX forwards /<stage>/<function>; the runtime serves its own stage only.
    const first = await call(dev.url, '/dev/calc')
    assert.equal(first.status, 200)
    assert.deepEqual(await first.json(), { tax: 10 })
    assert.equal((await call(dev.url, '/prod/calc')).status, 503)
    assert.equal((await call(dev.url, '/nostage/calc')).status, 404)

    // Hot reload through the store's change feed.
    await control.functions.write('hometax', 'calc', { files: { 'index.ts': source(0.2) } })
    await control.functions.publish('hometax', 'calc')
    const deadline = Date.now() + 10_000
    for (;;) {
      const body = (await (await call(dev.url, '/dev/calc')).json()) as { tax: number }
      if (body.tax === 20) break
      assert.ok(Date.now() < deadline, 'the new version was not picked up')
      await new Promise((resolve) => setTimeout(resolve, 20))
    }

    // prod carries key-auth (set when the gateway is created): the key must be a grant for
    // THIS gateway and stage, whatever APISIX let through.
    await control.functions.promote('hometax', 'calc', { from: 'dev' })
    await control.functions.promote('hometax', 'calc', { from: 'staging' })
    const application = await control.access.createApplication({ name: 'mobile' })
    const devKey = await control.access.grant({ application: application.id, gatewayId: 'hometax', stage: 'dev' })
    const prodKey = await control.access.grant({ application: application.id, gatewayId: 'hometax', stage: 'prod' })
    const waitForProd = Date.now() + 10_000
    while ((await call(prod.url, '/prod/calc', { apikey: prodKey.apiKey })).status !== 200) {
      assert.ok(Date.now() < waitForProd, 'prod never served calc')
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    assert.equal((await call(prod.url, '/prod/calc')).status, 401)
    assert.equal((await call(prod.url, '/prod/calc', { apikey: devKey.apiKey })).status, 401)
  } finally {
    await dev.close()
    await prod.close()
    await control.stop()
  }
}

describe('cluster runtime', () => {
  test('serves one stage at /<stage>/<function>, probes, hot reload, key bound to its gateway and stage (SQLite store)', async () => {
    const directory = mkdtempSync(join(tmpdir(), 'imprun-cluster-runtime-'))
    const store = storeFromUrl(`sqlite:${directory}`)
    try {
      await scenario(store)
    } finally {
      await store.close()
      rmSync(directory, { recursive: true, force: true })
    }
  })

  const url = process.env.MONGODB_URL
  test('the same on MongoDB (change streams)', { skip: url ? false : 'MONGODB_URL is not set' }, async () => {
    const databasePrefix = `t${randomBytes(6).toString('hex')}`
    const store = storeFromUrl(url!, { databasePrefix })
    try {
      await scenario(store)
    } finally {
      await store.close()
      await dropMongoDatabases(url!, databasePrefix)
    }
  })

  test('the runtime layer keeps key-auth and what a function changed, drops what the edge already ran', () => {
    const stage = { cors: { allow_origins: '*' }, 'key-auth': { header: 'apikey' }, 'limit-count': { count: 10, time_window: 60 } }
    const effective = { cors: { allow_origins: '*' }, 'key-auth': { header: 'apikey' }, 'limit-count': { count: 2, time_window: 60 }, 'ip-restriction': { whitelist: ['10.0.0.1'] } }
    assert.deepEqual(Object.keys(runtimeLayerPlugins(effective, stage)).sort(), ['ip-restriction', 'key-auth', 'limit-count'])
  })
})
