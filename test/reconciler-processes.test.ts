/**
 * The gateway reconciler across real processes sharing one SQLite store: a reconciler in another
 * process does the work, a killed one's lease expires and the next one finishes, two never work
 * the same gateway at once; and (in-process) a failing step is retried with its error on the record.
 *
 * The test process creates gateways through its own control plane, whose reconciler it never
 * starts; the reconcilers run in `fixtures/reconciler-process.ts`.
 */
import { randomBytes } from 'node:crypto'
import { createAesSecretBox } from '../control/secrets/aes-secret-box.ts'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import { createSqliteStore } from '../control/adapters/sqlite/sqlite-store.ts'
import { createControlPlane, type ControlPlane, type ControlPlaneOptions } from '../control/control-plane.ts'
import type { GatewayRecord } from '../control/domain/gateways.ts'
import { TestDoubleCompiler, TestDoubleProvisioner } from '../control/testing/test-doubles.ts'
import { pollUntil, startFixture, type FixtureProcess } from './support/fixture-process.ts'

interface Setup {
  /** The store folder, shared with the children. */
  directory: string
  /** The JSONL file the children's provisioners log their steps to. */
  stepLog: string
  controlPlane: ControlPlane
}

async function setUp(t: TestContext, options: Partial<ControlPlaneOptions> = {}): Promise<Setup> {
  const root = await mkdtemp(join(tmpdir(), 'imprun-reconciler-'))
  const directory = join(root, 'store')
  const store = createSqliteStore({ directory })
  const controlPlane = createControlPlane({
    secretBox: createAesSecretBox(randomBytes(32)),
    store,
    provisioner: new TestDoubleProvisioner(),
    compiler: new TestDoubleCompiler(),
    ...options,
  })
  t.after(async () => {
    await controlPlane.stop()
    await store.close()
    await rm(root, { recursive: true, force: true })
  })
  return { directory, stepLog: join(root, 'steps.jsonl'), controlPlane }
}

async function startReconciler(
  t: TestContext,
  setup: Setup,
  environment: Record<string, string> = {},
): Promise<{ process: FixtureProcess; workerId: string }> {
  const child = startFixture('reconciler-process', {
    environment: { IMPRUN_TEST_DIRECTORY: setup.directory, IMPRUN_TEST_STEP_LOG: setup.stepLog, ...environment },
  })
  t.after(() => child.kill())
  const workerId = await child.waitFor('ready', (message) => (message.ready ? (message.workerId as string) : undefined), 15_000)
  return { process: child, workerId }
}

interface Step {
  gatewayId: string
  workerId: string
  method: 'create' | 'start'
  phase: 'enter' | 'exit'
  t: number
}

function readSteps(stepLog: string): Step[] {
  let text: string
  try {
    text = readFileSync(stepLog, 'utf8')
  } catch {
    return []
  }
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Step)
}

function waitForPhase(controlPlane: ControlPlane, id: string, phase: string, timeoutMs: number): Promise<GatewayRecord> {
  return pollUntil(
    `gateway ${id} to reach ${phase}`,
    async () => {
      const record = await controlPlane.gateways.record(id)
      return record.phase === phase ? record : undefined
    },
    timeoutMs,
  )
}

test('a gateway reaches Started through a reconciler in another process', async (t) => {
  const setup = await setUp(t)
  // An idle poll far beyond the deadline: the child can only learn of the new gateway through
  // the store's change feed, across processes.
  const reconciler = await startReconciler(t, setup, { IMPRUN_TEST_IDLE_POLL_MS: '600000' })

  const created = await setup.controlPlane.gateways.create({ id: 'alpha' })
  // The other process may already have moved it on by the time create() reads it back.
  assert.equal(created.state, 'Running')
  const record = await waitForPhase(setup.controlPlane, 'alpha', 'Started', 10_000)

  assert.equal(record.state, 'Running')
  assert.equal(record.lockedBy, null)
  assert.equal(record.lastError, null)
  assert.equal(record.attempts, 0)
  const steps = readSteps(setup.stepLog).map((step) => `${step.workerId} ${step.method} ${step.phase}`)
  const worker = reconciler.workerId
  assert.deepEqual(steps, [`${worker} create enter`, `${worker} create exit`, `${worker} start enter`, `${worker} start exit`])
})

test('a reconciler killed mid-Creating is finished by the next one once its lease ends', async (t) => {
  const leaseMs = 500
  const setup = await setUp(t)
  const gateways = setup.controlPlane.gateways
  await gateways.create({ id: 'bravo' })

  const first = await startReconciler(t, setup, { IMPRUN_TEST_HANG: 'create', IMPRUN_TEST_LEASE_MS: String(leaseMs) })
  const locked = await pollUntil(
    'bravo to be locked in Creating',
    async () => {
      const record = await gateways.record('bravo')
      return record.phase === 'Creating' && record.lockedBy !== null ? record : undefined
    },
    10_000,
  )
  assert.equal(locked.lockedBy, first.workerId)
  await pollUntil(
    'the first reconciler to be inside create',
    async () => readSteps(setup.stepLog).find((step) => step.workerId === first.workerId && step.method === 'create'),
    10_000,
  )
  await first.process.kill()

  // Slow steps keep the second reconciler's lease visible to the polling below.
  const second = await startReconciler(t, setup, { IMPRUN_TEST_LEASE_MS: String(leaseMs), IMPRUN_TEST_STEP_SLEEP_MS: '150' })
  assert.notEqual(second.workerId, first.workerId)
  const holders: Array<string | null> = []
  const record = await pollUntil(
    'bravo to reach Started',
    async () => {
      const current = await gateways.record('bravo')
      if (holders.at(-1) !== current.lockedBy) holders.push(current.lockedBy)
      return current.phase === 'Started' ? current : undefined
    },
    15_000,
    10,
  )

  // The dead reconciler's lock stays on the record until its lease ends; from the moment the
  // second one claimed, every claim is the second one's.
  const handover = holders.indexOf(second.workerId)
  assert.ok(handover >= 0, `the second reconciler was never seen holding the lease: ${JSON.stringify(holders)}`)
  assert.ok(holders.slice(0, handover).every((holder) => holder === first.workerId), JSON.stringify(holders))
  assert.ok(
    holders.slice(handover).every((holder) => holder === second.workerId || holder === null),
    `after the handover: ${JSON.stringify(holders)}`,
  )
  assert.equal(record.lockedBy, null)
  assert.equal(record.lastError, null)
  const steps = readSteps(setup.stepLog)
  assert.deepEqual(
    steps.filter((step) => step.workerId === first.workerId).map((step) => `${step.method} ${step.phase}`),
    ['create enter'],
    'the first reconciler never got out of create',
  )
  const secondSteps = steps.filter((step) => step.workerId === second.workerId)
  assert.deepEqual(
    secondSteps.map((step) => `${step.method} ${step.phase}`),
    ['create enter', 'create exit', 'start enter', 'start exit'],
  )
  // The dead worker's lease was honoured to its end, not taken early.
  assert.ok(
    secondSteps[0]!.t >= locked.lockedAt! + leaseMs,
    `the second reconciler entered create ${locked.lockedAt! + leaseMs - secondSteps[0]!.t} ms before the lease ended`,
  )
})

test('two reconciler processes on one store never work the same gateway at once', async (t) => {
  const setup = await setUp(t)
  const reconcilers = await Promise.all([
    startReconciler(t, setup, { IMPRUN_TEST_STEP_SLEEP_MS: '15' }),
    startReconciler(t, setup, { IMPRUN_TEST_STEP_SLEEP_MS: '15' }),
  ])
  const ids = Array.from({ length: 20 }, (_, index) => `gateway-${index}`)
  for (const id of ids) await setup.controlPlane.gateways.create({ id })

  await pollUntil(
    'all 20 gateways to reach Started',
    async () => {
      const records = await setup.controlPlane.store.system().collection<GatewayRecord>('gateways').find({})
      return records.length === ids.length && records.every((record) => record.phase === 'Started') ? records : undefined
    },
    30_000,
    50,
  )

  // The log is appended in real time by both processes, and a step's exit line is written
  // before its lease is released, so the order of the lines is the order of the steps: use it,
  // not the millisecond timestamps, to look for overlaps.
  const steps = readSteps(setup.stepLog)
  const inside = new Map<string, Step>()
  const stepsByWorker = new Map<string, number>()
  for (const [line, step] of steps.entries()) {
    const current = inside.get(step.gatewayId)
    if (step.phase === 'enter') {
      assert.equal(
        current,
        undefined,
        `line ${line}: ${step.workerId} entered ${step.method} of ${step.gatewayId} while ${current?.workerId} was in ${current?.method}`,
      )
      inside.set(step.gatewayId, step)
      stepsByWorker.set(step.workerId, (stepsByWorker.get(step.workerId) ?? 0) + 1)
    } else {
      assert.equal(current?.workerId, step.workerId, `line ${line}: exit without a matching enter`)
      assert.equal(current?.method, step.method, `line ${line}: exit without a matching enter`)
      inside.delete(step.gatewayId)
    }
  }
  assert.equal(inside.size, 0, 'every step that started also ended')
  for (const id of ids) {
    const methods = steps.filter((step) => step.gatewayId === id && step.phase === 'exit').map((step) => step.method)
    assert.ok(methods.includes('create') && methods.includes('start'), `${id}: ${methods.join(', ')}`)
  }
  for (const reconciler of reconcilers) {
    assert.ok((stepsByWorker.get(reconciler.workerId) ?? 0) > 0, `${reconciler.workerId} did no work`)
  }
  t.diagnostic(`steps per worker: ${JSON.stringify(Object.fromEntries(stepsByWorker))}`)
})

test('a failing step is retried with back-off, its error on the record until it succeeds', async (t) => {
  const provisioner = new TestDoubleProvisioner()
  provisioner.failNext('start', 2, 'quota exceeded')
  const setup = await setUp(t, { provisioner, reconciler: { backoffBaseMs: 20, idlePollMs: 50 } })
  const { controlPlane } = setup
  await controlPlane.start()
  await controlPlane.gateways.create({ id: 'delta' })

  const observed: GatewayRecord[] = []
  const record = await pollUntil(
    'delta to reach Started',
    async () => {
      const current = await controlPlane.gateways.record('delta')
      observed.push(current)
      return current.phase === 'Started' ? current : undefined
    },
    10_000,
    2,
  )

  const failing = observed.filter((current) => current.lastError !== null)
  assert.ok(failing.length > 0, 'the error was visible on the record while the step failed')
  for (const current of failing) {
    assert.equal(current.phase, 'Starting')
    assert.equal(current.lastError!.code, 'internal')
    assert.match(current.lastError!.message, /quota exceeded/)
    assert.ok(current.attempts >= 1 && current.attempts <= 2, `attempts ${current.attempts}`)
    assert.equal(current.lastError!.attempts, current.attempts)
    // The next attempt waits at least the jittered back-off: 20 ms × 2^(attempts-1) × 0.8.
    const backoff = current.nextAttemptAt - Date.parse(current.lastError!.at)
    assert.ok(backoff >= 16 * 2 ** (current.attempts - 1), `back-off of ${backoff} ms after attempt ${current.attempts}`)
  }
  assert.equal(record.lastError, null)
  assert.equal(record.attempts, 0)
  assert.equal(record.lockedBy, null)
  assert.equal((await controlPlane.gateways.get('delta')).lastError, null)
  assert.equal(provisioner.methodsFor('delta').filter((method) => method === 'start').length, 3)
})
