/**
 * One thing built ahead of need while its isolate is idle: a fresh context, which is mostly V8
 * deserializing the zod snapshot (about 2.4 ms), so that the next new version or publish does not
 * wait for it. Building holds the isolate's thread, so it starts only after the current turn
 * (the answer is on its way) and only while `mayBuild()` holds (nothing runs, the isolate lives).
 */
export class IdleSpare<T> {
  readonly #build: () => Promise<T>
  readonly #mayBuild: () => boolean
  #ready: Promise<T> | null = null
  #scheduled = false

  constructor(build: () => Promise<T>, mayBuild: () => boolean) {
    this.#build = build
    this.#mayBuild = mayBuild
  }

  /** The spare, if one is ready or being built; null when there is none or building failed. */
  async take(): Promise<T | null> {
    const ready = this.#ready
    this.#ready = null
    return ready ? ready.catch(() => null) : null
  }

  /** Forgets the spare (its isolate is being disposed): nothing of it is kept or handed out. */
  drop(): void {
    this.#ready = null
  }

  /** Builds the next spare after this turn, unless one is there or may not be built then. */
  refill(): void {
    if (this.#ready || this.#scheduled || !this.#mayBuild()) return
    this.#scheduled = true
    setImmediate(() => {
      this.#scheduled = false
      if (this.#ready || !this.#mayBuild()) return
      const ready = this.#build()
      ready.catch(() => {
        if (this.#ready === ready) this.#ready = null
      })
      this.#ready = ready
    })
  }
}
