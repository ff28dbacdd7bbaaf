/**
 * Gateways (tenants) and their environments. A gateway has a desired `state` and an observed
 * `phase` that only the reconciler moves; the API changes `state` and wakes the reconciler.
 */
import { ImprunError, alreadyExists, notFound } from '../errors.ts'
import type { Clock, Database, Stage, Store, StoredDocument } from '../ports.ts'
import { checkName, gatewayIdSchema, stageSchema, stages } from './names.ts'
import { pluginPatchUpdate, validatePluginConfigs, validatePluginPatch, type PluginConfigs } from './plugins.ts'

export type GatewayState = 'Running' | 'Stopped' | 'Deleted'
export type GatewayPhase =
  | 'Creating'
  | 'Created'
  | 'Starting'
  | 'Started'
  | 'Stopping'
  | 'Stopped'
  | 'Deleting'
  | 'Deleted'

export interface ReconcileError {
  code: string
  message: string
  at: string
  attempts: number
}

export interface GatewayRecord extends StoredDocument {
  description: string
  state: GatewayState
  phase: GatewayPhase
  /** When on, promotion must follow dev → staging → prod and publish goes to dev only. */
  pipeline: boolean
  plugins: PluginConfigs
  createdAt: string
  updatedAt: string
  /** Reconciler bookkeeping. */
  lockedAt: number | null
  lockedBy: string | null
  attempts: number
  nextAttemptAt: number
  lastError: ReconcileError | null
}

export interface EnvironmentRecord extends StoredDocument {
  stage: Stage
  plugins: PluginConfigs
  createdAt: string
  updatedAt: string
}

export interface Gateway {
  id: string
  description: string
  state: GatewayState
  phase: GatewayPhase
  pipeline: boolean
  plugins: PluginConfigs
  environments: Array<{ stage: Stage; plugins: PluginConfigs }>
  lastError: ReconcileError | null
  createdAt: string
  updatedAt: string
}

export interface CreateGatewayInput {
  id: string
  description?: string
  pipeline?: boolean
  plugins?: unknown
}

/** The phase a gateway rests in for each desired state; any other phase needs the reconciler. */
export const restingPhase: Record<GatewayState, GatewayPhase> = {
  Running: 'Started',
  Stopped: 'Stopped',
  Deleted: 'Deleted',
}

/** Filter for gateways whose phase does not yet match their state. */
export const gatewayNeedsWork = {
  $nor: [
    { state: 'Running', phase: 'Started' },
    { state: 'Stopped', phase: 'Stopped' },
    { state: 'Deleted', phase: 'Deleted' },
  ],
}

export interface GatewayServiceOptions {
  store: Store
  clock: Clock
  /** Called after a change that the reconciler should act on. */
  wake?: () => void
}

export class GatewayService {
  private readonly store: Store
  private readonly clock: Clock
  private readonly wake: () => void

  constructor(options: GatewayServiceOptions) {
    this.store = options.store
    this.clock = options.clock
    this.wake = options.wake ?? (() => {})
  }

  private get gateways() {
    return this.store.system().collection<GatewayRecord>('gateways')
  }

  async create(input: CreateGatewayInput): Promise<Gateway> {
    const id = checkName(gatewayIdSchema, input.id, 'gateway id')
    const plugins = validatePluginConfigs(input.plugins ?? {})
    const now = new Date(this.clock.now()).toISOString()
    const record: GatewayRecord = {
      _id: id,
      description: input.description ?? '',
      state: 'Running',
      phase: 'Creating',
      pipeline: input.pipeline ?? true,
      plugins,
      createdAt: now,
      updatedAt: now,
      lockedAt: null,
      lockedBy: null,
      attempts: 0,
      nextAttemptAt: 0,
      lastError: null,
    }
    const existing = await this.gateways.findOne({ _id: id })
    if (existing && existing.phase !== 'Deleted') throw alreadyExists('gateway', id)
    if (existing) {
      // A deleted gateway's id may be reused: replace the tombstone only if it is still one.
      const { _id, ...fields } = record
      const replaced = await this.gateways.replaceOne({ _id: id, phase: 'Deleted' }, fields)
      if (replaced.matchedCount === 0) throw alreadyExists('gateway', id)
    } else {
      await this.gateways.insertOne(record)
    }
    await ensureEnvironments(this.store.gateway(id), now)
    this.wake()
    return this.get(id)
  }

  async list(): Promise<Gateway[]> {
    const records = await this.gateways.find({ phase: { $ne: 'Deleted' } }, { sort: { _id: 1 } })
    return Promise.all(records.map((record) => this.present(record)))
  }

  async get(id: string): Promise<Gateway> {
    return this.present(await this.record(id))
  }

  /** The stored record; `not_found` for unknown and deleted gateways. */
  async record(id: string): Promise<GatewayRecord> {
    const record = await this.gateways.findOne({ _id: id })
    if (!record || record.phase === 'Deleted') throw notFound('gateway', id)
    return record
  }

  /** True when `id` names a gateway that was deleted (its tombstone is kept until the id is reused). */
  async isDeleted(id: string): Promise<boolean> {
    const record = await this.gateways.findOne({ _id: id })
    return record?.phase === 'Deleted'
  }

  /** Like `record` but also refuses gateways that are being deleted. */
  async usable(id: string): Promise<GatewayRecord> {
    const record = await this.record(id)
    if (record.state === 'Deleted') {
      throw new ImprunError('invalid_state', `gateway '${id}' is being deleted`, { details: { phase: record.phase } })
    }
    return record
  }

  /**
   * Changes description, pipeline and gateway-level plugins in one write: `plugins` replaces the
   * whole set, `pluginPatch` merges into it (see patchPlugins); not both.
   */
  async update(id: string, changes: { description?: string; pipeline?: boolean; plugins?: unknown; pluginPatch?: unknown }): Promise<Gateway> {
    await this.usable(id)
    if (changes.plugins !== undefined && changes.pluginPatch !== undefined) {
      throw new ImprunError('bad_request', 'give plugins (the whole set) or a plugin patch, not both')
    }
    const set: Record<string, unknown> = { updatedAt: new Date(this.clock.now()).toISOString() }
    if (changes.description !== undefined) set.description = changes.description
    if (changes.pipeline !== undefined) set.pipeline = changes.pipeline
    if (changes.plugins !== undefined) set.plugins = validatePluginConfigs(changes.plugins)
    const update = changes.pluginPatch === undefined ? { $set: set } : pluginPatchUpdate('plugins', validatePluginPatch(changes.pluginPatch), set)
    const result = await this.gateways.updateOne({ _id: id, state: { $ne: 'Deleted' } }, update)
    if (result.matchedCount === 0) throw notFound('gateway', id)
    return this.get(id)
  }

  /**
   * Merges into the gateway-level plugins: a named plugin's conf is replaced whole, null removes
   * it, plugins not named are kept. One atomic write; an empty patch changes nothing.
   */
  async patchPlugins(id: string, patch: unknown): Promise<Gateway> {
    await this.usable(id)
    const validated = validatePluginPatch(patch)
    if (Object.keys(validated).length === 0) return this.get(id)
    const update = pluginPatchUpdate('plugins', validated, { updatedAt: new Date(this.clock.now()).toISOString() })
    const result = await this.gateways.updateOne({ _id: id, state: { $ne: 'Deleted' } }, update)
    if (result.matchedCount === 0) throw notFound('gateway', id)
    return this.get(id)
  }

  async setState(id: string, state: GatewayState): Promise<Gateway> {
    const record = await this.record(id)
    if (record.state === 'Deleted' && state !== 'Deleted') {
      throw new ImprunError('invalid_state', `gateway '${id}' is being deleted and cannot be ${state.toLowerCase()}`)
    }
    if (record.state !== state) {
      const result = await this.gateways.updateOne(
        { _id: id, state: record.state },
        // A new desired state deserves a fresh start: no back-off inherited from the old one.
        { $set: { state, updatedAt: new Date(this.clock.now()).toISOString(), attempts: 0, nextAttemptAt: 0 } },
      )
      if (result.matchedCount === 0) {
        throw new ImprunError('conflict', `gateway '${id}' changed concurrently; try again`, { retryable: true })
      }
      this.wake()
    }
    return this.get(id)
  }

  start(id: string): Promise<Gateway> {
    return this.setState(id, 'Running')
  }

  stop(id: string): Promise<Gateway> {
    return this.setState(id, 'Stopped')
  }

  delete(id: string): Promise<Gateway> {
    return this.setState(id, 'Deleted')
  }

  async environment(id: string, stage: Stage): Promise<EnvironmentRecord> {
    await this.record(id)
    const checked = checkName(stageSchema, stage, 'stage')
    const record = await this.store.gateway(id).collection<EnvironmentRecord>('environments').findOne({ _id: checked })
    if (!record) throw notFound('environment', `${id}/${checked}`)
    return record
  }

  async setEnvironmentPlugins(id: string, stage: Stage, plugins: unknown): Promise<EnvironmentRecord> {
    await this.usable(id)
    const checked = checkName(stageSchema, stage, 'stage')
    const validated = validatePluginConfigs(plugins)
    const environments = this.store.gateway(id).collection<EnvironmentRecord>('environments')
    const updated = await environments.findOneAndUpdate(
      { _id: checked },
      { $set: { plugins: validated, updatedAt: new Date(this.clock.now()).toISOString() } },
    )
    if (!updated) throw notFound('environment', `${id}/${checked}`)
    return updated
  }

  /**
   * Merges into one environment's plugins: a named plugin's conf is replaced whole, null removes
   * it, plugins not named are kept. One atomic write, so concurrent patches of different plugins
   * all survive; an empty patch changes nothing and returns the environment as it is.
   */
  async patchEnvironmentPlugins(id: string, stage: Stage, patch: unknown): Promise<EnvironmentRecord> {
    await this.usable(id)
    const checked = checkName(stageSchema, stage, 'stage')
    const validated = validatePluginPatch(patch)
    if (Object.keys(validated).length === 0) return this.environment(id, checked)
    const environments = this.store.gateway(id).collection<EnvironmentRecord>('environments')
    const updated = await environments.findOneAndUpdate(
      { _id: checked },
      pluginPatchUpdate('plugins', validated, { updatedAt: new Date(this.clock.now()).toISOString() }),
    )
    if (!updated) throw notFound('environment', `${id}/${checked}`)
    return updated
  }

  private async present(record: GatewayRecord): Promise<Gateway> {
    // A gateway being deleted has its database dropped by the reconciler at any moment: reading
    // it could fail mid-drop or open a fresh empty file after it. Its environments show no plugins.
    const environments =
      record.state === 'Deleted'
        ? []
        : await this.store.gateway(record._id).collection<EnvironmentRecord>('environments').find({}, { sort: { createdAt: 1 } })
    const byStage = new Map(environments.map((environment) => [environment.stage, environment]))
    return {
      id: record._id,
      description: record.description,
      state: record.state,
      phase: record.phase,
      pipeline: record.pipeline,
      plugins: record.plugins,
      environments: stages.map((stage) => ({ stage, plugins: byStage.get(stage)?.plugins ?? {} })),
      lastError: record.lastError,
      createdAt: record.createdAt,
      updatedAt: record.updatedAt,
    }
  }
}

/** Creates the three environments and the gateway database's indexes. Idempotent. */
export async function ensureEnvironments(database: Database, now: string): Promise<void> {
  const environments = database.collection<EnvironmentRecord>('environments')
  for (const stage of stages) {
    await environments.updateOne(
      { _id: stage },
      // prod starts protected: only grant keys get in until its plugins say otherwise.
      { $setOnInsert: { stage, plugins: stage === 'prod' ? validatePluginConfigs({ 'key-auth': { hide_credentials: true } }) : {}, createdAt: now, updatedAt: now } },
      { upsert: true },
    )
  }
  await database.collection('versions').createIndex({ function: 1, number: 1 }, { unique: true })
  await database.collection('deployments').createIndex({ stage: 1 })
  await database.collection('history').createIndex({ function: 1 })
}
