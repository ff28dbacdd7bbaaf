import assert from 'node:assert/strict'
import { afterEach, beforeEach, test } from 'node:test'
import { createControlFixture, type ControlFixture } from '../testing/control-fixture.ts'
import { isImprunError } from '../errors.ts'

let fixture: ControlFixture
beforeEach(async () => {
  fixture = await createControlFixture({ leaseMs: 200 })
})
afterEach(() => fixture.close())

test('a failing step is retried with back-off and its error is visible on the record', async () => {
  const { gateways, reconciler } = fixture.control
  fixture.provisioner.failNext('start', 2, 'quota exceeded')
  await gateways.create({ id: 'g' })
  await reconciler.runOnce() // Creating → Created
  await reconciler.runOnce() // Created → Starting
  await reconciler.runOnce() // start fails
  const failing = await gateways.get('g')
  assert.equal(failing.phase, 'Starting')
  assert.equal(failing.lastError?.message, 'quota exceeded')
  assert.equal(failing.lastError?.attempts, 1)
  await fixture.settle('g')
  const started = await gateways.get('g')
  assert.equal(started.phase, 'Started')
  assert.equal(started.lastError, null)
  assert.equal(fixture.provisioner.calls.filter((call) => call.method === 'start').length, 3)
})

test('a claimed record is not claimed again until its lease expires', async () => {
  const { gateways, reconciler } = fixture.control
  await gateways.create({ id: 'g' })
  const claimed = await reconciler.claim()
  assert.equal(claimed?._id, 'g')
  assert.equal(await reconciler.claim(), null, 'leased')
  await new Promise((resolve) => setTimeout(resolve, 250))
  const reclaimed = await reconciler.claim()
  assert.equal(reclaimed?._id, 'g', 'lease expired')
})

test('a worker that lost its lease cannot move the phase', async () => {
  const { gateways, reconciler } = fixture.control
  let release!: () => void
  fixture.provisioner.hang.create = new Promise<void>((resolve) => (release = resolve))
  await gateways.create({ id: 'g' })
  const working = reconciler.runOnce()
  await new Promise((resolve) => setTimeout(resolve, 250))
  // Another worker takes the expired lease and finishes the work.
  fixture.provisioner.hang.create = undefined
  const other = (await import('./gateway-reconciler.ts')).createGatewayReconciler({
    store: fixture.control.store,
    provisioner: fixture.provisioner,
    access: fixture.control.access,
    clock: { now: () => Date.now() },
    leaseMs: 200,
    workerId: 'other',
  })
  assert.equal(await other.runOnce(), true)
  assert.equal((await gateways.get('g')).phase, 'Created')
  release()
  await assert.rejects(working, (error) => isImprunError(error, 'lease_lost'))
  assert.equal((await gateways.get('g')).phase, 'Created')
})

test('the background loop drives a gateway to Started without explicit calls', async () => {
  const { gateways } = fixture.control
  await fixture.control.start()
  await gateways.create({ id: 'auto' })
  for (let i = 0; i < 200 && (await gateways.get('auto')).phase !== 'Started'; i++) await new Promise((resolve) => setTimeout(resolve, 10))
  assert.equal((await gateways.get('auto')).phase, 'Started')
})
