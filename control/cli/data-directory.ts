/** Where the embedded platform keeps its data; shared by `imprun start` and the admin commands. */
import { resolve } from 'node:path'

export const defaultDataDirectory = '.imprun'

/** `--data-dir`, else IMPRUN_DATA_DIR, else ./.imprun, as an absolute path. */
export function resolveDataDirectory(flag: string | undefined, env: Record<string, string | undefined>): string {
  return resolve(flag ?? (env.IMPRUN_DATA_DIR || defaultDataDirectory))
}
