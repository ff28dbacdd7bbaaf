/**
 * Functions, their immutable versions, and deployments (which version is live on each stage)
 * with a totally ordered history. Publish compiles first and writes nothing when compilation
 * fails, so the previous version keeps serving; every deployment change is one transaction
 * that moves the deployment and appends its history entry together.
 */
import { createHash } from 'node:crypto'
import { ImprunError, notFound } from '../errors.ts'
import type { Clock, CompiledFunction, Compiler, Database, FunctionMetadata, SourceFiles, Stage, Store, StoredDocument } from '../ports.ts'
import type { GatewayService } from './gateways.ts'
import { checkName, functionNameSchema, nextStage, stageSchema, stages } from './names.ts'
import { pluginPatchUpdate, validatePluginConfigs, validatePluginPatch, type PluginConfigs } from './plugins.ts'

export interface FunctionRecord extends StoredDocument {
  name: string
  files: SourceFiles
  plugins: PluginConfigs
  sourceHash: string
  latestVersion: number
  createdAt: string
  updatedAt: string
}

export interface VersionRecord extends StoredDocument {
  function: string
  number: number
  files: SourceFiles
  code: string
  metadata: FunctionMetadata
  sourceHash: string
  message: string
  createdAt: string
}

export interface DeploymentRecord extends StoredDocument {
  stage: Stage
  function: string
  version: number
  versionId: string
  revision: number
  deployedAt: string
}

export type HistoryAction = 'publish' | 'promote' | 'rollback' | 'undeploy'

export interface HistoryRecord extends StoredDocument {
  seq: number
  function: string
  stage: Stage
  action: HistoryAction
  fromVersion: number | null
  toVersion: number | null
  sourceStage: Stage | null
  at: string
}

export interface FunctionSummary {
  name: string
  latestVersion: number
  deployed: Partial<Record<Stage, number>>
  updatedAt: string
}

export interface FunctionDetail extends FunctionSummary {
  files: SourceFiles
  plugins: PluginConfigs
  createdAt: string
  /** Whether the draft differs from the latest version. */
  draftChanged: boolean
}

export interface VersionSummary {
  number: number
  sourceHash: string
  message: string
  description: string
  createdAt: string
}

export interface DeploymentChange {
  function: string
  stage: Stage
  action: HistoryAction
  fromVersion: number | null
  toVersion: number | null
  /** False when the stage already ran that version: nothing was written. */
  changed: boolean
  seq: number | null
}

/** A live function of one environment with what tools and routers need, without its code. */
export interface LiveFunction {
  name: string
  version: number
  versionId: string
  metadata: FunctionMetadata
  plugins: PluginConfigs
}

export const sourceLimits = {
  files: 64,
  totalBytes: 1024 * 1024,
  pathPattern: /^[A-Za-z0-9_][A-Za-z0-9_.-]*(\/[A-Za-z0-9_][A-Za-z0-9_.-]*)*\.(ts|mts|js|mjs|json)$/,
} as const

export interface FunctionServiceOptions {
  store: Store
  clock: Clock
  compiler: Compiler
  gateways: GatewayService
}

export class FunctionService {
  private readonly store: Store
  private readonly clock: Clock
  private readonly compiler: Compiler
  private readonly gateways: GatewayService
  private readonly indexed = new Map<string, Promise<void>>()

  constructor(options: FunctionServiceOptions) {
    this.store = options.store
    this.clock = options.clock
    this.compiler = options.compiler
    this.gateways = options.gateways
  }

  /**
   * The indexes the lookups below rely on (a gateway's versions by function: without it every
   * publish reads every version, and publishing slows as the gateway grows). Once per gateway
   * and process; idempotent.
   */
  private ensureIndexes(gateway: { _id: string; createdAt: string }): Promise<void> {
    // Keyed by creation time too: a deleted and re-created gateway has a new, empty database.
    const key = `${gateway._id}@${gateway.createdAt}`
    let ready = this.indexed.get(key)
    if (!ready) {
      const database = this.store.gateway(gateway._id)
      ready = (async () => {
        await database.collection('versions').createIndex({ function: 1 })
        await database.collection('history').createIndex({ function: 1 })
        await database.collection('deployments').createIndex({ function: 1 })
      })()
      ready.catch(() => this.indexed.delete(key))
      this.indexed.set(key, ready)
    }
    return ready
  }

  /** Creates or replaces a function's draft. `files` must contain `index.ts`. */
  async write(gatewayId: string, name: string, input: { files: SourceFiles; plugins?: unknown }): Promise<FunctionDetail> {
    await this.ensureIndexes(await this.gateways.usable(gatewayId))
    const checkedName = checkName(functionNameSchema, name, 'function name')
    const files = checkFiles(input.files)
    const plugins = input.plugins === undefined ? undefined : validatePluginConfigs(input.plugins)
    const now = this.isoNow()
    const set: Record<string, unknown> = { files, sourceHash: hashFiles(files), updatedAt: now }
    if (plugins) set.plugins = plugins
    const setOnInsert: Record<string, unknown> = { name: checkedName, latestVersion: 0, createdAt: now }
    if (!plugins) setOnInsert.plugins = {}
    await this.functions(gatewayId).updateOne({ _id: checkedName }, { $set: set, $setOnInsert: setOnInsert }, { upsert: true })
    return this.get(gatewayId, checkedName)
  }

  async setPlugins(gatewayId: string, name: string, plugins: unknown): Promise<FunctionDetail> {
    await this.gateways.usable(gatewayId)
    const validated = validatePluginConfigs(plugins)
    const result = await this.functions(gatewayId).updateOne(
      { _id: name },
      { $set: { plugins: validated, updatedAt: this.isoNow() } },
    )
    if (result.matchedCount === 0) throw notFound('function', name)
    return this.get(gatewayId, name)
  }

  /**
   * Merges into a function's plugins: a named plugin's conf is replaced whole, null removes it,
   * plugins not named are kept. One atomic write; an empty patch changes nothing.
   */
  async patchPlugins(gatewayId: string, name: string, patch: unknown): Promise<FunctionDetail> {
    await this.gateways.usable(gatewayId)
    const validated = validatePluginPatch(patch)
    if (Object.keys(validated).length === 0) return this.get(gatewayId, name)
    const result = await this.functions(gatewayId).updateOne(
      { _id: name },
      pluginPatchUpdate('plugins', validated, { updatedAt: this.isoNow() }),
    )
    if (result.matchedCount === 0) throw notFound('function', name)
    return this.get(gatewayId, name)
  }

  async get(gatewayId: string, name: string): Promise<FunctionDetail> {
    await this.gateways.record(gatewayId)
    const record = await this.functions(gatewayId).findOne({ _id: name })
    if (!record) throw notFound('function', name)
    const deployments = await this.deploymentsOf(gatewayId, [name])
    const latest = await this.latestVersion(this.store.gateway(gatewayId), name)
    return {
      ...summarize(record, deployments),
      files: record.files,
      plugins: record.plugins,
      createdAt: record.createdAt,
      draftChanged: latest?.sourceHash !== record.sourceHash,
    }
  }

  async list(gatewayId: string): Promise<FunctionSummary[]> {
    await this.gateways.record(gatewayId)
    const records = await this.functions(gatewayId).find({}, { sort: { _id: 1 }, projection: { files: 0 } })
    const deployments = await this.deploymentsOf(gatewayId)
    return records.map((record) => summarize(record, deployments))
  }

  /** Removes a function, its versions and its deployments (recorded as undeploys). */
  async delete(gatewayId: string, name: string): Promise<DeploymentChange[]> {
    await this.gateways.usable(gatewayId)
    if (!(await this.functions(gatewayId).findOne({ _id: name }))) throw notFound('function', name)
    return this.store.gateway(gatewayId).transaction(async (database) => {
      const changes: DeploymentChange[] = []
      for (const deployment of await database.collection<DeploymentRecord>('deployments').find({ function: name })) {
        changes.push(await this.moveDeployment(database, name, deployment.stage, null, 'undeploy', null))
      }
      await database.collection('versions').deleteMany({ function: name })
      await database.collection('functions').deleteOne({ _id: name })
      return changes
    })
  }

  /**
   * Compiles the current draft without storing anything: for test runs before publishing.
   * Fails like publish does (`compile_failed` with diagnostics).
   */
  async compileDraft(gatewayId: string, name: string): Promise<CompiledFunction> {
    await this.gateways.record(gatewayId)
    const record = await this.functions(gatewayId).findOne({ _id: name })
    if (!record) throw notFound('function', name)
    return this.compiler.compile({
      gatewayId,
      name,
      files: record.files,
      resolveFunction: async (other) => (await this.functions(gatewayId).findOne({ _id: other }))?.files ?? null,
    })
  }

  /**
   * Compiles the draft and deploys it to `stage` (default dev). Identical source reuses the
   * latest version instead of creating a new one. With the gateway's pipeline on, only dev
   * can be published to; later stages are reached by promotion.
   */
  async publish(gatewayId: string, name: string, options: { stage?: Stage; message?: string } = {}): Promise<DeploymentChange & { version: VersionSummary; created: boolean }> {
    const gateway = await this.gateways.usable(gatewayId)
    await this.ensureIndexes(gateway)
    const stage = checkName(stageSchema, options.stage ?? 'dev', 'stage')
    if (gateway.pipeline && stage !== 'dev') {
      throw new ImprunError('promotion_order', `gateway '${gatewayId}' has its promotion pipeline on: publish to dev, then promote to ${stage}`, {
        details: { stage },
      })
    }
    const record = await this.functions(gatewayId).findOne({ _id: name })
    if (!record) throw notFound('function', name)
    const compiled = await this.compiler.compile({
      gatewayId,
      name,
      files: record.files,
      resolveFunction: async (other) => (await this.functions(gatewayId).findOne({ _id: other }))?.files ?? null,
    })
    return this.store.gateway(gatewayId).transaction(async (database) => {
      const versions = database.collection<VersionRecord>('versions')
      const latest = await this.latestVersion(database, name)
      let version = latest
      let created = false
      if (!latest || latest.sourceHash !== record.sourceHash) {
        version = await versions.insertOne({
          _id: `${name}@${(latest?.number ?? 0) + 1}`,
          function: name,
          number: (latest?.number ?? 0) + 1,
          files: record.files,
          code: compiled.code,
          metadata: compiled.metadata,
          sourceHash: record.sourceHash,
          message: options.message ?? '',
          createdAt: this.isoNow(),
        })
        created = true
        await database.collection<FunctionRecord>('functions').updateOne({ _id: name }, { $set: { latestVersion: version.number } })
      }
      const change = await this.moveDeployment(database, name, stage, version!, 'publish', null)
      return { ...change, version: summarizeVersion(version!), created }
    })
  }

  /** Deploys exactly the version live on `from` to the next stage (or `to` without pipeline). */
  async promote(gatewayId: string, name: string, options: { from: Stage; to?: Stage }): Promise<DeploymentChange> {
    const gateway = await this.gateways.usable(gatewayId)
    const from = checkName(stageSchema, options.from, 'stage')
    const next = nextStage(from)
    const to = options.to === undefined ? next : checkName(stageSchema, options.to, 'stage')
    if (!to || to === from) {
      throw new ImprunError('promotion_order', `there is no stage after ${from} to promote to`)
    }
    if (gateway.pipeline && to !== next) {
      throw new ImprunError('promotion_order', `the promotion pipeline goes ${stages.join(' → ')}: ${from} promotes to ${next ?? 'nothing'}, not ${to}`, {
        details: { from, to },
      })
    }
    return this.store.gateway(gatewayId).transaction(async (database) => {
      const source = await database.collection<DeploymentRecord>('deployments').findOne({ _id: deploymentId(from, name) })
      if (!source) throw new ImprunError('invalid_state', `function '${name}' is not deployed on ${from}`, { details: { stage: from } })
      const version = await database.collection<VersionRecord>('versions').findOne({ _id: source.versionId })
      if (!version) throw notFound('version', source.versionId)
      return this.moveDeployment(database, name, to, version, 'promote', from)
    })
  }

  /** Points `stage` at another existing version (default: the one live before the current). */
  async rollback(gatewayId: string, name: string, options: { stage: Stage; version?: number }): Promise<DeploymentChange> {
    await this.gateways.usable(gatewayId)
    const stage = checkName(stageSchema, options.stage, 'stage')
    return this.store.gateway(gatewayId).transaction(async (database) => {
      const current = await database.collection<DeploymentRecord>('deployments').findOne({ _id: deploymentId(stage, name) })
      let target = options.version
      if (target === undefined) {
        if (!current) throw new ImprunError('invalid_state', `function '${name}' is not deployed on ${stage}`)
        const earlier = await database
          .collection<HistoryRecord>('history')
          .find({ function: name, stage, toVersion: { $ne: current.version, $type: 'number' } }, { sort: { seq: -1 }, limit: 1 })
        if (!earlier[0]) throw new ImprunError('invalid_state', `function '${name}' has no earlier version on ${stage} to roll back to`)
        target = earlier[0].toVersion!
      }
      const version = await database.collection<VersionRecord>('versions').findOne({ _id: `${name}@${target}` })
      if (!version) throw notFound('version', `${name}@${target}`)
      return this.moveDeployment(database, name, stage, version, 'rollback', null)
    })
  }

  async undeploy(gatewayId: string, name: string, stage: Stage): Promise<DeploymentChange> {
    await this.gateways.usable(gatewayId)
    const checked = checkName(stageSchema, stage, 'stage')
    return this.store.gateway(gatewayId).transaction((database) => this.moveDeployment(database, name, checked, null, 'undeploy', null))
  }

  async versions(gatewayId: string, name: string): Promise<VersionSummary[]> {
    await this.gateways.record(gatewayId)
    const list = await this.store
      .gateway(gatewayId)
      .collection<VersionRecord>('versions')
      .find({ function: name }, { sort: { number: -1 }, projection: { code: 0, files: 0 } })
    if (list.length === 0 && !(await this.functions(gatewayId).findOne({ _id: name }))) throw notFound('function', name)
    return list.map(summarizeVersion)
  }

  async version(gatewayId: string, name: string, number: number): Promise<VersionRecord> {
    await this.gateways.record(gatewayId)
    const version = await this.store.gateway(gatewayId).collection<VersionRecord>('versions').findOne({ _id: `${name}@${number}` })
    if (!version) throw notFound('version', `${name}@${number}`)
    return version
  }

  async history(gatewayId: string, query: { function?: string; stage?: Stage; limit?: number } = {}): Promise<HistoryRecord[]> {
    await this.gateways.record(gatewayId)
    const filter: Record<string, unknown> = {}
    if (query.function) filter.function = query.function
    if (query.stage) filter.stage = checkName(stageSchema, query.stage, 'stage')
    return this.store
      .gateway(gatewayId)
      .collection<HistoryRecord>('history')
      .find(filter, { sort: { seq: -1 }, limit: Math.min(query.limit ?? 100, 1000) })
  }

  /** The functions live on one environment, with metadata and plugins, without code. */
  async live(gatewayId: string, stage: Stage): Promise<LiveFunction[]> {
    const database = this.store.gateway(gatewayId)
    const deployments = await database.collection<DeploymentRecord>('deployments').find({ stage }, { sort: { function: 1 } })
    if (deployments.length === 0) return []
    const versions = await database
      .collection<VersionRecord>('versions')
      .find({ _id: { $in: deployments.map((deployment) => deployment.versionId) } }, { projection: { code: 0, files: 0 } })
    const functions = await database
      .collection<FunctionRecord>('functions')
      .find({ _id: { $in: deployments.map((deployment) => deployment.function) } }, { projection: { files: 0 } })
    const metadata = new Map(versions.map((version) => [version._id, version.metadata]))
    const plugins = new Map(functions.map((record) => [record._id, record.plugins]))
    return deployments.map((deployment) => ({
      name: deployment.function,
      version: deployment.version,
      versionId: deployment.versionId,
      metadata: metadata.get(deployment.versionId) ?? { description: '', inputSchema: null, outputSchema: null },
      plugins: plugins.get(deployment.function) ?? {},
    }))
  }

  // --- internals ------------------------------------------------------------------------------

  /** Moves one deployment and appends its history entry, inside the caller's transaction. */
  private async moveDeployment(
    database: Database,
    name: string,
    stage: Stage,
    version: VersionRecord | null,
    action: HistoryAction,
    sourceStage: Stage | null,
  ): Promise<DeploymentChange> {
    const deployments = database.collection<DeploymentRecord>('deployments')
    const id = deploymentId(stage, name)
    const current = await deployments.findOne({ _id: id })
    const fromVersion = current?.version ?? null
    const toVersion = version?.number ?? null
    if (fromVersion === toVersion) {
      if (action === 'undeploy' && !current) throw new ImprunError('invalid_state', `function '${name}' is not deployed on ${stage}`)
      return { function: name, stage, action, fromVersion, toVersion, changed: false, seq: null }
    }
    const now = this.isoNow()
    if (version) {
      const result = await deployments.updateOne(
        { _id: id },
        {
          $set: { stage, function: name, version: version.number, versionId: version._id, deployedAt: now },
          $inc: { revision: 1 },
        },
        { upsert: true },
      )
      if (result.matchedCount === 0 && result.upsertedId === null) throw new ImprunError('conflict', `deployment ${id} changed concurrently`)
    } else {
      await deployments.deleteOne({ _id: id })
    }
    const counter = await database
      .collection<StoredDocument & { value: number }>('counters')
      .findOneAndUpdate({ _id: 'history' }, { $inc: { value: 1 } }, { upsert: true, returnDocument: 'after' })
    const seq = counter!.value
    await database.collection<HistoryRecord>('history').insertOne({
      _id: String(seq).padStart(12, '0'),
      seq,
      function: name,
      stage,
      action,
      fromVersion,
      toVersion,
      sourceStage,
      at: now,
    })
    return { function: name, stage, action, fromVersion, toVersion, changed: true, seq }
  }

  private functions(gatewayId: string) {
    return this.store.gateway(gatewayId).collection<FunctionRecord>('functions')
  }

  private async latestVersion(database: Database, name: string): Promise<VersionRecord | null> {
    // By id: the function record holds the highest number (written in the publish transaction
    // that creates the version), so publish does not read and sort every version ever made.
    const record = await database.collection<FunctionRecord>('functions').findOne({ _id: name }, { projection: { latestVersion: 1 } })
    if (record?.latestVersion) {
      const byId = await database.collection<VersionRecord>('versions').findOne({ _id: `${name}@${record.latestVersion}` }, { projection: { code: 0 } })
      if (byId) return byId
    }
    const [latest] = await database
      .collection<VersionRecord>('versions')
      .find({ function: name }, { sort: { number: -1 }, limit: 1, projection: { code: 0 } })
    return latest ?? null
  }

  private async deploymentsOf(gatewayId: string, names?: string[]): Promise<DeploymentRecord[]> {
    // By id (stage:name), which every store answers from its primary key.
    const filter = names ? { _id: { $in: names.flatMap((name) => stages.map((stage) => deploymentId(stage, name))) } } : {}
    return this.store.gateway(gatewayId).collection<DeploymentRecord>('deployments').find(filter)
  }

  private isoNow(): string {
    return new Date(this.clock.now()).toISOString()
  }
}

export function deploymentId(stage: Stage, name: string): string {
  return `${stage}:${name}`
}

/** sha256 over the files in path order, so the same source always hashes the same. */
export function hashFiles(files: SourceFiles): string {
  const hash = createHash('sha256')
  for (const path of Object.keys(files).sort()) hash.update(`${path}\0${files[path]}\0`)
  return hash.digest('hex')
}

function checkFiles(files: unknown): SourceFiles {
  if (files === null || typeof files !== 'object' || Array.isArray(files)) {
    throw new ImprunError('bad_request', 'files must be an object of path → source text')
  }
  const entries = Object.entries(files)
  if (entries.length === 0 || !('index.ts' in files)) throw new ImprunError('bad_request', 'files must contain index.ts, the entry point')
  if (entries.length > sourceLimits.files) throw new ImprunError('bad_request', `at most ${sourceLimits.files} files`)
  let total = 0
  for (const [path, text] of entries) {
    if (!sourceLimits.pathPattern.test(path) || path.split('/').some((part) => part === '..' || part === '.')) {
      throw new ImprunError('bad_request', `invalid file path '${path}': relative, / separated, ending in .ts, .mts, .js, .mjs or .json`)
    }
    if (typeof text !== 'string') throw new ImprunError('bad_request', `file '${path}' must be text`)
    total += Buffer.byteLength(text)
  }
  if (total > sourceLimits.totalBytes) {
    throw new ImprunError('body_too_large', `source is ${total} bytes; at most ${sourceLimits.totalBytes}`)
  }
  return Object.fromEntries(entries) as SourceFiles
}

function summarize(record: FunctionRecord, deployments: DeploymentRecord[]): FunctionSummary {
  const deployed: Partial<Record<Stage, number>> = {}
  for (const deployment of deployments) if (deployment.function === record._id) deployed[deployment.stage] = deployment.version
  return { name: record._id, latestVersion: record.latestVersion, deployed, updatedAt: record.updatedAt }
}

function summarizeVersion(version: VersionRecord): VersionSummary {
  return {
    number: version.number,
    sourceHash: version.sourceHash,
    message: version.message,
    description: version.metadata?.description ?? '',
    createdAt: version.createdAt,
  }
}
