import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { storeContract } from '../../store-contract.ts'
import { createSqliteStore } from './sqlite-store.ts'

storeContract('sqlite', {
  async open() {
    const directory = await mkdtemp(join(tmpdir(), 'imprun-sqlite-'))
    return {
      store: createSqliteStore({ directory }),
      cleanup: () => rm(directory, { recursive: true, force: true }),
    }
  },
})
