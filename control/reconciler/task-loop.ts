/**
 * A task loop for one kind of resource. It claims one record whose phase needs work with an
 * atomic find-and-update on a lease (`lockedAt` older than the lease time), runs one idempotent
 * step, and in the same conditional write moves the phase and releases the lease. A crashed
 * worker's lease simply expires; a failing step releases the lease with a back-off and the error
 * on the record. Several loops on one store never hold the same record at once.
 */
import { randomBytes } from 'node:crypto'
import { ImprunError, toImprunError } from '../errors.ts'
import type { Clock, Collection, Filter, StoredDocument } from '../ports.ts'
import { conditionalUpdate } from '../domain/transitions.ts'
import { InterruptibleSleep } from './interruptible-sleep.ts'

export interface LeasedRecord extends StoredDocument {
  phase: string
  lockedAt: number | null
  lockedBy: string | null
  attempts: number
  nextAttemptAt: number
  lastError: { code: string; message: string; at: string; attempts: number } | null
}

/** What a step asks for when it is done. */
export type StepOutcome<T> =
  /** Move to this phase (and optionally set more fields), release the lease. */
  | { phase: string; set?: Partial<T> }
  /** Not done yet (e.g. waiting for readiness): release and look again after `ms`. */
  | { retryAfterMs: number }

export interface StepContext {
  /** Whether the lease is still ours; long steps should check it before committing effects. */
  stillHeld(): Promise<boolean>
  /** Extends the lease (for steps that may run longer than the lease time). */
  renew(): Promise<void>
  signal: AbortSignal
}

export interface TaskLoopOptions<T extends LeasedRecord> {
  kind: string
  collection: () => Collection<T>
  /** Records that need work (in addition to the lease and back-off conditions). */
  needsWork: Filter
  step: (record: T, context: StepContext) => Promise<StepOutcome<T>>
  clock: Clock
  leaseMs?: number
  /** Back-off after a failure: base × 2^(attempts-1), capped, with ±20 % jitter. */
  backoffBaseMs?: number
  backoffMaxMs?: number
  /** How long an idle loop waits before looking again when nobody wakes it. */
  idlePollMs?: number
  workerId?: string
  onError?: (error: ImprunError, record: T) => void
}

export class TaskLoop<T extends LeasedRecord> {
  readonly workerId: string
  private readonly options: TaskLoopOptions<T>
  private readonly leaseMs: number
  private running: Promise<void> | null = null
  private abort = new AbortController()
  private readonly idle = new InterruptibleSleep()
  private pendingWake = false

  constructor(options: TaskLoopOptions<T>) {
    this.options = options
    this.leaseMs = options.leaseMs ?? 30_000
    this.workerId = options.workerId ?? `${options.kind}-${process.pid}-${randomBytes(4).toString('hex')}`
  }

  /** Claims one record that needs work, or returns null. */
  async claim(): Promise<T | null> {
    const now = this.options.clock.now()
    return this.options.collection().findOneAndUpdate(
      {
        $and: [
          this.options.needsWork,
          { nextAttemptAt: { $lte: now } },
          { $or: [{ lockedAt: null }, { lockedAt: { $lt: now - this.leaseMs } }] },
        ],
      },
      { $set: { lockedAt: now, lockedBy: this.workerId } },
      { sort: { nextAttemptAt: 1 }, returnDocument: 'after' },
    )
  }

  /** Claims and works one record. Returns false when there was nothing to do. */
  async runOnce(): Promise<boolean> {
    const record = await this.claim()
    if (!record) return false
    await this.work(record)
    return true
  }

  /** Runs until nothing needs work right now (for tests and one-shot use). */
  async drain(maxSteps = 1000): Promise<number> {
    let steps = 0
    while (steps < maxSteps && (await this.runOnce())) steps++
    return steps
  }

  start(): void {
    if (this.running) return
    this.abort = new AbortController()
    this.running = this.loop(this.abort.signal)
  }

  async stop(): Promise<void> {
    this.abort.abort()
    this.idle.wake()
    await this.running
    this.running = null
  }

  /** Asks a sleeping loop to look for work now. */
  wake(): void {
    this.pendingWake = true
    this.idle.wake()
  }

  private async loop(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      let worked = false
      try {
        this.pendingWake = false
        worked = await this.runOnce()
      } catch (error) {
        // The store itself failed (not a step): wait a little and try again.
        this.options.onError?.(toImprunError(error), {} as T)
        await this.idle.sleep(this.options.idlePollMs ?? 1000, signal)
        continue
      }
      if (!worked && !this.pendingWake) await this.idle.sleep(await this.idleDelay(), signal)
    }
  }

  /** Sleeps until the earliest back-off ends, a wake-up, or the idle poll interval. */
  private async idleDelay(): Promise<number> {
    const poll = this.options.idlePollMs ?? 1000
    try {
      const [next] = await this.options
        .collection()
        .find(this.options.needsWork, { sort: { nextAttemptAt: 1 }, limit: 1, projection: { nextAttemptAt: 1, lockedAt: 1 } })
      if (!next) return poll
      const now = this.options.clock.now()
      const leaseEnds = next.lockedAt === null ? 0 : next.lockedAt + this.leaseMs + 1 - now
      return Math.max(5, Math.min(poll, Math.max(next.nextAttemptAt - now, leaseEnds)))
    } catch {
      return poll
    }
  }


  private async work(record: T): Promise<void> {
    const collection = this.options.collection()
    let leaseAt = record.lockedAt!
    const held = { _id: record._id, lockedBy: this.workerId }
    const context: StepContext = {
      signal: this.abort.signal,
      stillHeld: async () => (await collection.countDocuments({ ...held, lockedAt: leaseAt })) === 1,
      renew: async () => {
        const now = this.options.clock.now()
        await conditionalUpdate(collection, this.options.kind, record._id, { lockedBy: this.workerId, lockedAt: leaseAt }, { $set: { lockedAt: now } })
        leaseAt = now
      },
    }
    let outcome: StepOutcome<T>
    try {
      outcome = await this.options.step(record, context)
    } catch (error) {
      await this.fail(record, leaseAt, toImprunError(error))
      return
    }
    const release = { lockedAt: null, lockedBy: null }
    if ('retryAfterMs' in outcome) {
      await conditionalUpdate(collection, this.options.kind, record._id, { lockedBy: this.workerId, lockedAt: leaseAt, phase: record.phase }, {
        $set: { ...release, nextAttemptAt: this.options.clock.now() + outcome.retryAfterMs },
      })
      return
    }
    await conditionalUpdate(collection, this.options.kind, record._id, { lockedBy: this.workerId, lockedAt: leaseAt, phase: record.phase }, {
      $set: { ...outcome.set, phase: outcome.phase, ...release, attempts: 0, nextAttemptAt: 0, lastError: null },
    })
  }

  private async fail(record: T, leaseAt: number, error: ImprunError): Promise<void> {
    this.options.onError?.(error, record)
    const attempts = record.attempts + 1
    const base = this.options.backoffBaseMs ?? 500
    const max = this.options.backoffMaxMs ?? 60_000
    const delay = Math.min(max, base * 2 ** (attempts - 1)) * (0.8 + Math.random() * 0.4)
    const now = this.options.clock.now()
    await conditionalUpdate(this.options.collection(), this.options.kind, record._id, { lockedBy: this.workerId, lockedAt: leaseAt }, {
      $set: {
        lockedAt: null,
        lockedBy: null,
        attempts,
        nextAttemptAt: now + Math.round(delay),
        lastError: { code: error.code, message: error.message, at: new Date(now).toISOString(), attempts },
      },
    }).catch(() => {
      // Lease already lost: whoever holds it now owns the record's bookkeeping.
    })
  }
}
