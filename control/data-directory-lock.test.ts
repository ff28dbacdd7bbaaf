import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { existsSync, writeFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { isImprunError } from './errors.ts'
import { lockDataDirectory } from './data-directory-lock.ts'
import { startEmbeddedPlatform } from './platform.ts'
import { TestDoubleCompiler } from './testing/test-doubles.ts'

test('a second platform on the same data directory is refused; after close it starts', async () => {
  const directory = await mkdtemp(join(tmpdir(), 'imprun-lock-'))
  try {
    const first = await startEmbeddedPlatform({ dataDirectory: directory, port: 0, adminToken: 't', compiler: new TestDoubleCompiler() })
    await assert.rejects(
      startEmbeddedPlatform({ dataDirectory: directory, port: 0, adminToken: 't', compiler: new TestDoubleCompiler() }),
      (error) => isImprunError(error, 'conflict') && /in use by another imprun process \(pid \d+\)/.test(error.message),
    )
    await first.close()
    assert.ok(!existsSync(join(directory, 'lock')), 'close releases the lock')
    const second = await startEmbeddedPlatform({ dataDirectory: directory, port: 0, adminToken: 't', compiler: new TestDoubleCompiler() })
    await second.close()
  } finally {
    await rm(directory, { recursive: true, force: true })
  }
})

test('a lock left by a process that is gone (kill -9) is taken over', async () => {
  const directory = await mkdtemp(join(tmpdir(), 'imprun-lock-'))
  try {
    const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' })
    writeFileSync(join(directory, 'lock'), `${gone.stdout}\n`)
    const lock = lockDataDirectory(directory)
    lock.release()
    assert.ok(!existsSync(join(directory, 'lock')))
  } finally {
    await rm(directory, { recursive: true, force: true })
  }
})
