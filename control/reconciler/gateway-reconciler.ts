/**
 * The gateway reconciler: moves a gateway's observed phase toward its desired state, one
 * idempotent step per claim.
 *
 *   Running: Creating → Created → Starting → Started      (Stopped → Starting, Stopping → Stopped first)
 *   Stopped: Creating → Created → Stopped; Starting/Started → Stopping → Stopped
 *   Deleted: any → Deleting → Deleted (provisioned parts, grants and the gateway database removed)
 */
import { ImprunError } from '../errors.ts'
import type { Clock, ProvisionTarget, Provisioner, Store } from '../ports.ts'
import type { AccessService } from '../domain/access.ts'
import { ensureEnvironments, gatewayNeedsWork, type GatewayPhase, type GatewayRecord } from '../domain/gateways.ts'
import { stages } from '../domain/names.ts'
import { TaskLoop, type StepOutcome } from './task-loop.ts'

export interface GatewayReconcilerOptions {
  store: Store
  provisioner: Provisioner
  access: AccessService
  clock: Clock
  leaseMs?: number
  backoffBaseMs?: number
  backoffMaxMs?: number
  idlePollMs?: number
  /** How often to look again while waiting for the provisioner to report ready. */
  readinessPollMs?: number
  workerId?: string
  onError?: (error: ImprunError, gatewayId: string) => void
}

export function createGatewayReconciler(options: GatewayReconcilerOptions): TaskLoop<GatewayRecord> {
  const { store, provisioner, access, clock } = options
  const readinessPollMs = options.readinessPollMs ?? 200
  const move = (phase: GatewayPhase): StepOutcome<GatewayRecord> => ({ phase })

  return new TaskLoop<GatewayRecord>({
    kind: 'gateway',
    collection: () => store.system().collection<GatewayRecord>('gateways'),
    needsWork: gatewayNeedsWork,
    clock,
    leaseMs: options.leaseMs,
    backoffBaseMs: options.backoffBaseMs,
    backoffMaxMs: options.backoffMaxMs,
    idlePollMs: options.idlePollMs,
    workerId: options.workerId,
    onError: (error, record) => options.onError?.(error, record._id),
    async step(gateway) {
      const target: ProvisionTarget = { gatewayId: gateway._id, stages }
      const { state, phase } = gateway

      if (state === 'Deleted') {
        if (phase !== 'Deleting') return move('Deleting')
        await provisioner.destroy(target)
        await access.deleteGatewayGrants(gateway._id)
        await store.dropGateway(gateway._id)
        return move('Deleted')
      }

      switch (phase) {
        case 'Creating':
          await ensureEnvironments(store.gateway(gateway._id), new Date(clock.now()).toISOString())
          await provisioner.create(target)
          return move('Created')
        case 'Created':
          return move(state === 'Running' ? 'Starting' : 'Stopped')
        case 'Starting':
          if (state === 'Stopped') return move('Stopping')
          await provisioner.start(target)
          if (!(await provisioner.isReady(target))) return { retryAfterMs: readinessPollMs }
          return move('Started')
        case 'Started':
          return move('Stopping')
        case 'Stopping':
          await provisioner.stop(target)
          return move('Stopped')
        case 'Stopped':
          return move('Starting')
        case 'Deleting':
        case 'Deleted':
          // A deleted gateway is only brought back by create, which replaces the record.
          throw new ImprunError('invalid_state', `gateway '${gateway._id}' is ${phase} but wants ${state}`)
      }
    },
  })
}

/**
 * Finds gateways whose record says Started while the provisioner says they are not serving (the
 * embedded platform restarted and its in-process environments are gone; in a cluster, a
 * Deployment was removed behind our back) and sends them back to Starting, one conditional
 * write each, so the reconciler brings them up again. Returns how many it sent back.
 */
export async function recoverDrift(options: { store: Store; provisioner: Provisioner; clock: Clock }): Promise<number> {
  const gateways = options.store.system().collection<GatewayRecord>('gateways')
  let recovered = 0
  for (const gateway of await gateways.find({ state: 'Running', phase: 'Started' })) {
    if (await options.provisioner.isReady({ gatewayId: gateway._id, stages })) continue
    const result = await gateways.updateOne(
      { _id: gateway._id, state: 'Running', phase: 'Started' },
      { $set: { phase: 'Starting', updatedAt: new Date(options.clock.now()).toISOString(), nextAttemptAt: 0 } },
    )
    recovered += result.modifiedCount
  }
  return recovered
}
