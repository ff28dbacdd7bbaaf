/**
 * The runtime as the embedded platform runs it: the live registry (hot reload from the store's
 * change feed), the sandbox with its host services (tenant database, egress-checked fetch,
 * invoke), invocation logs, and the data plane routes. It is also the EnvironmentHost of the
 * local provisioner: starting an environment loads its gateway and marks it serving.
 */
import type { FastifyInstance } from 'fastify'
import { EnvironmentRegistry } from '../control/adapters/local/local-provisioner.ts'
import { ImprunError } from '../control/errors.ts'
import type { PluginConfigs } from '../control/domain/plugins.ts'
import type { Stage, Store } from '../control/ports.ts'
import { registerDataPlane, type EdgeChain } from './http/data-plane.ts'
import { InvocationLog } from './logs/invocation-log.ts'
import { LiveRegistry } from './registry/live-registry.ts'
import { createEgressFetch, egressRequestSchema, type EgressFetchOptions } from './sandbox/egress-fetch.ts'
import { FunctionSandbox, type InvocationRequest, type InvocationResult, type SandboxLimits } from './sandbox/function-sandbox.ts'
import { createTenantDatabase } from './sandbox/tenant-database.ts'

export interface EmbeddedRuntimeOptions {
  store: Store
  /** Builds an edge plugin chain (key-auth needs grant verification from the control plane). */
  createChain(plugins: PluginConfigs, scope: { gatewayId: string; stage: Stage; functionName: string }): EdgeChain
  limits?: Partial<SandboxLimits>
  egress?: EgressFetchOptions
  domain?: string
}

export class EmbeddedRuntime extends EnvironmentRegistry {
  readonly registry: LiveRegistry
  readonly sandbox: FunctionSandbox
  readonly log: InvocationLog
  private readonly options: EmbeddedRuntimeOptions

  constructor(options: EmbeddedRuntimeOptions) {
    super()
    this.options = options
    this.registry = new LiveRegistry({ store: options.store })
    this.log = new InvocationLog({ store: options.store })
    const egressFetch = createEgressFetch(options.egress)
    this.sandbox = new FunctionSandbox({
      limits: options.limits,
      services: {
        db: createTenantDatabase(options.store),
        fetch: async (request, signal) => {
          const parsed = egressRequestSchema.safeParse(request)
          if (!parsed.success) throw new ImprunError('bad_request', `invalid fetch request: ${parsed.error.issues[0]?.message ?? 'invalid'}`)
          return egressFetch(parsed.data, { signal })
        },
        invoke: (caller, name, input) => this.invokeNested(caller, name, input),
      },
    })
    // Contexts of versions no longer live anywhere in a gateway are released.
    this.registry.subscribe(async (event) => {
      const gateway = await this.registry.gateway(event.gatewayId)
      if (!gateway) return
      const keep = new Set<string>()
      for (const environment of gateway.environments.values()) for (const live of environment.functions.values()) keep.add(live.versionId)
      this.sandbox.retain(event.gatewayId, keep)
    })
  }

  override async startEnvironment(gatewayId: string, stage: Stage): Promise<void> {
    await this.registry.gateway(gatewayId)
    await super.startEnvironment(gatewayId, stage)
  }

  override async removeGateway(gatewayId: string): Promise<void> {
    await super.removeGateway(gatewayId)
    this.registry.unload(gatewayId)
    this.sandbox.disposeGateway(gatewayId)
  }

  registerRoutes(app: FastifyInstance): Promise<void> {
    return registerDataPlane(app, {
      registry: this.registry,
      sandbox: this.sandbox,
      log: this.log,
      isServing: (gatewayId, stage) => this.isServing(gatewayId, stage),
      createChain: this.options.createChain,
      domain: this.options.domain,
    })
  }

  async close(): Promise<void> {
    await this.log.close()
    await this.registry.close()
    await this.sandbox.close()
  }

  private async invokeNested(caller: InvocationRequest, name: string, input: unknown): Promise<InvocationResult> {
    const environment = await this.registry.environment(caller.gatewayId, caller.stage as Stage)
    const live = environment?.functions.get(name)
    if (!live) throw new ImprunError('not_found', `no function '${name}' on ${caller.gatewayId}/${caller.stage}`)
    return this.sandbox.invoke({
      ...caller,
      functionName: name,
      versionId: live.versionId,
      loadCode: () => this.registry.codeOf(caller.gatewayId, live.versionId),
      input,
      depth: (caller.depth ?? 0) + 1,
    })
  }
}
