/**
 * Reads a function's source from disk: one TypeScript file becomes the entry `index.ts`; a
 * directory contributes every .ts and .json file under it by relative `/`-separated path
 * (dependencies and hidden folders left out), with `index.ts` as its entry.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { extname, join, relative, sep } from 'node:path'
import type { SourceFiles } from '../ports.ts'
import { CliError } from './cli-error.ts'

const sourceExtensions = new Set(['.ts', '.json'])
const skippedDirectories = new Set(['node_modules'])

export function readFunctionFiles(path: string): SourceFiles {
  let stats
  try {
    stats = statSync(path)
  } catch (error) {
    throw new CliError('file_not_found', `cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`, { cause: error })
  }
  if (stats.isFile()) {
    if (extname(path) !== '.ts') throw new CliError('invalid_source', `${path} is not a .ts file; give a .ts file or a directory with index.ts`)
    return { 'index.ts': readFileSync(path, 'utf8') }
  }
  const files: SourceFiles = {}
  collect(path, path, files)
  if (files['index.ts'] === undefined) {
    throw new CliError('invalid_source', `${path} has no index.ts: a function directory needs it as its entry`, { details: { files: Object.keys(files) } })
  }
  return files
}

function collect(root: string, directory: string, files: SourceFiles): void {
  const entries = readdirSync(directory, { withFileTypes: true }).sort((left, right) => left.name.localeCompare(right.name))
  for (const entry of entries) {
    if (entry.name.startsWith('.')) continue
    const path = join(directory, entry.name)
    if (entry.isDirectory()) {
      if (!skippedDirectories.has(entry.name)) collect(root, path, files)
    } else if (entry.isFile() && sourceExtensions.has(extname(entry.name))) {
      files[relative(root, path).split(sep).join('/')] = readFileSync(path, 'utf8')
    }
  }
}
