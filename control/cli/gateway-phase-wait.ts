/**
 * `--wait` for gateway commands: polls the gateway until the reconciler has brought its phase to
 * the one its new desired state rests in (Started, Stopped, or gone for Deleted).
 */
import type { Gateway, GatewayPhase, GatewayState } from '../domain/gateways.ts'
import { adminPath, type AdminClient } from './admin-client.ts'
import { CliError } from './cli-error.ts'

export type SettledPhase = Extract<GatewayPhase, 'Started' | 'Stopped' | 'Deleted'>

const desiredState: Record<SettledPhase, GatewayState> = { Started: 'Running', Stopped: 'Stopped', Deleted: 'Deleted' }

export interface GatewayWaitOptions {
  timeoutMs: number
  intervalMs?: number
}

/** Resolves with the gateway once settled; a deleted gateway resolves with its last view, phase Deleted. */
export async function waitForGatewayPhase(client: AdminClient, id: string, target: SettledPhase, options: GatewayWaitOptions): Promise<Gateway> {
  const deadline = Date.now() + options.timeoutMs
  const intervalMs = options.intervalMs ?? 200
  let last: Gateway | null = null
  for (;;) {
    try {
      last = await client.get<Gateway>(adminPath`/admin/gateways/${id}`)
    } catch (error) {
      // Deleted gateways are reported as not found: for a delete that is the end state.
      if (target === 'Deleted' && error instanceof CliError && error.code === 'not_found') {
        return { ...(last ?? ({ id } as Gateway)), state: 'Deleted', phase: 'Deleted' }
      }
      throw error
    }
    if (last.phase === target) return last
    if (last.state !== desiredState[target]) {
      throw new CliError('conflict', `gateway '${id}' was changed to state ${last.state} while waiting for ${target}`)
    }
    if (Date.now() >= deadline) {
      const hints = last.lastError ? [`last reconcile error (attempt ${last.lastError.attempts}): ${last.lastError.code}: ${last.lastError.message}`] : []
      throw new CliError('timeout', `gateway '${id}' is still ${last.phase} after ${Math.round(options.timeoutMs / 1000)} s (waiting for ${target})`, { hints })
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(intervalMs, Math.max(0, deadline - Date.now()))))
  }
}
