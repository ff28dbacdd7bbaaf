/**
 * What is live, per gateway environment, held in memory and kept current by the store's change
 * feed: hot reload. A gateway is loaded on first use (snapshot of deployments, version metadata,
 * function and environment plugins) and then follows its database's feed; the system database's
 * feed brings gateway-level changes (plugins, state). Lookups are map reads, so request latency
 * does not grow with the number of published functions; code is loaded only when a version first
 * runs, and cached.
 */
import type { ChangeEvent, ChangeStream, Stage, Store, StoredDocument } from '../../control/ports.ts'
import type { DeploymentRecord, FunctionRecord, LiveFunction, VersionRecord } from '../../control/domain/functions.ts'
import type { EnvironmentRecord, GatewayRecord } from '../../control/domain/gateways.ts'
import type { PluginConfigs } from '../../control/domain/plugins.ts'
import { stages } from '../../control/domain/names.ts'
import type { FunctionMetadata, SecretBox } from '../../control/ports.ts'
import { openVariables, type VariableRecord } from '../../control/domain/variables.ts'

export interface LiveEnvironment {
  gatewayId: string
  stage: Stage
  plugins: PluginConfigs
  functions: Map<string, LiveFunction>
  /** Environment variables and secrets, opened: what functions see as `ctx.env` (frozen). */
  env: Readonly<Record<string, string>>
  /** Changes on every change to what it serves; unique across reloads, for caches keyed on it. */
  revision: number
}

export interface LiveGateway {
  id: string
  state: GatewayRecord['state']
  phase: GatewayRecord['phase']
  plugins: PluginConfigs
  environments: Map<Stage, LiveEnvironment>
}

export type RegistryEvent = {
  type: 'functions-changed'
  gatewayId: string
  stage: Stage
  /** Every version live on the environment now. */
  versionIds: Set<string>
  /** The function whose deployment changed, when one did (not on a reload). */
  deployed?: { name: string; versionId: string }
}

export interface LiveRegistryOptions {
  store: Store
  /** Opens sealed environment variables. */
  secretBox: SecretBox
  /** Versions whose code stays cached (default 2,000). */
  codeCacheSize?: number
}

interface LoadedGateway {
  ready: Promise<LiveGateway | null>
  feed: ChangeStream
}

export class LiveRegistry {
  private readonly store: Store
  private readonly secretBox: SecretBox
  private readonly gateways = new Map<string, LoadedGateway>()
  private readonly code = new Map<string, string>()
  private readonly codeCacheSize: number
  private readonly listeners = new Set<(event: RegistryEvent) => void>()
  private systemFeed: ChangeStream | null = null
  private closed = false
  private revisions = 0

  constructor(options: LiveRegistryOptions) {
    this.store = options.store
    this.secretBox = options.secretBox
    this.codeCacheSize = options.codeCacheSize ?? 2000
  }

  /** The live gateway, or null when it does not exist (or is deleted). */
  gateway(gatewayId: string): Promise<LiveGateway | null> {
    this.followSystem()
    let loaded = this.gateways.get(gatewayId)
    if (!loaded) {
      const feed = this.store.gateway(gatewayId).watch({ collections: ['deployments', 'functions', 'environments', 'variables'] })
      const ready = this.load(gatewayId)
      loaded = { ready, feed }
      this.gateways.set(gatewayId, loaded)
      void this.follow(gatewayId, loaded)
      ready.catch(() => this.unload(gatewayId))
    }
    return loaded.ready
  }

  async environment(gatewayId: string, stage: Stage): Promise<LiveEnvironment | null> {
    return (await this.gateway(gatewayId))?.environments.get(stage) ?? null
  }

  /** A version's compiled code (cached, least recently used dropped first). */
  async codeOf(gatewayId: string, versionId: string): Promise<string> {
    const key = `${gatewayId}/${versionId}`
    const cached = this.code.get(key)
    if (cached !== undefined) {
      this.code.delete(key)
      this.code.set(key, cached)
      return cached
    }
    const version = await this.store.gateway(gatewayId).collection<VersionRecord>('versions').findOne({ _id: versionId }, { projection: { code: 1 } })
    if (!version) throw new Error(`version ${versionId} of ${gatewayId} is gone`)
    this.code.set(key, version.code)
    if (this.code.size > this.codeCacheSize) this.code.delete(this.code.keys().next().value!)
    return version.code
  }

  subscribe(listener: (event: RegistryEvent) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  unload(gatewayId: string): void {
    const loaded = this.gateways.get(gatewayId)
    if (!loaded) return
    this.gateways.delete(gatewayId)
    void loaded.feed.close()
    for (const key of [...this.code.keys()]) if (key.startsWith(`${gatewayId}/`)) this.code.delete(key)
  }

  async close(): Promise<void> {
    this.closed = true
    await this.systemFeed?.close()
    for (const gatewayId of [...this.gateways.keys()]) this.unload(gatewayId)
  }

  // --- loading and following ---------------------------------------------------------------------

  private async load(gatewayId: string): Promise<LiveGateway | null> {
    const record = await this.store.system().collection<GatewayRecord>('gateways').findOne({ _id: gatewayId })
    if (!record || record.phase === 'Deleted') return null
    const database = this.store.gateway(gatewayId)
    const [environmentRecords, deployments, functionRecords, variables] = await Promise.all([
      database.collection<EnvironmentRecord>('environments').find({}),
      database.collection<DeploymentRecord>('deployments').find({}),
      database.collection<FunctionRecord>('functions').find({}, { projection: { files: 0 } }),
      database.collection<VariableRecord>('variables').find({}),
    ])
    const metadata = await this.metadataOf(gatewayId, deployments.map((deployment) => deployment.versionId))
    const plugins = new Map(functionRecords.map((entry) => [entry._id, entry.plugins ?? {}]))
    const gateway: LiveGateway = { id: gatewayId, state: record.state, phase: record.phase, plugins: record.plugins ?? {}, environments: new Map() }
    for (const stage of stages) {
      gateway.environments.set(stage, {
        gatewayId,
        stage,
        plugins: environmentRecords.find((environment) => environment._id === stage)?.plugins ?? {},
        functions: new Map(),
        env: Object.freeze(openVariables(variables.filter((variable) => variable.stage === stage), this.secretBox)),
        revision: ++this.revisions,
      })
    }
    for (const deployment of deployments) {
      gateway.environments.get(deployment.stage)?.functions.set(deployment.function, {
        name: deployment.function,
        version: deployment.version,
        versionId: deployment.versionId,
        metadata: metadata.get(deployment.versionId) ?? emptyMetadata,
        plugins: plugins.get(deployment.function) ?? {},
      })
    }
    return gateway
  }

  private async metadataOf(gatewayId: string, versionIds: string[]): Promise<Map<string, FunctionMetadata>> {
    if (versionIds.length === 0) return new Map()
    const versions = await this.store
      .gateway(gatewayId)
      .collection<VersionRecord>('versions')
      .find({ _id: { $in: [...new Set(versionIds)] } }, { projection: { metadata: 1 } })
    return new Map(versions.map((version) => [version._id, version.metadata]))
  }

  private async follow(gatewayId: string, loaded: LoadedGateway): Promise<void> {
    try {
      for await (const event of loaded.feed) {
        if (this.gateways.get(gatewayId) !== loaded) return
        const gateway = await loaded.ready
        if (!gateway) continue
        await this.apply(gateway, event)
      }
    } catch {
      // The feed failed (database dropped, store closed): forget the gateway; the next request
      // loads it afresh.
      if (!this.closed) this.unload(gatewayId)
    }
  }

  private async apply(gateway: LiveGateway, event: ChangeEvent): Promise<void> {
    if (event.type === 'reset') {
      const fresh = await this.load(gateway.id)
      if (!fresh) return
      gateway.environments = fresh.environments
      for (const environment of gateway.environments.values()) this.changed(environment)
      return
    }
    if (event.collection === 'deployments') {
      const [stage, ...rest] = event.id.split(':')
      const environment = gateway.environments.get(stage as Stage)
      if (!environment) return
      const name = rest.join(':')
      const deployment = event.document as DeploymentRecord | undefined
      if (event.type === 'delete' || !deployment) {
        environment.functions.delete(name)
      } else {
        const [metadata, record] = await Promise.all([
          this.metadataOf(gateway.id, [deployment.versionId]),
          this.store.gateway(gateway.id).collection<FunctionRecord>('functions').findOne({ _id: name }, { projection: { plugins: 1 } }),
        ])
        environment.functions.set(name, {
          name,
          version: deployment.version,
          versionId: deployment.versionId,
          metadata: metadata.get(deployment.versionId) ?? emptyMetadata,
          plugins: record?.plugins ?? {},
        })
        this.changed(environment, { name, versionId: deployment.versionId })
        return
      }
      this.changed(environment)
      return
    }
    if (event.collection === 'functions') {
      const plugins = (event.document as FunctionRecord | undefined)?.plugins ?? {}
      for (const environment of gateway.environments.values()) {
        const live = environment.functions.get(event.id)
        if (live) {
          live.plugins = plugins
          environment.revision = ++this.revisions
        }
      }
      return
    }
    if (event.collection === 'variables') {
      const stage = event.id.split(':')[0] as Stage
      const environment = gateway.environments.get(stage)
      if (!environment) return
      const records = await this.store.gateway(gateway.id).collection<VariableRecord>('variables').find({ stage })
      environment.env = Object.freeze(openVariables(records, this.secretBox))
      environment.revision = ++this.revisions
      return
    }
    if (event.collection === 'environments') {
      const environment = gateway.environments.get(event.id as Stage)
      if (environment) {
        environment.plugins = (event.document as EnvironmentRecord | undefined)?.plugins ?? {}
        environment.revision = ++this.revisions
      }
    }
  }

  private changed(environment: LiveEnvironment, deployed?: RegistryEvent['deployed']): void {
    environment.revision = ++this.revisions
    const versionIds = new Set<string>()
    for (const live of environment.functions.values()) versionIds.add(live.versionId)
    for (const listener of this.listeners) listener({ type: 'functions-changed', gatewayId: environment.gatewayId, stage: environment.stage, versionIds, deployed })
  }

  private followSystem(): void {
    if (this.systemFeed || this.closed) return
    const feed = this.store.system().watch({ collections: ['gateways'] })
    this.systemFeed = feed
    void (async () => {
      try {
        for await (const event of feed) {
          if (event.type === 'reset') {
            for (const gatewayId of [...this.gateways.keys()]) this.unload(gatewayId)
            continue
          }
          const loaded = this.gateways.get(event.id)
          if (!loaded) continue
          const record = event.document as (GatewayRecord & StoredDocument) | undefined
          if (!record || record.phase === 'Deleted' || record.phase === 'Deleting') {
            this.unload(event.id)
            continue
          }
          const gateway = await loaded.ready
          if (gateway) {
            gateway.state = record.state
            gateway.phase = record.phase
            gateway.plugins = record.plugins ?? {}
            for (const environment of gateway.environments.values()) environment.revision = ++this.revisions
          }
        }
      } catch {
        this.systemFeed = null
      }
    })()
  }
}

export type { LiveFunction }

const emptyMetadata: FunctionMetadata = { description: '', inputSchema: null, outputSchema: null }
