/**
 * Argument parsing on top of `node:util` parseArgs, with option descriptions kept beside their
 * definitions so that usage text is generated from the same table that parses.
 */
import { parseArgs, type ParseArgsOptionsConfig } from 'node:util'
import { usageError } from './cli-error.ts'

export interface OptionSpec {
  type: 'string' | 'boolean'
  short?: string
  /** Placeholder of the value in usage text (string options), e.g. `STAGE`. */
  value?: string
  description: string
  /** Shown as `--no-<name>` in usage: the option exists to turn a default off. */
  negated?: boolean
}

export type OptionSpecs = Record<string, OptionSpec>

export const helpOption: OptionSpecs = {
  help: { type: 'boolean', short: 'h', description: 'Show this help' },
}

export interface ParsedCommandLine {
  positionals: string[]
  help: boolean
  string(name: string): string | undefined
  flag(name: string): boolean | undefined
  /** An integer option within bounds; a usage error otherwise. */
  integer(name: string, bounds?: { min?: number; max?: number }): number | undefined
}

/** Parses `argv` strictly against `options`; any mistake is a usage error carrying `usage`. */
export function parseCommandLine(argv: string[], options: OptionSpecs, usage: string): ParsedCommandLine {
  const config: ParseArgsOptionsConfig = {}
  for (const [name, spec] of Object.entries({ ...options, ...helpOption })) {
    config[name] = spec.short ? { type: spec.type, short: spec.short } : { type: spec.type }
  }
  let parsed: ReturnType<typeof parseArgs>
  try {
    // allowNegative gives every boolean a --no-<name> form; --no-pipeline relies on it.
    parsed = parseArgs({ args: argv, options: config, strict: true, allowPositionals: true, allowNegative: true })
  } catch (error) {
    const message = error instanceof Error ? (error.message.split('. ')[0] ?? error.message) : String(error)
    throw usageError(message, usage)
  }
  const { values, positionals } = parsed
  const string = (name: string) => {
    const value = values[name]
    return typeof value === 'string' ? value : undefined
  }
  return {
    positionals,
    help: values.help === true,
    string,
    flag(name) {
      const value = values[name]
      return typeof value === 'boolean' ? value : undefined
    },
    integer(name, bounds = {}) {
      const text = string(name)
      if (text === undefined) return undefined
      return parseInteger(text, `--${name}`, bounds, usage)
    },
  }
}

export function parseInteger(text: string, what: string, bounds: { min?: number; max?: number }, usage?: string): number {
  const value = Number(text)
  const { min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER } = bounds
  if (!/^-?\d+$/.test(text.trim()) || !Number.isSafeInteger(value) || value < min || value > max) {
    throw usageError(`${what} must be an integer from ${min} to ${max}, not '${text}'`, usage)
  }
  return value
}

/** Checks the positional count against `arguments` (`<required>`, `[optional]`). */
export function checkPositionals(positionals: string[], argumentNames: readonly string[], usage: string): void {
  const required = argumentNames.filter((name) => name.startsWith('<')).length
  if (positionals.length < required) {
    throw usageError(`missing ${argumentNames.slice(positionals.length, required).join(' ')}`, usage)
  }
  if (positionals.length > argumentNames.length) {
    throw usageError(`unexpected argument '${positionals[argumentNames.length]}'`, usage)
  }
}

/** Two aligned columns: `--name VALUE` and the description. */
export function formatOptions(options: OptionSpecs): string[] {
  const rows = Object.entries(options).map(([name, spec]) => {
    const flag = spec.negated ? `--no-${name}` : `--${name}`
    const short = spec.short ? `-${spec.short}, ` : ''
    const value = spec.type === 'string' ? ` ${spec.value ?? 'VALUE'}` : ''
    return [`${short}${flag}${value}`, spec.description] as const
  })
  return formatColumns(rows)
}

export function formatColumns(rows: ReadonlyArray<readonly [string, string]>): string[] {
  const width = Math.max(0, ...rows.map(([left]) => left.length))
  return rows.map(([left, right]) => `  ${left.padEnd(width)}  ${right}`.trimEnd())
}
