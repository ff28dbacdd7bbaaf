/**
 * LLM providers, model aliases and token usage for the chat gateway, in the system database.
 *
 * - A provider is one upstream endpoint: kind (openai | anthropic | ollama), base URL, API key
 *   (sealed with the SecretBox; never returned — only whether one is set and a short preview),
 *   a per-request timeout.
 * - A model alias is the name clients put in `model`: it names a provider, that provider's model
 *   id, and other aliases to fall back to, in order, when the first fails with 429/5xx/timeout.
 *   A name that is no alias but `<provider>/<model>` addresses a provider's model directly.
 * - Usage is counted per day × application × environment × alias × provider model with `$inc`,
 *   batched in memory for up to a second, so the collection grows with distinct combinations,
 *   not requests, and no durable write sits on a chat request's path.
 */
import { z } from 'zod'
import { ImprunError, alreadyExists, notFound } from '../errors.ts'
import { systemClock, type Clock, type SecretBox, type Stage, type Store, type StoredDocument } from '../ports.ts'
import { checkName } from './names.ts'

export const providerKinds = ['openai', 'anthropic', 'ollama'] as const
export type ProviderKind = (typeof providerKinds)[number]

export const providerIdSchema = z
  .string()
  .min(1)
  .max(40)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'a provider id is lower-case letters, digits and -, starting and ending with a letter or digit')
  .describe('Provider id, e.g. openai or local-ollama')

export const modelAliasSchema = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:-]*$/, 'a model alias is letters, digits and . _ : -, starting with a letter or digit')
  .describe('The model name clients send, e.g. gpt-4o-mini or fast')

const baseUrlSchema = z
  .url({ protocol: /^https?$/, error: 'baseUrl must be an http(s) URL' })
  .describe('Provider API base URL (OpenAI: …/v1; Anthropic: without /v1; Ollama: host root)')

export const createProviderBody = z
  .object({
    id: providerIdSchema,
    kind: z.enum(providerKinds).describe('Wire protocol of the provider'),
    baseUrl: baseUrlSchema.optional().describe('Default: the vendor’s public endpoint (Ollama: http://127.0.0.1:11434)'),
    apiKey: z.string().min(1).max(4096).optional().describe('Stored sealed; never shown again'),
    timeoutMs: z.number().int().min(100).max(600_000).optional().describe('Per upstream request until the answer starts (default 60000)'),
  })
  .strict()
export type CreateProviderInput = z.infer<typeof createProviderBody>

export const updateProviderBody = z
  .object({
    baseUrl: baseUrlSchema.optional(),
    apiKey: z.string().min(1).max(4096).nullable().optional().describe('New key; null removes it'),
    timeoutMs: z.number().int().min(100).max(600_000).optional(),
  })
  .strict()
export type UpdateProviderInput = z.infer<typeof updateProviderBody>

export const setModelBody = z
  .object({
    provider: providerIdSchema,
    model: z.string().min(1).max(256).describe("The provider's model id"),
    fallbacks: z.array(modelAliasSchema).max(8).optional().describe('Aliases tried in order when this one fails with 429/5xx/timeout'),
  })
  .strict()
export type SetModelInput = z.infer<typeof setModelBody>

/** Where each provider kind is reached when no base URL is given. */
export const defaultBaseUrls: Record<ProviderKind, string> = {
  openai: 'https://api.openai.com/v1',
  anthropic: 'https://api.anthropic.com',
  ollama: 'http://127.0.0.1:11434',
}

export interface ProviderRecord extends StoredDocument {
  kind: ProviderKind
  baseUrl: string
  apiKeySealed: string | null
  apiKeyPreview: string | null
  timeoutMs: number
  createdAt: string
  updatedAt: string
}

export interface ModelRecord extends StoredDocument {
  provider: string
  model: string
  fallbacks: string[]
  createdAt: string
  updatedAt: string
}

export interface UsageRecord extends StoredDocument {
  day: string
  applicationId: string
  gatewayId: string
  stage: Stage
  alias: string
  provider: string
  model: string
  requests: number
  inputTokens: number
  outputTokens: number
}

/** A provider as the admin API shows it: the key only as a preview. */
export interface Provider {
  id: string
  kind: ProviderKind
  baseUrl: string
  apiKeySet: boolean
  apiKeyPreview: string | null
  timeoutMs: number
  createdAt: string
  updatedAt: string
}

export interface ModelAlias {
  alias: string
  provider: string
  model: string
  fallbacks: string[]
  createdAt: string
  updatedAt: string
}

/** What the gateway needs to call one provider model (key opened). */
export interface ResolvedTarget {
  alias: string
  provider: { id: string; kind: ProviderKind; baseUrl: string; apiKey: string | null; timeoutMs: number; updatedAt: string }
  model: string
}

export interface UsageEntry {
  application: string
  gatewayId: string
  stage: Stage
  alias: string
  provider: string
  model: string
  requests: number
  inputTokens: number
  outputTokens: number
}

export interface UsageQuery {
  applicationId?: string
  /** Inclusive days, YYYY-MM-DD. */
  from?: string
  to?: string
}

export interface ProviderServiceOptions {
  store: Store
  secretBox: SecretBox
  clock?: Clock
  /** How long resolved aliases are cached; writes through this service clear it at once. */
  cacheMs?: number
  /** How long usage counts are summed in memory before they are written (default 1000 ms). */
  usageFlushMs?: number
}

/** One model call's tokens, as the gateway reports it. */
export interface UsageEvent {
  applicationId: string
  gatewayId: string
  stage: Stage
  alias: string
  provider: string
  model: string
  inputTokens: number
  outputTokens: number
}

export class ProviderService {
  private readonly store: Store
  private readonly secretBox: SecretBox
  private readonly clock: Clock
  private readonly cacheMs: number
  private readonly cache = new Map<string, { at: number; chain: ResolvedTarget[] | null }>()
  private readonly usageFlushMs: number
  private readonly pendingUsage = new Map<string, UsageEvent & { day: string; requests: number }>()
  private usageTimer: NodeJS.Timeout | null = null

  constructor(options: ProviderServiceOptions) {
    this.store = options.store
    this.secretBox = options.secretBox
    this.clock = options.clock ?? systemClock
    this.cacheMs = options.cacheMs ?? 2000
    this.usageFlushMs = options.usageFlushMs ?? 1000
  }

  private get providers() {
    return this.store.system().collection<ProviderRecord>('chat_providers')
  }

  private get models() {
    return this.store.system().collection<ModelRecord>('chat_models')
  }

  private get usageRecords() {
    return this.store.system().collection<UsageRecord>('chat_usage')
  }

  // --- providers ------------------------------------------------------------------------------

  async createProvider(input: CreateProviderInput): Promise<Provider> {
    const body = parse(createProviderBody, input)
    const now = this.isoNow()
    try {
      const record = await this.providers.insertOne({
        _id: body.id,
        kind: body.kind,
        baseUrl: body.baseUrl ?? defaultBaseUrls[body.kind],
        ...this.sealKey(body.apiKey ?? null),
        timeoutMs: body.timeoutMs ?? 60_000,
        createdAt: now,
        updatedAt: now,
      })
      this.cache.clear()
      return presentProvider(record)
    } catch (error) {
      if (error instanceof ImprunError && error.code === 'already_exists') throw alreadyExists('provider', body.id)
      throw error
    }
  }

  async listProviders(): Promise<Provider[]> {
    return (await this.providers.find({}, { sort: { _id: 1 } })).map(presentProvider)
  }

  async getProvider(id: string): Promise<Provider> {
    return presentProvider(await this.providerRecord(id))
  }

  async updateProvider(id: string, input: UpdateProviderInput): Promise<Provider> {
    const body = parse(updateProviderBody, input)
    const set: Record<string, unknown> = { updatedAt: this.isoNow() }
    if (body.baseUrl !== undefined) set.baseUrl = body.baseUrl
    if (body.timeoutMs !== undefined) set.timeoutMs = body.timeoutMs
    if (body.apiKey !== undefined) Object.assign(set, this.sealKey(body.apiKey))
    const updated = await this.providers.findOneAndUpdate({ _id: id }, { $set: set })
    if (!updated) throw notFound('provider', id)
    this.cache.clear()
    return presentProvider(updated)
  }

  /** Refused while a model alias uses the provider. */
  async deleteProvider(id: string): Promise<void> {
    await this.providerRecord(id)
    const users = await this.models.find({ provider: id })
    if (users.length > 0) {
      throw new ImprunError('conflict', `provider '${id}' is used by model ${users.map((model) => `'${model._id}'`).join(', ')}; remove or repoint those first`, {
        details: { models: users.map((model) => model._id) },
      })
    }
    await this.providers.deleteOne({ _id: id })
    this.cache.clear()
  }

  // --- models ---------------------------------------------------------------------------------

  /** Creates or replaces an alias. Its provider and fallbacks must exist. */
  async setModel(aliasInput: string, input: SetModelInput): Promise<ModelAlias> {
    const alias = checkName(modelAliasSchema, aliasInput, 'model alias')
    const body = parse(setModelBody, input)
    await this.providerRecord(body.provider)
    const fallbacks = body.fallbacks ?? []
    if (fallbacks.includes(alias)) throw new ImprunError('bad_request', `model '${alias}' cannot fall back to itself`)
    for (const fallback of fallbacks) {
      if (!(await this.models.findOne({ _id: fallback }))) throw notFound('model', fallback)
    }
    const now = this.isoNow()
    const existing = await this.models.findOne({ _id: alias })
    await this.models.replaceOne(
      { _id: alias },
      { provider: body.provider, model: body.model, fallbacks, createdAt: existing?.createdAt ?? now, updatedAt: now },
      { upsert: true },
    )
    this.cache.clear()
    return presentModel({ _id: alias, provider: body.provider, model: body.model, fallbacks, createdAt: existing?.createdAt ?? now, updatedAt: now })
  }

  async listModels(): Promise<ModelAlias[]> {
    return (await this.models.find({}, { sort: { _id: 1 } })).map(presentModel)
  }

  async deleteModel(alias: string): Promise<void> {
    const deleted = await this.models.deleteOne({ _id: alias })
    if (deleted === 0) throw notFound('model', alias)
    this.cache.clear()
  }

  /**
   * The targets to try for a requested model name, in order: the alias itself, then its
   * fallbacks (missing ones skipped). `<provider>/<model>` addresses a provider directly.
   * Fails with `not_found` listing the configured aliases.
   */
  async resolve(name: string): Promise<ResolvedTarget[]> {
    const cached = this.cache.get(name)
    if (cached && this.clock.now() - cached.at < this.cacheMs && cached.chain) return cached.chain
    const chain: ResolvedTarget[] = []
    const primary = await this.models.findOne({ _id: name })
    if (primary) {
      const seen = new Set<string>()
      for (const alias of [name, ...primary.fallbacks]) {
        if (seen.has(alias)) continue
        seen.add(alias)
        const record = alias === name ? primary : await this.models.findOne({ _id: alias })
        if (!record) continue
        const provider = await this.providers.findOne({ _id: record.provider })
        if (provider) chain.push({ alias, provider: this.openProvider(provider), model: record.model })
      }
    } else {
      const slash = name.indexOf('/')
      const provider = slash > 0 ? await this.providers.findOne({ _id: name.slice(0, slash) }) : null
      if (provider && slash < name.length - 1) chain.push({ alias: name, provider: this.openProvider(provider), model: name.slice(slash + 1) })
    }
    if (chain.length === 0) {
      const available = (await this.models.find({}, { sort: { _id: 1 } })).map((model) => model._id)
      throw new ImprunError('not_found', `model '${name}' is not configured; available: ${available.length > 0 ? available.join(', ') : 'none (add one with `imprun provider model-set`)'}`, {
        details: { kind: 'model', id: name, available },
      })
    }
    this.cache.set(name, { at: this.clock.now(), chain })
    return chain
  }

  // --- usage ----------------------------------------------------------------------------------

  /**
   * Counts one model call. Counts are summed in memory and written together (one `$inc` per
   * day × application × environment × model) within `usageFlushMs`, so that the durable write
   * (an fsync in embedded mode) stays off the request path; a crash loses at most that window.
   */
  recordUsage(entry: UsageEvent): void {
    const day = new Date(this.clock.now()).toISOString().slice(0, 10)
    const key = [day, entry.applicationId, entry.gatewayId, entry.stage, entry.alias, entry.provider, entry.model].join('|')
    const pending = this.pendingUsage.get(key)
    if (pending) {
      pending.requests++
      pending.inputTokens += entry.inputTokens
      pending.outputTokens += entry.outputTokens
    } else {
      this.pendingUsage.set(key, { ...entry, day, requests: 1 })
    }
    this.usageTimer ??= setTimeout(() => void this.flushUsage().catch(() => {}), this.usageFlushMs)
    this.usageTimer.unref?.()
  }

  /** Writes the pending usage counts now. */
  async flushUsage(): Promise<void> {
    if (this.usageTimer) clearTimeout(this.usageTimer)
    this.usageTimer = null
    if (this.pendingUsage.size === 0) return
    const batch = [...this.pendingUsage.entries()]
    this.pendingUsage.clear()
    try {
      await this.store.system().transaction(async (database) => {
        const collection = database.collection<UsageRecord>('chat_usage')
        for (const [key, item] of batch) {
          await collection.updateOne(
            { _id: key },
            {
              $setOnInsert: { day: item.day, applicationId: item.applicationId, gatewayId: item.gatewayId, stage: item.stage, alias: item.alias, provider: item.provider, model: item.model },
              $inc: { requests: item.requests, inputTokens: item.inputTokens, outputTokens: item.outputTokens },
            },
            { upsert: true },
          )
        }
      })
    } catch (error) {
      // Put the counts back so that the next flush tries again.
      for (const [key, item] of batch) {
        const pending = this.pendingUsage.get(key)
        if (pending) {
          pending.requests += item.requests
          pending.inputTokens += item.inputTokens
          pending.outputTokens += item.outputTokens
        } else this.pendingUsage.set(key, item)
      }
      throw error
    }
  }

  /** Usage summed over the days asked, per application × environment × alias × provider model. */
  async usage(query: UsageQuery = {}): Promise<{ entries: UsageEntry[]; totals: { requests: number; inputTokens: number; outputTokens: number } }> {
    await this.flushUsage()
    const filter: Record<string, unknown> = {}
    if (query.applicationId) filter.applicationId = query.applicationId
    const day: Record<string, string> = {}
    if (query.from) day.$gte = query.from
    if (query.to) day.$lte = query.to
    if (Object.keys(day).length > 0) filter.day = day
    const sums = new Map<string, UsageEntry>()
    for (const record of await this.usageRecords.find(filter)) {
      const key = [record.applicationId, record.gatewayId, record.stage, record.alias, record.provider, record.model].join('|')
      const entry = sums.get(key) ?? { application: record.applicationId, gatewayId: record.gatewayId, stage: record.stage, alias: record.alias, provider: record.provider, model: record.model, requests: 0, inputTokens: 0, outputTokens: 0 }
      entry.requests += record.requests
      entry.inputTokens += record.inputTokens
      entry.outputTokens += record.outputTokens
      sums.set(key, entry)
    }
    const entries = [...sums.values()].sort((a, b) => a.application.localeCompare(b.application) || a.alias.localeCompare(b.alias))
    const totals = entries.reduce((sum, entry) => ({ requests: sum.requests + entry.requests, inputTokens: sum.inputTokens + entry.inputTokens, outputTokens: sum.outputTokens + entry.outputTokens }), { requests: 0, inputTokens: 0, outputTokens: 0 })
    return { entries, totals }
  }

  // --- helpers --------------------------------------------------------------------------------

  private async providerRecord(id: string): Promise<ProviderRecord> {
    const record = await this.providers.findOne({ _id: id })
    if (!record) throw notFound('provider', id)
    return record
  }

  private sealKey(apiKey: string | null): { apiKeySealed: string | null; apiKeyPreview: string | null } {
    if (apiKey === null) return { apiKeySealed: null, apiKeyPreview: null }
    // Enough to recognise a key, too little to matter: short keys show nothing of themselves.
    const preview = apiKey.length >= 16 ? `${apiKey.slice(0, 3)}…${apiKey.slice(-4)}` : '…'
    return { apiKeySealed: this.secretBox.seal(apiKey), apiKeyPreview: preview }
  }

  private openProvider(record: ProviderRecord): ResolvedTarget['provider'] {
    return {
      id: record._id,
      kind: record.kind,
      baseUrl: record.baseUrl,
      apiKey: record.apiKeySealed ? this.secretBox.open(record.apiKeySealed) : null,
      timeoutMs: record.timeoutMs,
      updatedAt: record.updatedAt,
    }
  }

  private isoNow(): string {
    return new Date(this.clock.now()).toISOString()
  }
}

function parse<T>(schema: z.ZodType<T>, value: unknown): T {
  const result = schema.safeParse(value)
  if (result.success) return result.data
  const issue = result.error.issues[0]
  const path = issue?.path.join('.') ?? ''
  throw new ImprunError('bad_request', `${path ? `${path}: ` : ''}${issue?.message ?? 'invalid'}`, { details: { issues: result.error.issues.map((item) => ({ path: item.path.join('.'), message: item.message })) } })
}

function presentProvider(record: ProviderRecord): Provider {
  return {
    id: record._id,
    kind: record.kind,
    baseUrl: record.baseUrl,
    apiKeySet: record.apiKeySealed !== null,
    apiKeyPreview: record.apiKeyPreview,
    timeoutMs: record.timeoutMs,
    createdAt: record.createdAt,
    updatedAt: record.updatedAt,
  }
}

function presentModel(record: ModelRecord): ModelAlias {
  return { alias: record._id, provider: record.provider, model: record.model, fallbacks: record.fallbacks, createdAt: record.createdAt, updatedAt: record.updatedAt }
}
