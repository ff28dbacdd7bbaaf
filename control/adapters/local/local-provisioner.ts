/**
 * The embedded provisioner: environments run as in-process workers of the runtime host. It
 * asks the host to bring each stage of a gateway up or down and reports ready when every stage
 * is serving. All calls are idempotent, as the reconciler requires.
 */
import type { Provisioner, ProvisionTarget, Stage } from '../../ports.ts'

/** What the embedded runtime offers the provisioner (the data plane implements it). */
export interface EnvironmentHost {
  startEnvironment(gatewayId: string, stage: Stage): Promise<void>
  stopEnvironment(gatewayId: string, stage: Stage): Promise<void>
  isServing(gatewayId: string, stage: Stage): boolean
  /** Forgets everything about a gateway (its caches, workers, logs). */
  removeGateway(gatewayId: string): Promise<void>
}

export function createLocalProvisioner(host: EnvironmentHost): Provisioner {
  return {
    kind: 'local',
    async create() {
      // The gateway database and its environments are created by the reconciler through the
      // store; nothing else exists per gateway until it starts.
    },
    async start(target: ProvisionTarget) {
      for (const stage of target.stages) await host.startEnvironment(target.gatewayId, stage)
    },
    async isReady(target: ProvisionTarget) {
      return target.stages.every((stage) => host.isServing(target.gatewayId, stage))
    },
    async stop(target: ProvisionTarget) {
      for (const stage of target.stages) await host.stopEnvironment(target.gatewayId, stage)
    },
    async destroy(target: ProvisionTarget) {
      for (const stage of target.stages) await host.stopEnvironment(target.gatewayId, stage)
      await host.removeGateway(target.gatewayId)
    },
  }
}

/**
 * The set of environments this process serves. The data plane consults it to decide whether
 * a request for a gateway environment is served (started) or answered 503 (stopped).
 */
export class EnvironmentRegistry implements EnvironmentHost {
  private readonly serving = new Set<string>()
  private readonly listeners = new Set<(gatewayId: string, stage: Stage, serving: boolean) => void>()

  async startEnvironment(gatewayId: string, stage: Stage): Promise<void> {
    this.set(gatewayId, stage, true)
  }

  async stopEnvironment(gatewayId: string, stage: Stage): Promise<void> {
    this.set(gatewayId, stage, false)
  }

  isServing(gatewayId: string, stage: Stage): boolean {
    return this.serving.has(`${gatewayId}/${stage}`)
  }

  async removeGateway(gatewayId: string): Promise<void> {
    for (const key of [...this.serving]) if (key.startsWith(`${gatewayId}/`)) this.serving.delete(key)
    for (const listener of this.listeners) listener(gatewayId, 'dev', false)
  }

  /** Called with every change; returns a function that unsubscribes. */
  onChange(listener: (gatewayId: string, stage: Stage, serving: boolean) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  private set(gatewayId: string, stage: Stage, serving: boolean): void {
    const key = `${gatewayId}/${stage}`
    if (this.serving.has(key) === serving) return
    if (serving) this.serving.add(key)
    else this.serving.delete(key)
    for (const listener of this.listeners) listener(gatewayId, stage, serving)
  }
}
