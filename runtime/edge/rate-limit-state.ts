/**
 * In-memory counters for limit-count and limit-req (APISIX `policy: "local"`), in one object
 * that outlives plugin chains: the data plane keeps one per process (or per gateway) and hands
 * it to every chain it builds, so rebuilding a chain on a hot reload keeps the counts. Counter
 * keys carry the scope, the plugin conf's identity and the limit key, so unrelated routes and
 * changed confs never share a counter (APISIX keys its counters by route and plugin conf version
 * the same way).
 *
 * Memory stays bounded: every entry has an expiry after which it is equivalent to no entry
 * (a finished window, an emptied bucket); expired entries are swept at most once per
 * `sweepIntervalMs`, and when `maxEntries` is reached the least recently written entries are
 * dropped, as nginx's shared dict evicts under memory pressure (a dropped entry is a fresh
 * counter, i.e. fails open).
 */
import { createHash } from 'node:crypto'

export interface RateLimitStateOptions {
  /** Default 100,000. */
  maxEntries?: number
  /** Default 1,000 ms. */
  sweepIntervalMs?: number
}

export interface FixedWindowResult {
  allowed: boolean
  /** Requests left in the window (0 when rejected). */
  remaining: number
  /** Milliseconds until the window ends. */
  resetMs: number
}

export interface SlidingWindowResult {
  allowed: boolean
  remaining: number
  /** Seconds until the current window ends, or (rejected) until a request would be let through. */
  resetSeconds: number
}

export interface LeakyBucketResult {
  allowed: boolean
  /** Seconds to delay this request (resty.limit.req: excess / rate); 0 when rejected. */
  delaySeconds: number
}

export interface RateLimitState {
  /**
   * resty.limit.count: a window of `windowMs` starts with the first request for `key`;
   * `count` requests (by `cost`) are allowed in it.
   */
  fixedWindow(key: string, count: number, windowMs: number, cost: number, now: number): FixedWindowResult
  /** APISIX limit-count `window_type: "sliding"` (sliding-window.lua): weighted previous window. */
  slidingWindow(key: string, count: number, windowMs: number, cost: number, now: number): SlidingWindowResult
  /** resty.limit.req leaky bucket: `rate` requests per second, `burst` excess requests allowed. */
  leakyBucket(key: string, rate: number, burst: number, now: number): LeakyBucketResult
  /** Removes expired entries; returns how many were removed. */
  prune(now: number): number
  /** Number of entries held. */
  readonly size: number
}

interface Entry {
  /** After this instant (ms) the entry is the same as no entry. */
  expiresAt: number
  /** fixed: requests counted; sliding: requests in that window; leaky: excess in milli-requests. */
  value: number
  /** leaky: last request's time (ms). */
  last: number
}

export function createRateLimitState(options: RateLimitStateOptions = {}): RateLimitState {
  const maxEntries = Math.max(1, options.maxEntries ?? 100_000)
  const sweepIntervalMs = options.sweepIntervalMs ?? 1_000
  const entries = new Map<string, Entry>()
  let nextSweepAt = -Infinity

  function prune(now: number): number {
    let removed = 0
    for (const [key, entry] of entries) {
      if (entry.expiresAt <= now) {
        entries.delete(key)
        removed += 1
      }
    }
    nextSweepAt = now + sweepIntervalMs
    return removed
  }

  function live(key: string, now: number): Entry | undefined {
    if (now >= nextSweepAt) prune(now)
    const entry = entries.get(key)
    if (entry === undefined) return undefined
    if (entry.expiresAt <= now) {
      entries.delete(key)
      return undefined
    }
    return entry
  }

  /** Stores an entry as the most recently written (Map order is the eviction order). */
  function write(key: string, entry: Entry, now: number): void {
    entries.delete(key)
    if (entries.size >= maxEntries) {
      prune(now)
      for (const oldest of entries.keys()) {
        if (entries.size < maxEntries) break
        entries.delete(oldest)
      }
    }
    entries.set(key, entry)
  }

  return {
    fixedWindow(key, count, windowMs, cost, now) {
      let entry = live(key, now)
      if (entry === undefined) entry = { expiresAt: now + windowMs, value: 0, last: now }
      // resty.limit.count decrements even when it then rejects; counting past the limit is harmless.
      entry.value += cost
      write(key, entry, now)
      const remaining = count - entry.value
      const resetMs = entry.expiresAt - now
      if (remaining < 0) return { allowed: false, remaining: 0, resetMs }
      return { allowed: true, remaining, resetMs }
    },

    slidingWindow(key, count, windowMs, cost, now) {
      const windowSeconds = windowMs / 1000
      const nowSeconds = now / 1000
      const windowId = Math.floor(nowSeconds / windowSeconds)
      const remainingTime = windowSeconds - (nowSeconds % windowSeconds)
      const currentKey = `${key}\u0000${windowId}`
      const current = live(currentKey, now)
      const inWindow = current?.value ?? 0
      if (inWindow >= count) return { allowed: false, remaining: 0, resetSeconds: ceilHundredths(remainingTime) }

      const previous = live(`${key}\u0000${windowId - 1}`, now)
      const lastRate = Math.min(previous?.value ?? 0, count) / windowSeconds
      const estimatedPrevious = lastRate * remainingTime
      if (estimatedPrevious + inWindow >= count) {
        const desired = lastRate === 0 ? remainingTime : Math.max(remainingTime - (count - inWindow) / lastRate, 0)
        return { allowed: false, remaining: 0, resetSeconds: ceilHundredths(desired) }
      }
      const entry = current ?? { expiresAt: now + 2 * windowMs, value: 0, last: now }
      entry.value += cost
      write(currentKey, entry, now)
      if (entry.value - cost >= count) return { allowed: false, remaining: 0, resetSeconds: ceilHundredths(remainingTime) }
      return {
        allowed: true,
        remaining: Math.floor(count - entry.value - estimatedPrevious),
        resetSeconds: ceilHundredths(remainingTime),
      }
    },

    leakyBucket(key, rate, burst, now) {
      // resty.limit.req keeps rate, burst and excess in milli-requests and stores excess as an
      // unsigned integer; the same arithmetic here gives the same admit/delay/reject decisions.
      const rateMilli = rate * 1000
      const burstMilli = burst * 1000
      const entry = live(key, now)
      let excess = 0
      if (entry !== undefined) {
        const elapsed = Math.abs(now - entry.last)
        excess = Math.max(entry.value - (rateMilli * elapsed) / 1000 + 1000, 0)
        if (excess > burstMilli) return { allowed: false, delaySeconds: 0 }
      }
      const stored = Math.floor(excess)
      // Once (stored + 1000) milli-requests have leaked out, the next request sees excess 0:
      // exactly what a missing entry gives.
      write(key, { value: stored, last: now, expiresAt: now + ((stored + 1000) * 1000) / rateMilli }, now)
      return { allowed: true, delaySeconds: excess / rateMilli }
    },

    prune,

    get size() {
      return entries.size
    },
  }
}

function ceilHundredths(seconds: number): number {
  return Math.ceil(seconds * 100) / 100
}

/**
 * A short stable digest of a plugin conf, for counter keys: equal confs (whatever their key
 * order) share counters, a changed conf starts fresh ones. `_meta` is left out: disabling or
 * re-prioritising a plugin is not a new limit.
 */
export function confIdentity(conf: Record<string, unknown>): string {
  const { _meta: _ignored, ...rest } = conf
  return createHash('sha256').update(canonicalJson(rest)).digest('base64url').slice(0, 22)
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`
  if (typeof value === 'object' && value !== null) {
    const keys = Object.keys(value).sort()
    return `{${keys.map((key) => `${JSON.stringify(key)}:${canonicalJson((value as Record<string, unknown>)[key])}`).join(',')}}`
  }
  return JSON.stringify(value) ?? 'null'
}
