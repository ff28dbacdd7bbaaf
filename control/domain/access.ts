/**
 * Applications (API consumers) and grants. A grant lets one application call one gateway
 * environment with an API key. The key is shown once, when it is made; only a salted SHA-256 of
 * its secret part is stored. Keys carry 256 bits of randomness, so a fast hash is enough (a slow
 * KDF protects guessable passwords, not random keys) and verification stays cheap per request.
 *
 * Key format: `imp_<keyId>_<secret>`: `keyId` finds the grant, `secret` proves possession.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { ImprunError, alreadyExists, notFound } from '../errors.ts'
import type { Clock, Stage, Store, StoredDocument } from '../ports.ts'
import type { GatewayService } from './gateways.ts'
import { applicationNameSchema, checkName, stageSchema } from './names.ts'

export interface ApplicationRecord extends StoredDocument {
  name: string
  description: string
  createdAt: string
}

export interface GrantRecord extends StoredDocument {
  applicationId: string
  gatewayId: string
  stage: Stage
  status: 'active' | 'revoked'
  keyId: string
  keySalt: string
  keyHash: string
  /** During a rotation grace period the previous key keeps working until this time (ms). */
  previousKeySalt: string | null
  previousKeyHash: string | null
  previousValidUntil: number | null
  createdAt: string
  rotatedAt: string | null
  revokedAt: string | null
}

export interface Application {
  id: string
  name: string
  description: string
  createdAt: string
}

export interface Grant {
  id: string
  applicationId: string
  gatewayId: string
  stage: Stage
  status: 'active' | 'revoked'
  /** The non-secret start of the key, to recognise it. */
  keyPreview: string
  createdAt: string
  rotatedAt: string | null
  revokedAt: string | null
}

/** A grant together with its key: returned only by grant and rotate, never stored. */
export interface GrantWithKey extends Grant {
  apiKey: string
}

export interface VerifiedKey {
  grantId: string
  applicationId: string
  gatewayId: string
  stage: Stage
}

const keyPattern = /^imp_([A-Za-z0-9]{16})_([A-Za-z0-9_-]{43})$/

export interface AccessServiceOptions {
  store: Store
  clock: Clock
  gateways: GatewayService
}

export class AccessService {
  private readonly store: Store
  private readonly clock: Clock
  private readonly gateways: GatewayService
  private indexesReady: Promise<void> | null = null
  /**
   * Keys verified in the last few seconds, so that the request path does not read the store and
   * hash on every call. Any grant change in this process clears it at once (revoke is
   * immediate); changes made by another process reach it through `forgetKeys` from the change
   * feed, and in the worst case when an entry expires.
   */
  private readonly verifiedKeys = new Map<string, { verified: VerifiedKey; expiresAt: number }>()
  private static readonly verifiedKeyTtlMs = 5000
  private static readonly verifiedKeyLimit = 10_000

  constructor(options: AccessServiceOptions) {
    this.store = options.store
    this.clock = options.clock
    this.gateways = options.gateways
  }

  private get applications() {
    return this.store.system().collection<ApplicationRecord>('applications')
  }

  private get grants() {
    return this.store.system().collection<GrantRecord>('grants')
  }

  /** Creates the unique indexes the rules below rely on. Idempotent; called lazily. */
  ensureIndexes(): Promise<void> {
    this.indexesReady ??= (async () => {
      await this.applications.createIndex({ name: 1 }, { unique: true })
      await this.grants.createIndex({ keyId: 1 }, { unique: true })
      await this.grants.createIndex({ applicationId: 1, gatewayId: 1, stage: 1 }, { unique: true })
      await this.grants.createIndex({ gatewayId: 1 })
    })().catch((error) => {
      this.indexesReady = null
      throw error
    })
    return this.indexesReady
  }

  async createApplication(input: { name: string; description?: string }): Promise<Application> {
    await this.ensureIndexes()
    const name = checkName(applicationNameSchema, input.name, 'application name')
    try {
      const record = await this.applications.insertOne({
        _id: `app_${randomToken(12)}`,
        name,
        description: input.description ?? '',
        createdAt: this.isoNow(),
      })
      return presentApplication(record)
    } catch (error) {
      if (error instanceof ImprunError && error.code === 'already_exists') throw alreadyExists('application', name)
      throw error
    }
  }

  async listApplications(): Promise<Application[]> {
    return (await this.applications.find({}, { sort: { name: 1 } })).map(presentApplication)
  }

  /** By id or by name. */
  async application(idOrName: string): Promise<Application> {
    const record = await this.applications.findOne({ $or: [{ _id: idOrName }, { name: idOrName }] })
    if (!record) throw notFound('application', idOrName)
    return presentApplication(record)
  }

  /** Deletes an application and all its grants. */
  async deleteApplication(idOrName: string): Promise<void> {
    const application = await this.application(idOrName)
    await this.store.system().transaction(async (database) => {
      await database.collection('grants').deleteMany({ applicationId: application.id })
      await database.collection('applications').deleteOne({ _id: application.id })
    })
    this.forgetKeys()
  }

  /**
   * Grants an application access to one gateway environment and returns the key, once. An
   * existing active grant is a conflict (rotate it instead); a revoked one is re-activated with
   * a new key.
   */
  async grant(input: { application: string; gatewayId: string; stage: Stage }): Promise<GrantWithKey> {
    await this.ensureIndexes()
    const application = await this.application(input.application)
    await this.gateways.usable(input.gatewayId)
    const stage = checkName(stageSchema, input.stage, 'stage')
    const key = newKey()
    const now = this.isoNow()
    const existing = await this.grants.findOne({ applicationId: application.id, gatewayId: input.gatewayId, stage })
    if (existing?.status === 'active') {
      throw new ImprunError('already_exists', `application '${application.name}' already has a grant for ${input.gatewayId}/${stage}; rotate its key instead`, {
        details: { grantId: existing._id },
      })
    }
    if (existing) {
      const updated = await this.grants.findOneAndUpdate(
        { _id: existing._id, status: 'revoked' },
        { $set: { status: 'active', ...key.stored, ...noPreviousKey, rotatedAt: now, revokedAt: null } },
      )
      if (!updated) throw new ImprunError('conflict', 'the grant changed concurrently; try again', { retryable: true })
      return { ...presentGrant(updated), apiKey: key.apiKey }
    }
    const record = await this.grants.insertOne({
      _id: `grt_${randomToken(12)}`,
      applicationId: application.id,
      gatewayId: input.gatewayId,
      stage,
      status: 'active',
      ...key.stored,
      ...noPreviousKey,
      createdAt: now,
      rotatedAt: null,
      revokedAt: null,
    })
    return { ...presentGrant(record), apiKey: key.apiKey }
  }

  async listGrants(query: { application?: string; gatewayId?: string } = {}): Promise<Grant[]> {
    const filter: Record<string, unknown> = {}
    if (query.application) filter.applicationId = (await this.application(query.application)).id
    if (query.gatewayId) filter.gatewayId = query.gatewayId
    return (await this.grants.find(filter, { sort: { createdAt: 1 } })).map(presentGrant)
  }

  async getGrant(grantId: string): Promise<Grant> {
    const record = await this.grants.findOne({ _id: grantId })
    if (!record) throw notFound('grant', grantId)
    return presentGrant(record)
  }

  /** Revokes at once; the key stops working on the next request. Idempotent. */
  async revoke(grantId: string): Promise<Grant> {
    const updated = await this.grants.findOneAndUpdate(
      { _id: grantId },
      { $set: { status: 'revoked', keyHash: '', ...noPreviousKey, revokedAt: this.isoNow() } },
    )
    this.forgetKeys()
    if (!updated) throw notFound('grant', grantId)
    return presentGrant(updated)
  }

  /**
   * Issues a new key for an active grant. The old key stops working at once, or after
   * `graceSeconds` (at most a day) so that deployed clients can switch over.
   */
  async rotate(grantId: string, options: { graceSeconds?: number } = {}): Promise<GrantWithKey> {
    const grace = options.graceSeconds ?? 0
    if (!Number.isInteger(grace) || grace < 0 || grace > 86_400) {
      throw new ImprunError('bad_request', 'graceSeconds must be an integer from 0 to 86400')
    }
    const current = await this.grants.findOne({ _id: grantId })
    if (!current) throw notFound('grant', grantId)
    if (current.status !== 'active') throw new ImprunError('invalid_state', `grant '${grantId}' is revoked; grant again instead`)
    const key = newKey()
    const previous =
      grace > 0
        ? { previousKeySalt: current.keySalt, previousKeyHash: current.keyHash, previousValidUntil: this.clock.now() + grace * 1000 }
        : noPreviousKey
    const updated = await this.grants.findOneAndUpdate(
      { _id: grantId, status: 'active', keyId: current.keyId },
      // The key id stays: the grant is found by it, old and new secret both hash under it.
      { $set: { keySalt: key.stored.keySalt, keyHash: key.stored.keyHash, ...previous, rotatedAt: this.isoNow() } },
    )
    this.forgetKeys()
    if (!updated) throw new ImprunError('conflict', 'the grant changed concurrently; try again', { retryable: true })
    return { ...presentGrant(updated), apiKey: `imp_${current.keyId}_${key.secret}` }
  }

  /**
   * Checks a presented key for a gateway environment. Returns null for anything that is not a
   * valid, active key for exactly that gateway and stage; never says which part was wrong.
   */
  async verify(apiKey: string, gatewayId: string, stage: Stage): Promise<VerifiedKey | null> {
    const verified = await this.identify(apiKey)
    return verified && verified.gatewayId === gatewayId && verified.stage === stage ? verified : null
  }

  /**
   * Checks a presented key on its own and says which gateway environment it opens (a grant is
   * for exactly one). For surfaces that take a key before they know the environment (the chat
   * gateway, the MCP function endpoint). Null for anything invalid, revoked or expired.
   */
  async identify(apiKey: string): Promise<VerifiedKey | null> {
    const now = this.clock.now()
    const cached = this.verifiedKeys.get(apiKey)
    if (cached && cached.expiresAt > now) return cached.verified
    if (cached) this.verifiedKeys.delete(apiKey)
    const checked = await this.checkKey(apiKey)
    if (checked) {
      if (this.verifiedKeys.size >= AccessService.verifiedKeyLimit) this.verifiedKeys.delete(this.verifiedKeys.keys().next().value!)
      this.verifiedKeys.set(apiKey, { verified: checked.verified, expiresAt: Math.min(now + AccessService.verifiedKeyTtlMs, checked.validUntil) })
    }
    return checked?.verified ?? null
  }

  /** Drops every cached key verification (a grant changed somewhere). */
  forgetKeys(): void {
    this.verifiedKeys.clear()
  }

  private async checkKey(apiKey: string): Promise<{ verified: VerifiedKey; validUntil: number } | null> {
    const match = keyPattern.exec(apiKey)
    if (!match) return null
    const [, keyId, secret] = match as unknown as [string, string, string]
    const record = await this.grants.findOne({ keyId })
    if (!record || record.status !== 'active') return null
    const current = hashSecret(record.keySalt, secret)
    let validUntil = Number.POSITIVE_INFINITY
    let valid = safeEqual(current, record.keyHash)
    if (!valid && record.previousKeyHash && record.previousKeySalt && (record.previousValidUntil ?? 0) > this.clock.now()) {
      valid = safeEqual(hashSecret(record.previousKeySalt, secret), record.previousKeyHash)
      validUntil = record.previousValidUntil ?? 0
    }
    if (!valid) return null
    return { verified: { grantId: record._id, applicationId: record.applicationId, gatewayId: record.gatewayId, stage: record.stage }, validUntil }
  }

  /** Removes every grant of a gateway (when it is deleted). */
  async deleteGatewayGrants(gatewayId: string): Promise<number> {
    const deleted = await this.grants.deleteMany({ gatewayId })
    this.forgetKeys()
    return deleted
  }

  private isoNow(): string {
    return new Date(this.clock.now()).toISOString()
  }
}

const noPreviousKey = { previousKeySalt: null, previousKeyHash: null, previousValidUntil: null }

const alphanumeric = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'

/** Random alphanumeric text without modulo bias. */
function randomToken(length: number): string {
  let out = ''
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte < 248 && out.length < length) out += alphanumeric[byte % 62]
    }
  }
  return out
}

function newKey() {
  const keyId = randomToken(16)
  const secret = randomBytes(32).toString('base64url')
  const keySalt = randomBytes(16).toString('base64url')
  return { apiKey: `imp_${keyId}_${secret}`, secret, stored: { keyId, keySalt, keyHash: hashSecret(keySalt, secret) } }
}

function hashSecret(salt: string, secret: string): string {
  return createHash('sha256').update(salt).update('\0').update(secret).digest('hex')
}

function safeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a)
  const right = Buffer.from(b)
  return left.length === right.length && timingSafeEqual(left, right)
}

function presentApplication(record: ApplicationRecord): Application {
  return { id: record._id, name: record.name, description: record.description, createdAt: record.createdAt }
}

function presentGrant(record: GrantRecord): Grant {
  return {
    id: record._id,
    applicationId: record.applicationId,
    gatewayId: record.gatewayId,
    stage: record.stage,
    status: record.status,
    keyPreview: `imp_${record.keyId.slice(0, 6)}…`,
    createdAt: record.createdAt,
    rotatedAt: record.rotatedAt,
    revokedAt: record.revokedAt,
  }
}
