/**
 * The runtime as the embedded platform runs it: the live registry (hot reload from the store's
 * change feed), the sandbox with its host services (tenant database, egress-checked fetch,
 * invoke), invocation logs, and the data plane routes. It is also the EnvironmentHost of the
 * local provisioner: starting an environment loads its gateway and marks it serving.
 */
import { createHash, randomUUID } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { EnvironmentRegistry } from '../control/adapters/local/local-provisioner.ts'
import { ImprunError } from '../control/errors.ts'
import type { PluginConfigs } from '../control/domain/plugins.ts'
import type { SecretBox, Stage, Store } from '../control/ports.ts'
import type { CallSource, FunctionCallResult, FunctionCatalog } from './function-catalog.ts'
import { registerDataPlane, type EdgeChain } from './http/data-plane.ts'
import { InvocationLog } from './logs/invocation-log.ts'
import { LiveRegistry } from './registry/live-registry.ts'
import { createEgressFetch, egressRequestSchema, type EgressFetchOptions } from './sandbox/egress-fetch.ts'
import { FunctionSandbox, type InvocationRequest, type InvocationResult, type SandboxLimits } from './sandbox/function-sandbox.ts'
import { createTenantDatabase } from './sandbox/tenant-database.ts'

export interface EmbeddedRuntimeOptions {
  store: Store
  /** Opens environment variables and secrets for `ctx.env`. */
  secretBox: SecretBox
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
  /** The live functions as the MCP server and the chat gateway call them. */
  readonly catalog: FunctionCatalog
  private readonly options: EmbeddedRuntimeOptions

  constructor(options: EmbeddedRuntimeOptions) {
    super()
    this.options = options
    this.registry = new LiveRegistry({ store: options.store, secretBox: options.secretBox })
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
    this.catalog = this.createCatalog()
    // Contexts of versions no longer live anywhere in a gateway are released.
    this.registry.subscribe(async (event) => {
      const gateway = await this.registry.gateway(event.gatewayId)
      if (!gateway) return
      const keep = new Set<string>()
      for (const environment of gateway.environments.values()) for (const live of environment.functions.values()) keep.add(live.versionId)
      this.sandbox.retain(event.gatewayId, keep)
      const deployed = event.deployed
      if (deployed) {
        this.sandbox.prewarm({ gatewayId: event.gatewayId, functionName: deployed.name, versionId: deployed.versionId, loadCode: () => this.registry.codeOf(event.gatewayId, deployed.versionId) })
      }
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

  private createCatalog(): FunctionCatalog {
    const record = (gatewayId: string, stage: Stage, name: string, version: number | null, source: CallSource, consumer: string | null, result: FunctionCallResult): FunctionCallResult => {
      this.log.record(gatewayId, {
        requestId: result.requestId,
        stage,
        function: name,
        version,
        method: source.toUpperCase(),
        path: `/${name}`,
        status: result.outcome.status,
        durationMs: Math.round(result.durationMs * 100) / 100,
        consumer,
        error: result.outcome.ok ? null : { code: result.outcome.code, message: result.outcome.message },
        lines: result.logs,
      })
      return result
    }
    const syntheticRequest = (source: CallSource, name: string, input: unknown) => ({
      method: 'POST',
      path: `/${name}`,
      query: {},
      headers: { 'content-type': 'application/json', 'x-imprun-source': source },
      body: input ?? null,
    })
    return {
      list: async (gatewayId, stage) => {
        const gateway = await this.registry.gateway(gatewayId)
        if (!gateway) throw new ImprunError('not_found', `gateway '${gatewayId}' was not found`, { details: { kind: 'gateway', id: gatewayId } })
        const environment = gateway.environments.get(stage)
        return [...(environment?.functions.values() ?? [])]
          .map((live) => ({ name: live.name, version: live.version, metadata: live.metadata }))
          .sort((left, right) => (left.name < right.name ? -1 : left.name > right.name ? 1 : 0))
      },
      isServing: (gatewayId, stage) => this.isServing(gatewayId, stage),
      call: async (call) => {
        const environment = await this.registry.environment(call.gatewayId, call.stage)
        const live = environment?.functions.get(call.name)
        if (!environment || !live) throw new ImprunError('not_found', `no function '${call.name}' on ${call.gatewayId}/${call.stage}`, { details: { kind: 'function', id: call.name } })
        const requestId = call.requestId ?? randomUUID()
        if (!this.isServing(call.gatewayId, call.stage)) {
          const outcome = { ok: false as const, status: 503, code: 'not_serving', message: `gateway '${call.gatewayId}' ${call.stage} is not serving` }
          return { requestId, version: live.version, outcome, logs: [], durationMs: 0 }
        }
        const result = await this.sandbox.invoke({
          gatewayId: call.gatewayId,
          stage: call.stage,
          functionName: live.name,
          versionId: live.versionId,
          loadCode: () => this.registry.codeOf(call.gatewayId, live.versionId),
          input: call.input,
          request: syntheticRequest(call.source, live.name, call.input),
          env: environment.env,
          requestId,
          signal: call.signal,
          ...(call.observer ? { observer: call.observer } : {}),
        })
        return record(call.gatewayId, call.stage, live.name, live.version, call.source, call.consumer ?? null, { requestId, version: live.version, ...result })
      },
      runDraft: async (call) => {
        const environment = await this.registry.environment(call.gatewayId, call.stage)
        if (!environment) throw new ImprunError('not_found', `gateway '${call.gatewayId}' was not found`, { details: { kind: 'gateway', id: call.gatewayId } })
        const requestId = call.requestId ?? randomUUID()
        const versionId = `draft-${createHash('sha256').update(call.code).digest('hex').slice(0, 24)}-${randomUUID().slice(0, 8)}`
        try {
          const result = await this.sandbox.invoke({
            gatewayId: call.gatewayId,
            stage: call.stage,
            functionName: call.name,
            versionId,
            loadCode: async () => call.code,
            input: call.input,
            request: syntheticRequest('draft', call.name, call.input),
            env: environment.env,
            requestId,
            signal: call.signal,
            ...(call.observer ? { observer: call.observer } : {}),
          })
          return record(call.gatewayId, call.stage, call.name, null, 'draft', null, { requestId, version: 0, ...result })
        } finally {
          this.sandbox.forget(call.gatewayId, versionId)
        }
      },
      onChange: (listener) => this.registry.subscribe((event) => listener({ gatewayId: event.gatewayId, stage: event.stage })),
    }
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
      // Its log lines reach the caller's observer marked with its name, as they reach the
      // caller's logs; its progress is its own business (the caller reports its own).
      observer: caller.observer?.log ? { log: (line) => caller.observer!.log!({ ...line, message: `[${name}] ${line.message}` }) } : undefined,
    })
  }
}
