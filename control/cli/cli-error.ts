/**
 * The CLI's error: a string `code` (the server's wire code for API errors, a local one
 * otherwise), the exit code, and optional hint lines and usage text printed after the message.
 */
export class CliError extends Error {
  override readonly name = 'CliError'
  readonly code: string
  /** 1 for failures (API, files, network), 2 for wrong usage. */
  readonly exitCode: 1 | 2
  readonly hints: string[]
  readonly usage: string | undefined
  readonly details: Record<string, unknown> | undefined

  constructor(code: string, message: string, options: { exitCode?: 1 | 2; hints?: string[]; usage?: string; details?: Record<string, unknown>; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.code = code
    this.exitCode = options.exitCode ?? 1
    this.hints = options.hints ?? []
    this.usage = options.usage
    this.details = options.details
  }

  withHint(hint: string): CliError {
    return new CliError(this.code, this.message, { exitCode: this.exitCode, hints: [...this.hints, hint], usage: this.usage, details: this.details, cause: this.cause })
  }
}

export function usageError(message: string, usage?: string): CliError {
  return new CliError('usage', message, { exitCode: 2, usage })
}
