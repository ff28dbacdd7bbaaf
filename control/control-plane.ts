/**
 * The control core, assembled from its ports: services for gateways, functions and access, and
 * the gateway reconciler. Both run modes build it the same way; only the adapters differ.
 */
import type { ImprunError } from './errors.ts'
import { systemClock, type Clock, type Compiler, type Provisioner, type SecretBox, type Store } from './ports.ts'
import { AccessService } from './domain/access.ts'
import { FunctionService } from './domain/functions.ts'
import { GatewayService } from './domain/gateways.ts'
import { VariableService } from './domain/variables.ts'
import { ProviderService } from './domain/providers.ts'
import { createGatewayReconciler, recoverDrift, type GatewayReconcilerOptions } from './reconciler/gateway-reconciler.ts'
import type { TaskLoop } from './reconciler/task-loop.ts'
import type { GatewayRecord } from './domain/gateways.ts'

export interface ControlPlaneOptions {
  store: Store
  provisioner: Provisioner
  compiler: Compiler
  /** Seals environment secrets (and provider keys) before they are stored. */
  secretBox: SecretBox
  clock?: Clock
  reconciler?: Pick<GatewayReconcilerOptions, 'leaseMs' | 'backoffBaseMs' | 'backoffMaxMs' | 'idlePollMs' | 'readinessPollMs' | 'workerId'>
  onReconcileError?: (error: ImprunError, gatewayId: string) => void
  /**
   * This is the only control plane on the store (the embedded platform, which holds the data
   * directory's lock): reconciler leases left by an earlier process are released at start
   * instead of waiting out their lease time. Never set it where control planes share a store.
   */
  exclusive?: boolean
}

export interface ControlPlane {
  store: Store
  gateways: GatewayService
  functions: FunctionService
  access: AccessService
  variables: VariableService
  /** LLM providers, model aliases and token usage, for the chat gateway. */
  providers: ProviderService
  reconciler: TaskLoop<GatewayRecord>
  /** Starts the reconciler loop (woken by API changes and by the store's change feed). */
  start(): Promise<void>
  stop(): Promise<void>
}

export function createControlPlane(options: ControlPlaneOptions): ControlPlane {
  const clock = options.clock ?? systemClock
  const { store } = options
  let reconciler: TaskLoop<GatewayRecord> | null = null
  const gateways = new GatewayService({ store, clock, wake: () => reconciler?.wake() })
  const access = new AccessService({ store, clock, gateways })
  const functions = new FunctionService({ store, clock, compiler: options.compiler, gateways })
  const variables = new VariableService({ store, clock, secretBox: options.secretBox, gateways })
  const providers = new ProviderService({ store, secretBox: options.secretBox, clock })
  reconciler = createGatewayReconciler({
    store,
    provisioner: options.provisioner,
    access,
    clock,
    ...options.reconciler,
    onError: options.onReconcileError,
  })
  const feed = new AbortController()
  let following: Promise<void> | null = null

  return {
    store,
    gateways,
    functions,
    access,
    variables,
    providers,
    reconciler,
    async start() {
      await access.ensureIndexes()
      // What the records say is serving but is not (a restart of the embedded platform) goes
      // back to Starting before the loop begins.
      if (options.exclusive) {
        await store.system().collection<GatewayRecord>('gateways').updateMany({ lockedBy: { $ne: null } }, { $set: { lockedAt: null, lockedBy: null } })
      }
      await recoverDrift({ store, provisioner: options.provisioner, clock })
      reconciler.start()
      // Other processes on the same store (CLI, a second control plane) change gateways too.
      following = (async () => {
        try {
          for await (const event of store.system().watch({ collections: ['gateways', 'grants'], signal: feed.signal })) {
            // Grants changed by another process (revoked, rotated) must not stay cached here.
            if (event.type === 'reset' || event.collection === 'grants') access.forgetKeys()
            if (event.type === 'reset' || event.collection === 'gateways') reconciler.wake()
          }
        } catch {
          // The feed is an optimisation; the loop also polls.
        }
      })()
    },
    async stop() {
      feed.abort()
      await providers.flushUsage().catch(() => {})
      await reconciler.stop()
      await following
    },
  }
}
