/**
 * Runs published functions in isolated-vm. One isolate per gateway (its own heap and memory
 * limit: one tenant's memory bomb never touches another's), one context per live function
 * version inside it, reused across invocations (zod and the bundle are evaluated once per
 * context, not per request). Limits per invocation: CPU/wall time through isolated-vm's
 * `timeout` plus a host-side wall-clock deadline that also cancels the invocation's fetches;
 * response size; concurrency per gateway. A gateway whose isolate exceeds its memory limit loses
 * that isolate (its in-flight invocations fail with `function_memory_limit`) and gets a fresh
 * one on the next request; nothing else is affected.
 */
import { randomUUID } from 'node:crypto'
import ivm from 'isolated-vm'
import { z } from 'zod'
import { ImprunError, toImprunError } from '../../control/errors.ts'
import { IdleSpare } from './idle-spare.ts'
import { zodSnapshot } from './zod-snapshot.ts'
import { bootstrapSource } from './bootstrap.ts'

export interface InvocationRequest {
  gatewayId: string
  stage: string
  functionName: string
  versionId: string
  /** Loads the version's compiled code (only when no warm context exists). */
  loadCode: () => Promise<string>
  input: unknown
  request: { method: string; path: string; query: Record<string, string | string[]>; headers: Record<string, string>; body: unknown }
  env: Record<string, string>
  requestId: string
  /** Depth of nested `ctx.imp.invoke` calls; the first call is 0. */
  depth?: number
  signal?: AbortSignal
  /** Told of log lines and `ctx.progress` reports while the invocation runs (MCP streams them). */
  observer?: InvocationObserver
}

export interface ProgressReport {
  progress: number
  total?: number
  message?: string
}

export interface InvocationObserver {
  log?(line: LogLine): void
  progress?(report: ProgressReport): void
}

export interface LogLine {
  level: 'debug' | 'info' | 'warn' | 'error'
  message: string
  at: string
}

export type InvocationOutcome =
  | { ok: true; status: number; headers: Record<string, string>; value: unknown; empty: boolean }
  | { ok: false; status: number; code: string; message: string; details?: Record<string, unknown> }

export interface InvocationResult {
  outcome: InvocationOutcome
  logs: LogLine[]
  durationMs: number
}

/** Host services user code reaches through `ctx.imp`, each bound to the calling invocation. */
export interface SandboxServices {
  db(gatewayId: string, operation: string, collection: string, args: unknown[]): Promise<unknown>
  fetch(request: unknown, signal: AbortSignal): Promise<unknown>
  invoke(caller: InvocationRequest, name: string, input: unknown): Promise<InvocationResult>
}

export interface SandboxLimits {
  /** Heap limit of one gateway's isolate, MiB (default 128). */
  memoryLimitMb: number
  /** Time one invocation may run, ms (default 10,000). */
  timeoutMs: number
  /** Concurrent invocations per gateway (default 64); more wait in a queue. */
  maxConcurrentPerGateway: number
  /** Queued invocations per gateway before 429 (default 256). */
  maxQueuedPerGateway: number
  /**
   * Warm contexts per gateway (default 48, least recently used released first). A context takes
   * about 1 MiB of the gateway's heap; past half of `memoryLimitMb` the older half is released.
   */
  maxContextsPerGateway: number
  /** Gateways with a live isolate (default 256, idle ones disposed first). */
  maxIsolates: number
  /** Largest serialized response, bytes (default 6 MiB). */
  maxResponseBytes: number
  /** Log lines kept per invocation (default 200). */
  maxLogLines: number
  /** Depth of nested invokes (default 5). */
  maxInvokeDepth: number
}

export const defaultSandboxLimits: SandboxLimits = {
  memoryLimitMb: 128,
  timeoutMs: 10_000,
  maxConcurrentPerGateway: 64,
  maxQueuedPerGateway: 256,
  maxContextsPerGateway: 48,
  maxIsolates: 256,
  maxResponseBytes: 6 * 1024 * 1024,
  maxLogLines: 200,
  maxInvokeDepth: 5,
}

const resultSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('ok'), status: z.number().int().min(100).max(599), headers: z.record(z.string(), z.string()), value: z.unknown(), empty: z.boolean() }),
  z.object({ kind: z.literal('invalid_input'), issues: z.array(z.object({ path: z.string(), message: z.string() }).passthrough()) }),
  z.object({ kind: z.literal('invalid_output'), issues: z.array(z.object({ path: z.string(), message: z.string() })) }),
  z.object({ kind: z.literal('response_too_large'), size: z.number() }),
  z.object({ kind: z.literal('error'), status: z.number().int(), code: z.string().optional(), message: z.string(), stack: z.string().optional() }),
])

interface ActiveInvocation {
  request: InvocationRequest
  logs: LogLine[]
  abort: AbortController
  /** `ctx.progress` reports so far (capped like log lines). */
  progressReports: number
}

/** A context with the bootstrap in place and no function evaluated in it yet. */
interface BareContext {
  context: ivm.Context
  run: ivm.Reference
}

interface WarmContext {
  versionId: string
  context: ivm.Context
  run: ivm.Reference
  users: number
  lastUsed: number
  released: boolean
}

class GatewayIsolate {
  readonly isolate: ivm.Isolate
  readonly contexts = new Map<string, Promise<WarmContext>>()
  readonly active = new Map<string, ActiveInvocation>()
  running = 0
  readonly queue: Array<() => void> = []
  lastUsed = Date.now()
  catastrophic: string | null = null
  /**
   * One bare context kept ready once the gateway has run something, for a new version (a
   * publish just seen, a cold version's first call); refilled when the isolate is idle.
   */
  readonly spare: IdleSpare<BareContext>

  constructor(memoryLimitMb: number, bareContext: (gateway: GatewayIsolate) => Promise<BareContext>) {
    this.isolate = new ivm.Isolate({
      memoryLimit: memoryLimitMb,
      snapshot: zodSnapshot(),
      onCatastrophicError: (message) => {
        this.catastrophic = message
      },
    })
    this.spare = new IdleSpare(
      () => bareContext(this),
      () => this.running === 0 && !this.disposed && !this.catastrophic,
    )
  }

  get disposed(): boolean {
    return this.isolate.isDisposed
  }
}

const callerCancelled = Object.freeze(new ImprunError('internal', 'the caller cancelled the invocation', { details: { reason: 'cancelled' } }))
const invocationEnded = Object.freeze(new ImprunError('internal', 'the invocation ended', { details: { reason: 'invocation_ended' } }))

export class FunctionSandbox {
  private readonly limits: SandboxLimits
  private readonly services: SandboxServices
  private readonly gateways = new Map<string, GatewayIsolate>()

  constructor(options: { services: SandboxServices; limits?: Partial<SandboxLimits> }) {
    this.services = options.services
    this.limits = { ...defaultSandboxLimits, ...options.limits }
  }

  async invoke(request: InvocationRequest): Promise<InvocationResult> {
    const started = performance.now()
    const logs: LogLine[] = []
    const finish = (outcome: InvocationOutcome): InvocationResult => ({ outcome, logs, durationMs: performance.now() - started })
    if ((request.depth ?? 0) > this.limits.maxInvokeDepth) {
      return finish(failure(508, 'invoke_depth', `nested invoke deeper than ${this.limits.maxInvokeDepth}`))
    }
    const gateway = this.gatewayIsolate(request.gatewayId)
    const admitted = await this.admit(gateway)
    if (!admitted) return finish(failure(429, 'concurrency_limit', `too many concurrent invocations for gateway '${request.gatewayId}'`))
    const id = randomUUID()
    const abort = new AbortController()
    const onAbort = () => abort.abort()
    request.signal?.addEventListener('abort', onAbort, { once: true })
    let warm: WarmContext | null = null
    let timer: NodeJS.Timeout | undefined
    try {
      warm = await this.warmContext(gateway, request)
      gateway.active.set(id, { request, logs, abort, progressReports: 0 })
      const invocation = JSON.stringify({
        id,
        input: request.input ?? {},
        request: request.request,
        env: request.env,
        gatewayId: request.gatewayId,
        stage: request.stage,
        functionName: request.functionName,
        requestId: request.requestId,
      })
      const deadline = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new ImprunError('internal', 'deadline', { details: { deadline: true } })), this.limits.timeoutMs + 50)
      })
      // The caller went away (client disconnected, MCP cancellation): answer at once; the
      // finally block aborts the invocation's host calls, so its code winds down on its own.
      const cancelled = new Promise<never>((_, reject) => {
        if (request.signal?.aborted) reject(callerCancelled)
        request.signal?.addEventListener('abort', () => reject(callerCancelled), { once: true })
      })
      const running = warm.run.apply(undefined, [invocation], { timeout: this.limits.timeoutMs, arguments: { copy: true }, result: { promise: true, copy: true } })
      running.catch(() => {})
      const text = (await Promise.race([running, deadline, cancelled])) as unknown
      return finish(this.interpret(text))
    } catch (error) {
      return finish(this.classify(error, gateway, request))
    } finally {
      clearTimeout(timer)
      // A shared reason: abort() without one builds a DOMException (a stack capture) per call.
      abort.abort(invocationEnded)
      request.signal?.removeEventListener('abort', onAbort)
      gateway.active.delete(id)
      if (warm) this.release(gateway, warm)
      this.leave(gateway)
      gateway.spare.refill()
      if (gateway.disposed && this.gateways.get(request.gatewayId) === gateway) this.gateways.delete(request.gatewayId)
    }
  }

  /** Releases the warm contexts of versions not in `keep` (called when deployments change). */
  retain(gatewayId: string, keep: ReadonlySet<string>): void {
    const gateway = this.gateways.get(gatewayId)
    if (!gateway) return
    for (const [versionId, pending] of gateway.contexts) {
      if (keep.has(versionId)) continue
      gateway.contexts.delete(versionId)
      void pending.then((warm) => this.releaseWhenIdle(warm), () => {})
    }
  }

  /**
   * Builds a version's context ahead of its first request (a publish was just seen), so the
   * first caller does not pay for it. Only for gateways whose isolate is already up: an idle
   * gateway is not woken by a publish. Failures are left for the first request to report.
   */
  prewarm(request: Pick<InvocationRequest, 'gatewayId' | 'functionName' | 'versionId' | 'loadCode'>): void {
    const gateway = this.gateways.get(request.gatewayId)
    if (!gateway || gateway.disposed || gateway.catastrophic || gateway.contexts.has(request.versionId)) return
    const pending = this.createContext(gateway, request)
    gateway.contexts.set(request.versionId, pending)
    pending.catch(() => gateway.contexts.delete(request.versionId))
    this.evictContexts(gateway)
  }

  /** Releases one version's warm context (a draft after its test run). */
  forget(gatewayId: string, versionId: string): void {
    const pending = this.gateways.get(gatewayId)?.contexts.get(versionId)
    if (!pending) return
    this.gateways.get(gatewayId)!.contexts.delete(versionId)
    void pending.then((warm) => this.releaseWhenIdle(warm), () => {})
  }

  /** Disposes a gateway's isolate (gateway stopped or deleted). */
  disposeGateway(gatewayId: string): void {
    const gateway = this.gateways.get(gatewayId)
    if (!gateway) return
    this.gateways.delete(gatewayId)
    for (const invocation of gateway.active.values()) invocation.abort.abort()
    if (!gateway.disposed) gateway.isolate.dispose()
  }

  async close(): Promise<void> {
    for (const gatewayId of [...this.gateways.keys()]) this.disposeGateway(gatewayId)
  }

  stats(): { isolates: number; contexts: number; heapBytes: number } {
    let contexts = 0
    let heapBytes = 0
    for (const gateway of this.gateways.values()) {
      contexts += gateway.contexts.size
      if (!gateway.disposed) {
        const heap = gateway.isolate.getHeapStatisticsSync()
        heapBytes += heap.used_heap_size + heap.externally_allocated_size
      }
    }
    return { isolates: this.gateways.size, contexts, heapBytes }
  }

  // --- internals ------------------------------------------------------------------------------

  private gatewayIsolate(gatewayId: string): GatewayIsolate {
    let gateway = this.gateways.get(gatewayId)
    if (gateway && !gateway.disposed && !gateway.catastrophic) {
      gateway.lastUsed = Date.now()
      return gateway
    }
    if (gateway && !gateway.disposed) gateway.isolate.dispose()
    this.evictIsolates()
    gateway = new GatewayIsolate(this.limits.memoryLimitMb, (owner) => this.bareContext(owner))
    this.gateways.set(gatewayId, gateway)
    return gateway
  }

  private evictIsolates(): void {
    if (this.gateways.size < this.limits.maxIsolates) return
    const idle = [...this.gateways.entries()].filter(([, gateway]) => gateway.running === 0).sort((a, b) => a[1].lastUsed - b[1].lastUsed)
    for (const [gatewayId] of idle.slice(0, this.gateways.size - this.limits.maxIsolates + 1)) this.disposeGateway(gatewayId)
  }

  private async admit(gateway: GatewayIsolate): Promise<boolean> {
    if (gateway.running < this.limits.maxConcurrentPerGateway) {
      gateway.running++
      return true
    }
    if (gateway.queue.length >= this.limits.maxQueuedPerGateway) return false
    await new Promise<void>((resolve) => gateway.queue.push(resolve))
    gateway.running++
    return true
  }

  private leave(gateway: GatewayIsolate): void {
    gateway.running--
    gateway.queue.shift()?.()
  }

  private warmContext(gateway: GatewayIsolate, request: InvocationRequest): Promise<WarmContext> {
    let pending = gateway.contexts.get(request.versionId)
    if (!pending) {
      pending = this.createContext(gateway, request)
      gateway.contexts.set(request.versionId, pending)
      pending.catch(() => gateway.contexts.delete(request.versionId))
      this.evictContexts(gateway)
    }
    return pending.then((warm) => {
      warm.users++
      warm.lastUsed = Date.now()
      return warm
    })
  }

  private evictContexts(gateway: GatewayIsolate): void {
    // Memory first: a warm context costs about 1 MiB (zod, bootstrap, the bundle), so past half
    // the isolate's limit the least recently used half of the contexts go, whatever the count.
    if (!gateway.disposed && gateway.contexts.size > 1) {
      const heap = gateway.isolate.getHeapStatisticsSync()
      if (heap.used_heap_size + heap.externally_allocated_size > this.limits.memoryLimitMb * 1024 * 1024 * 0.5) {
        let excess = Math.floor(gateway.contexts.size / 2)
        for (const [versionId, pending] of gateway.contexts) {
          if (excess-- <= 0) break
          gateway.contexts.delete(versionId)
          void pending.then((warm) => this.releaseWhenIdle(warm), () => {})
        }
      }
    }
    if (gateway.contexts.size <= this.limits.maxContextsPerGateway) return
    // Oldest first: Map keeps insertion order, and warmContext re-inserts on use.
    for (const [versionId, pending] of gateway.contexts) {
      if (gateway.contexts.size <= this.limits.maxContextsPerGateway) break
      gateway.contexts.delete(versionId)
      void pending.then((warm) => this.releaseWhenIdle(warm), () => {})
    }
  }

  private async createContext(gateway: GatewayIsolate, request: Pick<InvocationRequest, 'functionName' | 'versionId' | 'loadCode'>): Promise<WarmContext> {
    const code = await request.loadCode()
    const { isolate } = gateway
    const { context, run } = (await gateway.spare.take()) ?? (await this.bareContext(gateway))
    try {
      const script = await isolate.compileScript(code, { filename: `${request.functionName}.js` })
      try {
        await script.run(context, { timeout: Math.min(this.limits.timeoutMs, 5000) })
      } finally {
        script.release()
      }
      return { versionId: request.versionId, context, run, users: 0, lastUsed: Date.now(), released: false }
    } catch (error) {
      if (!isolate.isDisposed) context.release()
      throw error
    }
  }

  private async bareContext(gateway: GatewayIsolate): Promise<BareContext> {
    const { isolate } = gateway
    const context = await isolate.createContext()
    try {
      const bootstrap = await context.eval(bootstrapSource, { reference: true, timeout: 1000 })
      const bridge = new ivm.Reference((name: string, args: unknown[]) => this.bridgeCall(gateway, name, args))
      const limits = new ivm.ExternalCopy({ maxLogLineLength: 8192, maxResponseLength: this.limits.maxResponseBytes }).copyInto()
      const run = (await (bootstrap as ivm.Reference).apply(undefined, [bridge, limits], { result: { reference: true }, timeout: 1000 })) as ivm.Reference
      // Handles left unreleased keep their context alive after it is released: a leak of about
      // 1 MiB per context that ends in the isolate's memory limit.
      ;(bootstrap as ivm.Reference).release()
      return { context, run }
    } catch (error) {
      if (!isolate.isDisposed) context.release()
      throw error
    }
  }

  private release(gateway: GatewayIsolate, warm: WarmContext): void {
    warm.users--
    if (!gateway.contexts.has(warm.versionId)) this.releaseWhenIdle(warm)
  }

  private releaseWhenIdle(warm: WarmContext): void {
    if (warm.users > 0 || warm.released) return
    warm.released = true
    try {
      warm.run.release()
      warm.context.release()
    } catch {
      // The isolate is already gone.
    }
  }

  /** Everything user code asks of the host arrives here; every argument is untrusted. */
  private async bridgeCall(gateway: GatewayIsolate, name: string, args: unknown): Promise<string | undefined> {
    if (!Array.isArray(args)) return JSON.stringify({ error: { status: 500, message: 'bad bridge call' } })
    const invocation = typeof args[0] === 'string' ? gateway.active.get(args[0]) : undefined
    if (name === 'log') {
      if (!invocation || invocation.logs.length >= this.limits.maxLogLines) return undefined
      const level = ['debug', 'info', 'warn', 'error'].includes(String(args[1])) ? (String(args[1]) as LogLine['level']) : 'info'
      const line: LogLine = { level, message: String(args[2]).slice(0, 8192), at: new Date().toISOString() }
      invocation.logs.push(line)
      observe(() => invocation.request.observer?.log?.(line))
      if (invocation.logs.length === this.limits.maxLogLines) {
        const truncated: LogLine = { level: 'warn', message: `log truncated after ${this.limits.maxLogLines} lines`, at: new Date().toISOString() }
        invocation.logs.push(truncated)
        observe(() => invocation.request.observer?.log?.(truncated))
      }
      return undefined
    }
    if (name === 'progress') {
      const report = progressReport(args)
      if (invocation && report && invocation.progressReports++ < this.limits.maxLogLines) observe(() => invocation.request.observer?.progress?.(report))
      return undefined
    }
    try {
      if (!invocation) throw new ImprunError('bad_request', `${name} must be called during an invocation, not at module load`)
      let value: unknown
      switch (name) {
        case 'db': {
          const parsed = parseJson(args[3])
          if (!Array.isArray(parsed)) throw new ImprunError('bad_request', 'invalid database call')
          value = await this.services.db(invocation.request.gatewayId, String(args[1]), String(args[2]), parsed)
          break
        }
        case 'fetch':
          value = await this.services.fetch(parseJson(args[1]), invocation.abort.signal)
          break
        case 'sleep':
          await sleep(Math.min(Number(args[1]) || 0, this.limits.timeoutMs), invocation.abort.signal)
          break
        case 'invoke': {
          const result = await this.services.invoke(invocation.request, String(args[1]), parseJson(args[2]))
          invocation.logs.push(...result.logs.map((line) => ({ ...line, message: `[${String(args[1])}] ${line.message}` })))
          if (!result.outcome.ok) {
            throw new ImprunError('internal', result.outcome.message, { status: result.outcome.status, details: { code: result.outcome.code } })
          }
          value = result.outcome.value
          break
        }
        default:
          throw new ImprunError('bad_request', `unknown host call ${name}`)
      }
      return JSON.stringify({ value: value === undefined ? null : value })
    } catch (error) {
      const failure = toImprunError(error)
      const code = typeof failure.details?.code === 'string' ? failure.details.code : failure.code
      return JSON.stringify({ error: { status: failure.status, code, message: failure.code === 'internal' && failure.status === 500 && !failure.details ? 'internal error' : failure.message } })
    }
  }

  private interpret(text: unknown): InvocationOutcome {
    const parsed = typeof text === 'string' ? resultSchema.safeParse(parseJson(text)) : null
    if (!parsed?.success) return failure(500, 'function_error', 'the function runtime returned an unreadable result')
    const result = parsed.data
    switch (result.kind) {
      case 'ok':
        return { ok: true, status: result.status, headers: result.headers, value: result.value, empty: result.empty }
      case 'invalid_input':
        return failure(400, 'invalid_input', `invalid input: ${result.issues.map((issue) => `${issue.path || '(root)'}: ${issue.message}`).join('; ')}`, { issues: result.issues })
      case 'invalid_output':
        return failure(500, 'invalid_output', `the function's result does not match its output schema: ${result.issues.map((issue) => `${issue.path || '(root)'}: ${issue.message}`).join('; ')}`, { issues: result.issues })
      case 'response_too_large':
        return failure(500, 'response_too_large', `the response is ${result.size} bytes; at most ${this.limits.maxResponseBytes}`)
      case 'error':
        return failure(result.status, result.code ?? 'function_error', result.message, result.stack ? { stack: result.stack } : undefined)
    }
  }

  private classify(error: unknown, gateway: GatewayIsolate, request: InvocationRequest): InvocationOutcome {
    const message = error instanceof Error ? error.message : String(error)
    if (gateway.disposed || /disposed|memory limit/i.test(message)) {
      if (this.gateways.get(request.gatewayId) === gateway) this.gateways.delete(request.gatewayId)
      return failure(500, 'function_memory_limit', `the function exceeded the memory limit of ${this.limits.memoryLimitMb} MiB`)
    }
    if (error === callerCancelled) return failure(499, 'cancelled', 'the caller cancelled the invocation')
    if (error instanceof ImprunError && error.details?.deadline) {
      return failure(504, 'function_timeout', `the function did not finish within ${this.limits.timeoutMs} ms`)
    }
    if (/timed out/i.test(message)) return failure(504, 'function_timeout', `the function ran longer than ${this.limits.timeoutMs} ms`)
    if (error instanceof ImprunError) return failure(error.status, error.code, error.message)
    // Module evaluation (cold start) failed: a top-level throw.
    return failure(500, 'function_error', message.slice(0, 2000))
  }
}

function failure(status: number, code: string, message: string, details?: Record<string, unknown>): InvocationOutcome {
  return details ? { ok: false, status, code, message, details } : { ok: false, status, code, message }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new ImprunError('bad_request', 'the invocation has ended'))
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', stop)
      resolve()
    }, ms)
    const stop = () => {
      clearTimeout(timer)
      reject(new ImprunError('bad_request', 'the invocation has ended'))
    }
    signal.addEventListener('abort', stop, { once: true })
  })
}

/** An observer's failure is its own business: the invocation goes on. */
function observe(notify: () => void): void {
  try {
    notify()
  } catch {
    // ignored
  }
}

/** `[invocationId, progress, total, message]` from the bridge, checked; null when unusable. */
function progressReport(args: unknown[]): ProgressReport | null {
  const [, progress, total, message] = args
  if (typeof progress !== 'number' || !Number.isFinite(progress)) return null
  const report: ProgressReport = { progress }
  if (typeof total === 'number' && Number.isFinite(total)) report.total = total
  if (typeof message === 'string') report.message = message.slice(0, 1000)
  return report
}

function parseJson(value: unknown): unknown {
  if (typeof value !== 'string') return undefined
  try {
    return JSON.parse(value)
  } catch {
    return undefined
  }
}
