/**
 * Which server the admin commands talk to and with which token: flags first, then the
 * environment, then the token file that `imprun start` wrote into its data directory — so that on
 * the machine running the server no token needs to be passed at all.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { usageError } from './cli-error.ts'
import type { OptionSpecs, ParsedCommandLine } from './command-line.ts'
import { resolveDataDirectory } from './data-directory.ts'

export const defaultServerUrl = 'http://127.0.0.1:8080'

export const connectionOptions: OptionSpecs = {
  url: { type: 'string', value: 'URL', description: `Server URL (env IMPRUN_URL; default ${defaultServerUrl})` },
  token: { type: 'string', value: 'TOKEN', description: 'Admin token (env IMPRUN_TOKEN; default: read <data-dir>/admin-token)' },
  'data-dir': { type: 'string', value: 'DIR', description: 'Data directory with the admin-token file (env IMPRUN_DATA_DIR; default ./.imprun)' },
  json: { type: 'boolean', description: 'Print the raw JSON response' },
}

export interface AdminConnection {
  url: string
  token: string | undefined
  /** Where the token came from, for the hint after a 401. */
  tokenSource: 'flag' | 'env' | 'file' | 'none'
  tokenFile: string
}

export function resolveConnection(commandLine: ParsedCommandLine, env: Record<string, string | undefined>, usage: string): AdminConnection {
  const url = commandLine.string('url') ?? (env.IMPRUN_URL || defaultServerUrl)
  let parsedUrl: URL
  try {
    parsedUrl = new URL(url)
  } catch {
    throw usageError(`--url '${url}' is not a URL`, usage)
  }
  if (parsedUrl.protocol !== 'http:' && parsedUrl.protocol !== 'https:') {
    throw usageError(`--url '${url}' must be an http or https URL`, usage)
  }
  const tokenFile = join(resolveDataDirectory(commandLine.string('data-dir'), env), 'admin-token')
  const flag = commandLine.string('token')
  if (flag) return { url, token: flag, tokenSource: 'flag', tokenFile }
  if (env.IMPRUN_TOKEN) return { url, token: env.IMPRUN_TOKEN, tokenSource: 'env', tokenFile }
  const fromFile = readTokenFile(tokenFile)
  return fromFile ? { url, token: fromFile, tokenSource: 'file', tokenFile } : { url, token: undefined, tokenSource: 'none', tokenFile }
}

/** What to tell the user after the server refused the token. */
export function unauthorizedHint(connection: AdminConnection): string {
  switch (connection.tokenSource) {
    case 'none':
      return `no admin token found: pass --token, set IMPRUN_TOKEN, or point --data-dir at the server's data directory (looked for ${connection.tokenFile})`
    case 'file':
      return `the token in ${connection.tokenFile} was refused: is ${connection.url} the server that uses this data directory?`
    case 'env':
      return 'the token in IMPRUN_TOKEN was refused'
    case 'flag':
      return 'the token given with --token was refused'
  }
}

function readTokenFile(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim() || undefined
  } catch {
    // A missing or unreadable file is the same as no token: the server answers 401 and the
    // hint names the file.
    return undefined
  }
}
