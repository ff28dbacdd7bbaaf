/**
 * The event store of one Streamable HTTP session, which makes its SSE streams resumable: a client
 * whose connection dropped reconnects with `Last-Event-ID` and receives what it missed on that
 * stream (a tool result, progress, log lines), as the MCP spec's resumability section describes.
 *
 * Bounded, because every message of the session passes through it: events older than
 * `retentionMs`, and the oldest beyond `maxEvents` or `maxBytes`, are dropped. A client that
 * comes back for a dropped event gets a 400 from the SDK and must retry its request. Kept in
 * memory with the session itself (sessions are per replica; see the README).
 */
import type { EventStore } from '@modelcontextprotocol/sdk/server/streamableHttp.js'
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js'

export interface SessionEventStoreLimits {
  maxEvents: number
  maxBytes: number
  retentionMs: number
}

export const defaultSessionEventStoreLimits: SessionEventStoreLimits = { maxEvents: 1000, maxBytes: 4 * 1024 * 1024, retentionMs: 5 * 60_000 }

interface StoredEvent {
  id: string
  streamId: string
  message: JSONRPCMessage
  bytes: number
  at: number
}

export class SessionEventStore implements EventStore {
  readonly #limits: SessionEventStoreLimits
  readonly #now: () => number
  /** Oldest first; event ids carry a sequence number, so order is id order. */
  readonly #events: StoredEvent[] = []
  #bytes = 0
  #sequence = 0

  constructor(limits: Partial<SessionEventStoreLimits> = {}, now: () => number = Date.now) {
    this.#limits = { ...defaultSessionEventStoreLimits, ...limits }
    this.#now = now
  }

  get size(): number {
    return this.#events.length
  }

  async storeEvent(streamId: string, message: JSONRPCMessage): Promise<string> {
    const id = `${streamId}~${++this.#sequence}`
    const bytes = JSON.stringify(message).length + id.length
    this.#events.push({ id, streamId, message, bytes, at: this.#now() })
    this.#bytes += bytes
    this.#trim()
    return id
  }

  async getStreamIdForEventId(eventId: string): Promise<string | undefined> {
    this.#trim()
    return this.#find(eventId)?.streamId
  }

  async replayEventsAfter(lastEventId: string, { send }: { send: (eventId: string, message: JSONRPCMessage) => Promise<void> }): Promise<string> {
    this.#trim()
    const last = this.#find(lastEventId)
    if (!last) throw new Error(`event ${lastEventId} is unknown or no longer kept: send the request again`)
    const sequence = sequenceOf(last.id)
    for (const event of [...this.#events]) {
      // Priming events carry an empty message: they only mark a position.
      if (event.streamId === last.streamId && sequenceOf(event.id) > sequence && Object.keys(event.message).length > 0) await send(event.id, event.message)
    }
    return last.streamId
  }

  #find(eventId: string): StoredEvent | undefined {
    return this.#events.find((event) => event.id === eventId)
  }

  #trim(): void {
    const oldest = this.#now() - this.#limits.retentionMs
    while (this.#events.length > 0 && (this.#events.length > this.#limits.maxEvents || this.#bytes > this.#limits.maxBytes || this.#events[0]!.at < oldest)) {
      this.#bytes -= this.#events.shift()!.bytes
    }
  }
}

function sequenceOf(eventId: string): number {
  return Number(eventId.slice(eventId.lastIndexOf('~') + 1))
}
