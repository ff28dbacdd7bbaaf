/**
 * One platform process per data directory. Two embedded platforms on one directory would each
 * believe it serves every gateway (the in-process environments of one are invisible to the
 * other) and fight over them, so the second is refused with a clear error. The lock is a file
 * holding the owner's pid, created exclusively; a lock left by a process that no longer runs
 * (kill -9, power loss) is taken over.
 */
import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { ImprunError } from './errors.ts'

export interface DataDirectoryLock {
  release(): void
}

export function lockDataDirectory(directory: string): DataDirectoryLock {
  const file = join(directory, 'lock')
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const descriptor = openSync(file, 'wx', 0o600)
      writeSync(descriptor, `${process.pid}\n`)
      closeSync(descriptor)
      let released = false
      return {
        release() {
          if (released) return
          released = true
          // Only our own lock: a takeover after we were presumed dead must not be undone.
          if (ownerOf(file) === process.pid) rmSync(file, { force: true })
        },
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
      const owner = ownerOf(file)
      if (owner !== null && isRunning(owner)) {
        throw new ImprunError('conflict', `the data directory ${directory} is in use by another imprun process (pid ${owner}); stop it, or give this one another --data-dir (imprun mcp can relay to the running one with --url)`, {
          details: { directory, pid: owner },
        })
      }
      // Stale (its process is gone) or unreadable: remove and try again.
      rmSync(file, { force: true })
    }
  }
  throw new ImprunError('conflict', `could not take the lock on ${directory}`, { details: { directory } })
}

function ownerOf(file: string): number | null {
  try {
    const pid = Number.parseInt(readFileSync(file, 'utf8').trim(), 10)
    return Number.isInteger(pid) && pid > 0 ? pid : null
  } catch {
    return null
  }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}
