import assert from 'node:assert/strict'
import { afterEach, beforeEach, test } from 'node:test'
import { isImprunError } from '../errors.ts'
import type { Clock } from '../ports.ts'
import { createControlFixture, type ControlFixture } from '../testing/control-fixture.ts'

let fixture: ControlFixture
let now = Date.parse('2026-01-01T00:00:00Z')
const clock: Clock = { now: () => now }
beforeEach(async () => {
  fixture = await createControlFixture({ clock })
  await fixture.control.gateways.create({ id: 'hometax' })
  await fixture.control.gateways.create({ id: 'other' })
})
afterEach(() => fixture.close())

test('a grant returns its key once; the key works only for its gateway and stage', async () => {
  const { access } = fixture.control
  const application = await access.createApplication({ name: 'mobile' })
  const grant = await access.grant({ application: 'mobile', gatewayId: 'hometax', stage: 'prod' })
  assert.match(grant.apiKey, /^imp_[A-Za-z0-9]{16}_[A-Za-z0-9_-]{43}$/)
  assert.equal(grant.applicationId, application.id)
  const verified = await access.verify(grant.apiKey, 'hometax', 'prod')
  assert.deepEqual(verified, { grantId: grant.id, applicationId: application.id, gatewayId: 'hometax', stage: 'prod' })
  assert.equal(await access.verify(grant.apiKey, 'hometax', 'dev'), null)
  assert.equal(await access.verify(grant.apiKey, 'other', 'prod'), null)
  assert.equal(await access.verify(grant.apiKey.slice(0, -1) + (grant.apiKey.endsWith('A') ? 'B' : 'A'), 'hometax', 'prod'), null)
  assert.equal(await access.verify('garbage', 'hometax', 'prod'), null)
  // imp_<16-character key id>_<secret>: the secret itself may contain _, so cut by position.
  const secret = grant.apiKey.slice('imp_'.length + 16 + 1)
  assert.equal(secret.length, 43)
  const listed = await access.listGrants({ application: 'mobile' })
  assert.equal(listed.length, 1)
  assert.ok(!JSON.stringify(listed).includes(secret), 'the secret is never listed')
  const stored = await fixture.control.store.system().collection('grants').findOne({ _id: grant.id })
  assert.ok(!JSON.stringify(stored).includes(secret), 'the secret is not stored')
})

test('revoke stops the key at once; granting again issues a new key', async () => {
  const { access } = fixture.control
  await access.createApplication({ name: 'mobile' })
  const grant = await access.grant({ application: 'mobile', gatewayId: 'hometax', stage: 'prod' })
  await assert.rejects(access.grant({ application: 'mobile', gatewayId: 'hometax', stage: 'prod' }), (error) => isImprunError(error, 'already_exists'))
  await access.revoke(grant.id)
  assert.equal(await access.verify(grant.apiKey, 'hometax', 'prod'), null)
  await assert.rejects(access.rotate(grant.id), (error) => isImprunError(error, 'invalid_state'))
  const again = await access.grant({ application: 'mobile', gatewayId: 'hometax', stage: 'prod' })
  assert.equal(again.id, grant.id)
  assert.notEqual(again.apiKey, grant.apiKey)
  assert.ok(await access.verify(again.apiKey, 'hometax', 'prod'))
})

test('rotate replaces the key, with an optional grace period for the old one', async () => {
  const { access } = fixture.control
  await access.createApplication({ name: 'mobile' })
  const grant = await access.grant({ application: 'mobile', gatewayId: 'hometax', stage: 'dev' })
  const rotated = await access.rotate(grant.id)
  assert.equal(await access.verify(grant.apiKey, 'hometax', 'dev'), null)
  assert.ok(await access.verify(rotated.apiKey, 'hometax', 'dev'))
  const graceful = await access.rotate(grant.id, { graceSeconds: 60 })
  assert.ok(await access.verify(rotated.apiKey, 'hometax', 'dev'), 'old key still valid during grace')
  assert.ok(await access.verify(graceful.apiKey, 'hometax', 'dev'))
  now += 61_000
  assert.equal(await access.verify(rotated.apiKey, 'hometax', 'dev'), null, 'old key expired after grace')
  assert.ok(await access.verify(graceful.apiKey, 'hometax', 'dev'))
  await assert.rejects(access.rotate(grant.id, { graceSeconds: -1 }), (error) => isImprunError(error, 'bad_request'))
})

test('applications: unique names, lookup by id or name, delete removes grants', async () => {
  const { access } = fixture.control
  const application = await access.createApplication({ name: 'web', description: 'the site' })
  await assert.rejects(access.createApplication({ name: 'web' }), (error) => isImprunError(error, 'already_exists'))
  await assert.rejects(access.createApplication({ name: '' }), (error) => isImprunError(error, 'invalid_name'))
  assert.equal((await access.application(application.id)).name, 'web')
  const grant = await access.grant({ application: application.id, gatewayId: 'hometax', stage: 'dev' })
  await assert.rejects(access.grant({ application: 'web', gatewayId: 'nope', stage: 'dev' }), (error) => isImprunError(error, 'not_found'))
  await assert.rejects(access.grant({ application: 'ghost', gatewayId: 'hometax', stage: 'dev' }), (error) => isImprunError(error, 'not_found'))
  await access.deleteApplication('web')
  assert.equal(await access.verify(grant.apiKey, 'hometax', 'dev'), null)
  assert.deepEqual(await access.listGrants(), [])
})

test('deleting a gateway removes its grants', async () => {
  const { access, gateways } = fixture.control
  await access.createApplication({ name: 'mobile' })
  const grant = await access.grant({ application: 'mobile', gatewayId: 'hometax', stage: 'dev' })
  await gateways.delete('hometax')
  await fixture.settle('hometax')
  assert.equal(await access.verify(grant.apiKey, 'hometax', 'dev'), null)
  assert.deepEqual(await access.listGrants({ gatewayId: 'hometax' }), [])
})

test('verified keys are cached, but a revoke anywhere reaches every service on the store', async () => {
  const { access } = fixture.control
  await access.createApplication({ name: 'cached' })
  const grant = await access.grant({ application: 'cached', gatewayId: 'hometax', stage: 'prod' })
  // A second service on the same store, as another process (CLI, second control plane) has.
  const { AccessService } = await import('./access.ts')
  const elsewhere = new AccessService({ store: fixture.control.store, clock, gateways: fixture.control.gateways })
  assert.ok(await access.identify(grant.apiKey))
  const grants = fixture.control.store.system().collection('grants')
  await grants.updateOne({ _id: grant.id }, { $set: { status: 'revoked' } })
  assert.ok(await access.identify(grant.apiKey), 'a write behind the service is not seen while cached')
  now += 6000
  assert.equal(await access.identify(grant.apiKey), null, 'the cache entry expires within seconds')
  await grants.updateOne({ _id: grant.id }, { $set: { status: 'active' } })
  assert.ok(await access.identify(grant.apiKey))

  // Revoked through this service: at once. Revoked by another one: through the change feed that
  // the started control plane follows.
  await fixture.control.start()
  await access.revoke(grant.id)
  assert.equal(await access.identify(grant.apiKey), null)
  const again = await access.grant({ application: 'cached', gatewayId: 'hometax', stage: 'prod' })
  assert.ok(await access.identify(again.apiKey))
  await elsewhere.revoke(again.id)
  let seen: unknown = 'still cached'
  for (let attempt = 0; attempt < 200 && seen !== null; attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 5))
    seen = await access.identify(again.apiKey)
  }
  assert.equal(seen, null, 'the feed cleared the cache without the clock moving')
})
