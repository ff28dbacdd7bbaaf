/**
 * The idle wait of a work loop: ends after `ms`, when `wake()` is called (new work), or when the
 * loop's signal aborts. Shared by the reconciler's task loop and the edge-sync loop.
 */
export class InterruptibleSleep {
  private wakeUp: (() => void) | null = null

  sleep(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer)
        signal.removeEventListener('abort', done)
        if (this.wakeUp === done) this.wakeUp = null
        resolve()
      }
      const timer = setTimeout(done, ms)
      this.wakeUp = done
      signal.addEventListener('abort', done, { once: true })
    })
  }

  /** Ends the current sleep, if any. */
  wake(): void {
    this.wakeUp?.()
  }
}
