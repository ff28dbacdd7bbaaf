/**
 * What the CLI touches of the outside world, passed in so that tests run it in-process: two
 * text sinks, the environment, `fetch` for the admin API and the signals that stop `start`.
 */
export interface TextSink {
  write(text: string): unknown
}

/** Where `imprun start` hears SIGINT / SIGTERM; `process` in production. */
export interface SignalSource {
  once(signal: 'SIGINT' | 'SIGTERM', listener: () => void): unknown
  off(signal: 'SIGINT' | 'SIGTERM', listener: () => void): unknown
}

export interface CliIo {
  stdout: TextSink
  stderr: TextSink
  env: Record<string, string | undefined>
  /** Defaults to the global `fetch`. */
  fetch?: typeof fetch
  /** Defaults to `process`. */
  signals?: SignalSource
}
