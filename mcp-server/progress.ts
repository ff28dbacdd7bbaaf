/**
 * Progress notifications for long operations (publish, test runs, function calls, waiting for a
 * phase). Sent only when the request carried `_meta.progressToken`, on the request's own stream
 * (`extra.sendNotification`), so Streamable HTTP delivers them with the call they belong to.
 */
import type { RequestHandlerExtra } from '@modelcontextprotocol/sdk/shared/protocol.js'
import type { ServerNotification, ServerRequest } from '@modelcontextprotocol/sdk/types.js'

export type RequestExtra = RequestHandlerExtra<ServerRequest, ServerNotification>

export interface ProgressReporter {
  /** Whether the client asked for progress at all. */
  readonly enabled: boolean
  /** Reports a step; `progress` must grow from one report to the next. */
  report(progress: number, total?: number, message?: string): void
  /**
   * While `work` runs, reports "still running" with the elapsed milliseconds as progress, first
   * after 25 ms, then at doubling intervals (25, 75, 175 … ms, at most every 5 s), so a quick
   * call sends one or two reports and a slow one is not silent.
   */
  during<T>(work: Promise<T>, message: string): Promise<T>
  /**
   * Passes on a report of the work itself (a function's `ctx.progress(done, total, message)`):
   * from the first one on, the "still running" reports stop, and the work's figures are sent
   * offset by what was reported before, so that progress keeps increasing as the spec requires.
   */
  relay(progress: number, total?: number, message?: string): void
}

const silent: ProgressReporter = {
  enabled: false,
  report() {},
  during: (work) => work,
  relay() {},
}

export function progressReporter(extra: Pick<RequestExtra, '_meta' | 'sendNotification'>): ProgressReporter {
  const token = extra._meta?.progressToken
  if (token === undefined) return silent
  let last = -1
  /** Set at the work's first own report: the offset of its figures. */
  let relayBase: number | null = null
  const report = (progress: number, total?: number, message?: string) => {
    // The spec wants progress to increase; equal values (a fast clock) are nudged.
    const value = progress > last ? progress : last + 1
    last = value
    const params: { progressToken: string | number; progress: number; total?: number; message?: string } = { progressToken: token, progress: value }
    if (total !== undefined) params.total = Math.max(total, value)
    if (message !== undefined) params.message = message
    // A lost notification must not fail the call it reports on.
    extra.sendNotification({ method: 'notifications/progress', params }).catch(() => {})
  }
  return {
    enabled: true,
    report,
    relay(progress, total, message) {
      relayBase ??= last + 1
      report(relayBase + Math.max(0, progress), total === undefined ? undefined : relayBase + Math.max(0, total), message)
    },
    async during(work, message) {
      const started = performance.now()
      let delay = 25
      let timer: NodeJS.Timeout | undefined
      const tick = () => {
        if (relayBase !== null) return
        report(Math.round(performance.now() - started), undefined, `${message} (${Math.round(performance.now() - started)} ms)`)
        delay = Math.min(delay * 2, 5000)
        timer = setTimeout(tick, delay)
      }
      timer = setTimeout(tick, delay)
      try {
        return await work
      } finally {
        clearTimeout(timer)
      }
    },
  }
}
