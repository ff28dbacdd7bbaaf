/**
 * Arguments that carry JSON either inline (`'{"cors":{}}'`) or from a file (`@plugins.json`),
 * the curl convention, so that large plugin configs need no shell quoting.
 */
import { readFileSync } from 'node:fs'
import { CliError, usageError } from './cli-error.ts'
import type { AdminInvocation } from './admin-command.ts'
import type { OptionSpecs } from './command-line.ts'

export function readJsonArgument(argument: string, what: string, usage: string): unknown {
  let text = argument
  if (argument.startsWith('@')) {
    const path = argument.slice(1)
    try {
      text = readFileSync(path, 'utf8')
    } catch (error) {
      throw new CliError('file_not_found', `cannot read ${what} from ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`, { cause: error })
    }
  }
  try {
    return JSON.parse(text)
  } catch (error) {
    throw usageError(`${what} is not valid JSON: ${(error as Error).message}`, usage)
  }
}

/**
 * A plugin map (`{"limit-count": {...}}`). The request body shape `{"plugins": {...}}` is taken
 * too, since a file saved from a `get` response has it; no APISIX plugin is called `plugins`.
 */
export function readPluginsArgument(argument: string, usage: string): Record<string, unknown> {
  let value = readJsonArgument(argument, 'the plugin configs', usage)
  if (isObject(value) && Object.keys(value).length === 1 && isObject(value.plugins)) value = value.plugins
  if (!isObject(value)) {
    throw usageError('the plugin configs must be a JSON object of plugin name → config, e.g. \'{"limit-count":{"count":10,"time_window":60}}\'', usage)
  }
  return value
}

/** `--merge` of the `plugins` commands: PATCH the named plugins instead of PUT-ting the whole set. */
export const mergePluginsOption: OptionSpecs = {
  merge: { type: 'boolean', description: 'Set only the named plugins (null removes one) and keep the others' },
}

/**
 * Sends the plugin configs of `argument` to a `…/plugins` route: PUT (the whole set), or PATCH
 * with `--merge` (only the named plugins).
 */
export function sendPlugins<T>(invocation: AdminInvocation, path: string, argument: string): Promise<T> {
  const body = { plugins: readPluginsArgument(argument, invocation.usage) }
  return invocation.commandLine.flag('merge') === true ? invocation.client.patch<T>(path, body) : invocation.client.put<T>(path, body)
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
