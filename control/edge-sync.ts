/**
 * Edge sync: the port through which cluster mode hands a gateway's edge configuration (routing,
 * CORS, key-auth consumers, rate limits, IP restriction) to Apache APISIX, the desired state it
 * is given, how that state is built from the store, and the loop that keeps APISIX following the
 * store's change feed.
 *
 * The edge of one gateway is always FOUR routes, however many functions it has:
 *   - the base route `/*` (priority 1) — anything not under a stage; runs the gateway layer
 *     (base CORS < gateway plugins) and lands on the prod runtime, which answers 404 for unknown
 *     stages;
 *   - one route per stage `/dev/*`, `/staging/*`, `/prod/*` (priority 10) — runs that stage's
 *     merged plugins (base CORS < gateway < environment) and lands on the stage's runtime Service.
 * Function-level plugins are NOT at the edge: the cluster runtime enforces them with the same
 * plugin chain the embedded data plane uses (see runtime/cluster-runtime.ts and
 * docs/decisions/0601-cluster-edge-plugins-and-grant-keys.md).
 *
 * One consumer per active grant carries the grant's API key for key-auth. Keys are stored only as
 * salted hashes, so the plaintext comes from a `GrantKeyVault` filled when a key is issued.
 */
import { createHash } from 'node:crypto'
import { ImprunError, toImprunError } from './errors.ts'
import type { ChangeStream, Clock, Provisioner, SecretBox, Stage, Store, StoredDocument } from './ports.ts'
import { systemClock } from './ports.ts'
import type { GrantRecord } from './domain/access.ts'
import type { EnvironmentRecord, GatewayRecord } from './domain/gateways.ts'
import { stages } from './domain/names.ts'
import { effectivePlugins, type PluginConfigs, type PluginSchemaOptions } from './domain/plugins.ts'
import { InterruptibleSleep } from './reconciler/interruptible-sleep.ts'

// ---------------------------------------------------------------------------------------------
// Desired state
// ---------------------------------------------------------------------------------------------

/** Where a stage's runtime is reachable from the edge (a Kubernetes Service). */
export interface EdgeUpstream {
  /** Namespace of the Service (CRD form: the resources live beside it). */
  namespace: string
  serviceName: string
  port: number
}

export interface EdgeStageRoute {
  stage: Stage
  /** Merged plugins of the stage: base CORS < gateway < environment (APISIX confs). */
  plugins: PluginConfigs
  upstream: EdgeUpstream
}

export interface EdgeConsumer {
  grantId: string
  applicationId: string
  stage: Stage
  /** The plaintext API key APISIX key-auth compares with. */
  key: string
}

/**
 * Everything the edge needs for one gateway. Pure data: adapters turn it into APISIX objects
 * (CRDs, Admin API objects, standalone YAML). Equal states produce equal objects.
 */
export interface GatewayEdgeState {
  gatewayId: string
  /** Hosts the gateway answers on: `<gateway>.<domain>` plus custom domains. Empty: any host. */
  hosts: string[]
  /** The base route's plugins: base CORS < gateway. */
  basePlugins: PluginConfigs
  /** Where the base route lands (the prod runtime). */
  baseUpstream: EdgeUpstream
  /** Exactly one per stage, in stage order. */
  stages: EdgeStageRoute[]
  /** One per active grant that has a key in the vault, sorted by grant id. */
  consumers: EdgeConsumer[]
  /** Active grants whose key is not in the vault (issued before cluster mode): not at the edge. */
  grantsWithoutKey: string[]
}

/**
 * The edge-sync port. Implementations: APISIX Ingress Controller CRDs, the APISIX Admin API, a
 * standalone `apisix.yaml` (control/adapters/apisix).
 *
 * Contract:
 * - `sync` makes the edge hold exactly `desired` for that gateway: it creates and updates what is
 *   missing or different and deletes objects of that gateway that `desired` no longer names
 *   (found by label / id prefix). It is idempotent: a second call with the same state changes
 *   nothing. Objects of other gateways are never touched.
 * - `remove` deletes every object of the gateway. Idempotent; a gateway never synced is fine.
 * - Failures are `ImprunError`s whose message carries the edge's own message (the Kubernetes
 *   `Status.message`, the Admin API `error_msg`), so it can be shown on the gateway's record;
 *   `retryable` says whether trying again may help.
 * - No driver or wire type appears here; adapters own their connections.
 */
export interface EdgeSync {
  readonly kind: 'apisix-crd' | 'apisix-admin' | 'apisix-standalone' | string
  sync(desired: GatewayEdgeState): Promise<void>
  remove(gatewayId: string): Promise<void>
  /** Gateways that have objects at the edge (for removing leftovers of deleted gateways). */
  listGateways(): Promise<string[]>
}

/** Maps a gateway stage to where its runtime listens (the Kubernetes provisioner's naming). */
export interface EdgeTopology {
  upstream(gatewayId: string, stage: Stage): EdgeUpstream
  /** Hosts for a gateway, e.g. `[`${gatewayId}.api.example.com`]`. */
  hosts(gatewayId: string): string[]
}

// ---------------------------------------------------------------------------------------------
// Grant keys
// ---------------------------------------------------------------------------------------------

/**
 * Sealed copies of issued grant keys, for the edge only (the platform itself verifies keys by
 * hash). Stored in the system collection `edge_grant_keys`, sealed with the platform SecretBox.
 */
export interface GrantKeyVault {
  put(grantId: string, apiKey: string): Promise<void>
  get(grantIds: readonly string[]): Promise<Map<string, string>>
  delete(grantId: string): Promise<void>
}

interface GrantKeyRecord extends StoredDocument {
  sealed: string
  keyHash: string
  storedAt: string
}

export function createGrantKeyVault(options: { store: Store; secretBox: SecretBox; clock?: Clock }): GrantKeyVault {
  const clock = options.clock ?? systemClock
  const keys = () => options.store.system().collection<GrantKeyRecord>('edge_grant_keys')
  return {
    async put(grantId, apiKey) {
      const record = { sealed: options.secretBox.seal(apiKey), keyHash: fingerprint(apiKey), storedAt: new Date(clock.now()).toISOString() }
      await keys().replaceOne({ _id: grantId }, record, { upsert: true })
    },
    async get(grantIds) {
      if (grantIds.length === 0) return new Map()
      const records = await keys().find({ _id: { $in: [...grantIds] } })
      return new Map(records.map((record) => [record._id, options.secretBox.open(record.sealed)]))
    },
    async delete(grantId) {
      await keys().deleteOne({ _id: grantId })
    },
  }
}

/** What the key capture needs from the access service (its grant, rotate and revoke). */
export interface KeyIssuingAccess {
  grant(input: { application: string; gatewayId: string; stage: Stage }): Promise<{ id: string; apiKey: string }>
  rotate(grantId: string, options?: { graceSeconds?: number }): Promise<{ id: string; apiKey: string }>
  revoke(grantId: string): Promise<unknown>
}

/**
 * Puts every key the access service issues into the vault, by wrapping the instance's `grant`,
 * `rotate` and `revoke`. A stopgap until the access service takes an `onKeyIssued` hook: the
 * wrapped methods keep their signatures, so the admin API and MCP tools are unaffected. A key
 * whose vault write fails is still returned (the grant exists); the edge sync then reports the
 * grant under `grantsWithoutKey` until the key is rotated.
 */
export function captureIssuedKeys<T extends KeyIssuingAccess>(access: T, vault: GrantKeyVault, onChange?: () => void): T {
  const grant = access.grant.bind(access)
  const rotate = access.rotate.bind(access)
  const revoke = access.revoke.bind(access)
  access.grant = async (input) => {
    const issued = await grant(input)
    await vault.put(issued.id, issued.apiKey).catch(() => {})
    onChange?.()
    return issued
  }
  access.rotate = async (grantId, options) => {
    const issued = await rotate(grantId, options)
    await vault.put(issued.id, issued.apiKey).catch(() => {})
    onChange?.()
    return issued
  }
  access.revoke = async (grantId) => {
    const result = await revoke(grantId)
    await vault.delete(grantId).catch(() => {})
    onChange?.()
    return result
  }
  return access
}

// ---------------------------------------------------------------------------------------------
// Building the desired state
// ---------------------------------------------------------------------------------------------

export interface EdgeStateOptions extends PluginSchemaOptions {
  store: Store
  vault: GrantKeyVault
  topology: EdgeTopology
}

/**
 * The edge state of one gateway as the store has it now; null when the gateway is gone or
 * being deleted (the edge should then hold nothing for it).
 */
export async function buildGatewayEdgeState(gatewayId: string, options: EdgeStateOptions): Promise<GatewayEdgeState | null> {
  const gateway = await options.store.system().collection<GatewayRecord>('gateways').findOne({ _id: gatewayId })
  if (!gateway || gateway.state === 'Deleted' || gateway.phase === 'Deleted') return null
  const environments = await options.store.gateway(gatewayId).collection<EnvironmentRecord>('environments').find({})
  const grants = await options.store
    .system()
    .collection<GrantRecord>('grants')
    .find({ gatewayId, status: 'active' }, { sort: { _id: 1 } })
  const keys = await options.vault.get(grants.map((grant) => grant._id))
  const customDomains = Array.isArray(gateway.domains) ? gateway.domains.filter((domain): domain is string => typeof domain === 'string') : []
  return {
    gatewayId,
    hosts: [...new Set([...options.topology.hosts(gatewayId), ...customDomains])],
    basePlugins: edgePlugins(effectivePlugins({ gateway: gateway.plugins ?? {} }, options)),
    baseUpstream: options.topology.upstream(gatewayId, 'prod'),
    stages: stages.map((stage) => ({
      stage,
      plugins: edgePlugins(
        effectivePlugins({ gateway: gateway.plugins ?? {}, environment: environments.find((environment) => environment._id === stage)?.plugins ?? {} }, options),
      ),
      upstream: options.topology.upstream(gatewayId, stage),
    })),
    consumers: grants.flatMap((grant) => {
      const key = keys.get(grant._id)
      return key === undefined ? [] : [{ grantId: grant._id, applicationId: grant.applicationId, stage: grant.stage, key }]
    }),
    grantsWithoutKey: grants.filter((grant) => !keys.has(grant._id)).map((grant) => grant._id),
  }
}

/**
 * Plugin confs as the edge runs them. key-auth keeps the key on the request
 * (`hide_credentials: false`): APISIX consumers are global, so any grant's key passes APISIX's
 * key-auth on any route; the runtime behind it checks that the key belongs to a grant for ITS
 * gateway and stage (and then hides it if the user asked for that).
 */
export function edgePlugins(plugins: PluginConfigs): PluginConfigs {
  const result = structuredClone(plugins)
  const keyAuth = result['key-auth']
  if (keyAuth !== undefined) result['key-auth'] = { ...keyAuth, hide_credentials: false }
  return result
}

/** A short, stable, DNS-safe digest (for names that must be DNS labels: grant ids are mixed case). */
export function shortDigest(text: string, length = 12): string {
  return createHash('sha256').update(text).digest('hex').slice(0, length)
}

function fingerprint(apiKey: string): string {
  return createHash('sha256').update(apiKey).digest('hex')
}

// ---------------------------------------------------------------------------------------------
// The sync loop
// ---------------------------------------------------------------------------------------------

/** Bookkeeping of the last sync of one gateway, in the system collection `edge_syncs`. */
export interface EdgeSyncRecord extends StoredDocument {
  edge: string
  attempts: number
  nextAttemptAt: number
  syncedAt: string | null
  lastError: { code: string; message: string; at: string; attempts: number } | null
  /** Grants not at the edge for lack of a stored key (rotate them to fix). */
  grantsWithoutKey: string[]
}

export interface EdgeSyncLoopOptions {
  store: Store
  edge: EdgeSync
  /** Desired state of a gateway, or null to remove it (default: `buildGatewayEdgeState`). */
  desiredState(gatewayId: string): Promise<GatewayEdgeState | null>
  clock?: Clock
  backoffBaseMs?: number
  backoffMaxMs?: number
  /** Wait after a change before syncing, so that a burst of changes makes one sync (default 50 ms). */
  debounceMs?: number
  /** Full re-sync of every gateway, to repair drift at the edge (default 5 minutes; 0 = never). */
  resyncIntervalMs?: number
  onError?: (error: ImprunError, gatewayId: string) => void
  onSynced?: (gatewayId: string) => void
}

/**
 * Follows the store and keeps the edge in step: the system feed (gateways, grants, grant keys)
 * and each gateway's feed (environments, deployments, functions) mark gateways dirty; dirty
 * gateways are synced one at a time; a failure is recorded in `edge_syncs` and retried with
 * exponential back-off (base × 2^(attempts-1), capped, ±20 % jitter); a success clears it.
 * At start, and every `resyncIntervalMs`, every gateway is synced, and gateways that exist at
 * the edge but not in the store are removed.
 */
export class EdgeSyncLoop {
  private readonly options: EdgeSyncLoopOptions
  private readonly clock: Clock
  private readonly dirty = new Map<string, number>()
  private readonly gatewayFeeds = new Map<string, ChangeStream>()
  private readonly attempts = new Map<string, number>()
  private abort = new AbortController()
  private readonly idle = new InterruptibleSleep()
  private running: Promise<void> | null = null
  private systemFeed: ChangeStream | null = null
  private following: Promise<void> | null = null
  private lastFullSync = 0

  constructor(options: EdgeSyncLoopOptions) {
    this.options = options
    this.clock = options.clock ?? systemClock
  }

  async start(): Promise<void> {
    if (this.running) return
    this.abort = new AbortController()
    await this.options.store.system().collection('edge_syncs').createIndex({ nextAttemptAt: 1 })
    this.systemFeed = this.options.store.system().watch({ collections: ['gateways', 'grants', 'edge_grant_keys'], signal: this.abort.signal })
    this.following = this.followSystem(this.systemFeed)
    this.running = this.loop(this.abort.signal)
  }

  async stop(): Promise<void> {
    this.abort.abort()
    this.idle.wake()
    await this.systemFeed?.close()
    for (const feed of this.gatewayFeeds.values()) await feed.close()
    this.gatewayFeeds.clear()
    await this.running
    await this.following
    this.running = null
  }

  /** Marks a gateway for a sync soon. */
  markDirty(gatewayId: string, delayMs = this.options.debounceMs ?? 50): void {
    const at = this.clock.now() + delayMs
    const current = this.dirty.get(gatewayId)
    if (current === undefined || at < current) this.dirty.set(gatewayId, at)
    this.idle.wake()
  }

  /** Syncs one gateway now; records the outcome. Resolves false on failure (never throws). */
  async syncGateway(gatewayId: string): Promise<boolean> {
    const records = this.options.store.system().collection<EdgeSyncRecord>('edge_syncs')
    const now = this.clock.now()
    try {
      const desired = await this.options.desiredState(gatewayId)
      if (desired) {
        this.followGateway(gatewayId)
        await this.options.edge.sync(desired)
        await records.replaceOne(
          { _id: gatewayId },
          { edge: this.options.edge.kind, attempts: 0, nextAttemptAt: 0, syncedAt: new Date(now).toISOString(), lastError: null, grantsWithoutKey: desired.grantsWithoutKey },
          { upsert: true },
        )
      } else {
        await this.options.edge.remove(gatewayId)
        await this.unfollowGateway(gatewayId)
        await records.deleteOne({ _id: gatewayId })
      }
      this.attempts.delete(gatewayId)
      this.options.onSynced?.(gatewayId)
      return true
    } catch (thrown) {
      const error = toImprunError(thrown)
      const attempts = (this.attempts.get(gatewayId) ?? 0) + 1
      this.attempts.set(gatewayId, attempts)
      const base = this.options.backoffBaseMs ?? 500
      const max = this.options.backoffMaxMs ?? 60_000
      const delay = Math.round(Math.min(max, base * 2 ** (attempts - 1)) * (0.8 + Math.random() * 0.4))
      this.markDirty(gatewayId, delay)
      this.options.onError?.(error, gatewayId)
      await records
        .updateOne(
          { _id: gatewayId },
          {
            $set: {
              edge: this.options.edge.kind,
              attempts,
              nextAttemptAt: now + delay,
              lastError: { code: error.code, message: error.message, at: new Date(now).toISOString(), attempts },
            },
            $setOnInsert: { syncedAt: null, grantsWithoutKey: [] },
          },
          { upsert: true },
        )
        .catch(() => {})
      return false
    }
  }

  /** Syncs every gateway in the store and removes edge leftovers of gateways that are gone. */
  async syncAll(): Promise<void> {
    this.lastFullSync = this.clock.now()
    const gateways = await this.options.store.system().collection<GatewayRecord>('gateways').find({}, { projection: { _id: 1 } })
    const known = new Set(gateways.map((gateway) => gateway._id))
    for (const gatewayId of known) this.markDirty(gatewayId, 0)
    for (const gatewayId of await this.options.edge.listGateways()) if (!known.has(gatewayId)) this.markDirty(gatewayId, 0)
  }

  private async loop(signal: AbortSignal): Promise<void> {
    let needFullSync = true
    while (!signal.aborted) {
      try {
        const interval = this.options.resyncIntervalMs ?? 300_000
        if (needFullSync || (interval > 0 && this.clock.now() - this.lastFullSync >= interval)) {
          needFullSync = false
          await this.syncAll()
        }
        const now = this.clock.now()
        const due = [...this.dirty].filter(([, at]) => at <= now).map(([gatewayId]) => gatewayId)
        for (const gatewayId of due) {
          if (signal.aborted) return
          this.dirty.delete(gatewayId)
          await this.syncGateway(gatewayId)
        }
      } catch (thrown) {
        // The store failed while listing: report and try the full sync again later.
        needFullSync = true
        this.options.onError?.(toImprunError(thrown), '*')
      }
      const next = Math.min(...this.dirty.values(), this.clock.now() + 1000)
      await this.idle.sleep(Math.max(5, next - this.clock.now()), signal)
    }
  }

  private async followSystem(feed: ChangeStream): Promise<void> {
    try {
      for await (const event of feed) {
        if (event.type === 'reset') {
          await this.syncAll()
          continue
        }
        if (event.collection === 'gateways') this.markDirty(event.id)
        else if (event.collection === 'grants') {
          const gatewayId = event.document?.gatewayId
          if (typeof gatewayId === 'string') this.markDirty(gatewayId)
          else await this.syncAll() // a deleted grant: which gateway is unknown
        } else if (event.collection === 'edge_grant_keys') {
          const grant = await this.options.store.system().collection<GrantRecord>('grants').findOne({ _id: event.id })
          if (grant) this.markDirty(grant.gatewayId)
        }
      }
    } catch {
      // The feed ended (store closed); the periodic full sync still repairs.
    }
  }

  private followGateway(gatewayId: string): void {
    if (this.gatewayFeeds.has(gatewayId) || this.abort.signal.aborted) return
    const feed = this.options.store.gateway(gatewayId).watch({ collections: ['environments', 'deployments', 'functions'], signal: this.abort.signal })
    this.gatewayFeeds.set(gatewayId, feed)
    void (async () => {
      try {
        for await (const event of feed) {
          // Deployments and function plugins do not change the edge objects (four routes, function
          // plugins in the runtime), but a sync is cheap and idempotent and repairs drift.
          void event
          this.markDirty(gatewayId)
        }
      } catch {
        // Database dropped or store closed.
      } finally {
        if (this.gatewayFeeds.get(gatewayId) === feed) this.gatewayFeeds.delete(gatewayId)
      }
    })()
  }

  private async unfollowGateway(gatewayId: string): Promise<void> {
    const feed = this.gatewayFeeds.get(gatewayId)
    this.gatewayFeeds.delete(gatewayId)
    await feed?.close()
  }

}

/**
 * A provisioner that also keeps the edge in step with the gateway's life cycle: `start` syncs
 * the gateway's edge state after the runtimes are up (so Started means reachable through
 * APISIX, and an edge that refuses — CRDs missing, no permission, bad admin key — shows on the
 * gateway's record as the reconciler's lastError); `destroy` removes the gateway from the edge
 * before its namespace, so a deleted gateway leaves no route, upstream or consumer behind even
 * when the edge lives outside the namespace (Admin API, standalone file).
 */
export function withEdge(provisioner: Provisioner, options: { edge: EdgeSync; desiredState(gatewayId: string): Promise<GatewayEdgeState | null> }): Provisioner {
  return {
    kind: provisioner.kind,
    create: (target) => provisioner.create(target),
    async start(target) {
      await provisioner.start(target)
      const desired = await options.desiredState(target.gatewayId)
      if (desired) await options.edge.sync(desired)
    },
    isReady: (target) => provisioner.isReady(target),
    stop: (target) => provisioner.stop(target),
    async destroy(target) {
      await options.edge.remove(target.gatewayId)
      await provisioner.destroy(target)
    },
  }
}

/** Thrown by adapters when the edge refuses what the platform generated (a platform bug). */
export function edgeRejected(message: string, details: Record<string, unknown>): ImprunError {
  return new ImprunError('internal', message, { details, retryable: false })
}
