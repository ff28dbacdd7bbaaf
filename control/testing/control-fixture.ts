/**
 * A control plane on a fresh SQLite store in a temp directory, with the compiler and provisioner
 * test doubles. One per test; `close` removes everything.
 */
import { randomBytes } from 'node:crypto'
import { createAesSecretBox } from '../secrets/aes-secret-box.ts'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createSqliteStore } from '../adapters/sqlite/sqlite-store.ts'
import { createControlPlane, type ControlPlane } from '../control-plane.ts'
import type { Clock } from '../ports.ts'
import { TestDoubleCompiler, TestDoubleProvisioner } from './test-doubles.ts'

export interface ControlFixture {
  control: ControlPlane
  compiler: TestDoubleCompiler
  provisioner: TestDoubleProvisioner
  directory: string
  /** Runs the reconciler until the gateway's phase settles for its state. */
  settle(gatewayId: string): Promise<void>
  close(): Promise<void>
}

export async function createControlFixture(options: { clock?: Clock; leaseMs?: number } = {}): Promise<ControlFixture> {
  const directory = await mkdtemp(join(tmpdir(), 'imprun-control-'))
  const store = createSqliteStore({ directory })
  const compiler = new TestDoubleCompiler()
  const provisioner = new TestDoubleProvisioner()
  const control = createControlPlane({
    secretBox: createAesSecretBox(randomBytes(32)),
    store,
    compiler,
    provisioner,
    clock: options.clock,
    reconciler: { leaseMs: options.leaseMs ?? 5_000, backoffBaseMs: 1, backoffMaxMs: 5, readinessPollMs: 1 },
  })
  await control.access.ensureIndexes()
  return {
    control,
    compiler,
    provisioner,
    directory,
    async settle(gatewayId) {
      for (let round = 0; round < 200; round++) {
        const record = await store.system().collection('gateways').findOne({ _id: gatewayId })
        const resting = { Running: 'Started', Stopped: 'Stopped', Deleted: 'Deleted' } as Record<string, string>
        if (record && resting[record.state as string] === record.phase) return
        if (!(await control.reconciler.runOnce())) await new Promise((resolve) => setTimeout(resolve, 5))
      }
      throw new Error(`gateway ${gatewayId} did not settle`)
    },
    async close() {
      await control.stop()
      await store.close()
      await rm(directory, { recursive: true, force: true })
    },
  }
}
