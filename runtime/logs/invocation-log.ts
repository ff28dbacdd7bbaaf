/**
 * Per-function invocation logs, in the gateway's own database (collection `logs`). Writes are
 * batched (one transaction per batch, at most every `flushMs`) so logging does not put an fsync
 * on every request; the newest `retain` entries per gateway are kept. Logs are diagnostics, not
 * acknowledged writes: a crash may lose the last unflushed batch.
 */
import { randomUUID } from 'node:crypto'
import type { Store, StoredDocument } from '../../control/ports.ts'
import type { LogLine } from '../sandbox/function-sandbox.ts'

export interface InvocationLogEntry extends StoredDocument {
  at: string
  seq: number
  requestId: string
  stage: string
  function: string
  version: number | null
  method: string
  path: string
  status: number
  durationMs: number
  consumer: string | null
  error: { code: string; message: string } | null
  lines: LogLine[]
}

export interface InvocationLogOptions {
  store: Store
  flushMs?: number
  retain?: number
}

export class InvocationLog {
  private readonly store: Store
  private readonly flushMs: number
  private readonly retain: number
  private readonly pending = new Map<string, InvocationLogEntry[]>()
  private timer: NodeJS.Timeout | null = null
  private flushing: Promise<void> = Promise.resolve()
  private sequence = Date.now() * 1000

  constructor(options: InvocationLogOptions) {
    this.store = options.store
    this.flushMs = options.flushMs ?? 50
    this.retain = options.retain ?? 5000
  }

  record(gatewayId: string, entry: Omit<InvocationLogEntry, '_id' | 'at' | 'seq'>): void {
    const list = this.pending.get(gatewayId) ?? []
    // seq orders entries within this process; ids sort by it so the newest come first by _id.
    const seq = ++this.sequence
    list.push({ ...entry, _id: `${seq.toString(36).padStart(12, '0')}-${randomUUID().slice(0, 8)}`, at: new Date().toISOString(), seq } as InvocationLogEntry)
    this.pending.set(gatewayId, list)
    this.timer ??= setTimeout(() => void this.flush(), this.flushMs)
  }

  /** Writes everything pending. */
  flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer)
    this.timer = null
    const batches = [...this.pending.entries()]
    this.pending.clear()
    this.flushing = this.flushing.then(async () => {
      for (const [gatewayId, entries] of batches) {
        try {
          const logs = this.store.gateway(gatewayId).collection<InvocationLogEntry>('logs')
          await logs.insertMany(entries)
          const count = await logs.countDocuments({})
          if (count > this.retain * 1.2) {
            // Oldest written first: insertion order, which the store pages without reading (and
            // parsing) the whole collection, unlike a sort on a document field.
            const oldest = await logs.find({}, { limit: count - this.retain, projection: { _id: 1 } })
            await logs.deleteMany({ _id: { $in: oldest.map((entry) => entry._id) } })
          }
        } catch {
          // A gateway deleted meanwhile, or the store closing: its logs go with it.
        }
      }
    })
    return this.flushing
  }

  async query(gatewayId: string, filter: { function?: string; stage?: string; limit?: number; after?: number } = {}): Promise<InvocationLogEntry[]> {
    await this.flush()
    const query: Record<string, unknown> = {}
    if (filter.function) query.function = filter.function
    if (filter.stage) query.stage = filter.stage
    if (filter.after !== undefined) query.seq = { $gt: filter.after }
    return this.store
      .gateway(gatewayId)
      .collection<InvocationLogEntry>('logs')
      .find(query, { sort: { seq: -1 }, limit: Math.min(filter.limit ?? 50, 1000) })
  }

  async close(): Promise<void> {
    await this.flush()
  }
}

/**
 * Follows new entries as they are written (the store's change feed on `logs`), for
 * `imprun logs -f` and the admin API's SSE stream.
 */
export async function* followInvocationLog(
  store: Store,
  gatewayId: string,
  filter: { function?: string; stage?: string },
  signal: AbortSignal,
): AsyncGenerator<InvocationLogEntry> {
  const feed = store.gateway(gatewayId).watch({ collections: ['logs'], signal })
  for await (const event of feed) {
    if (event.type !== 'insert' || !event.document) continue
    const entry = event.document as InvocationLogEntry
    if (filter.function && entry.function !== filter.function) continue
    if (filter.stage && entry.stage !== filter.stage) continue
    yield entry
  }
}
