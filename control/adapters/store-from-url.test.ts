import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { isImprunError } from '../errors.ts'
import { ensurePlatformIndexes, redact, storeFromUrl } from './store-from-url.ts'

test('sqlite: and mongodb:// URLs open the matching store; others are refused without leaking a password', async () => {
  const directory = mkdtempSync(join(tmpdir(), 'imprun-store-url-'))
  try {
    const store = storeFromUrl(`sqlite:${directory}`)
    assert.equal(store.kind, 'sqlite')
    await ensurePlatformIndexes(store)
    await ensurePlatformIndexes(store)
    await store.close()
    const mongo = storeFromUrl('mongodb://127.0.0.1:1/?replicaSet=rs0')
    assert.equal(mongo.kind, 'mongodb')
    await mongo.close()
    assert.throws(() => storeFromUrl('postgres://u:secret@db/x'), (error) => isImprunError(error, 'bad_request') && !error.message.includes('secret'))
    assert.throws(() => storeFromUrl('sqlite:'), (error) => isImprunError(error, 'bad_request'))
    assert.equal(redact('mongodb://imprun:s3cret@mongo-0:27017/'), 'mongodb://imprun:***@mongo-0:27017/')
  } finally {
    rmSync(directory, { recursive: true, force: true })
  }
})
