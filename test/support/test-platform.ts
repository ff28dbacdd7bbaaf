/**
 * One real embedded platform per test file (real compiler and sandbox, a fresh temp directory,
 * loopback port), started before the file's tests with its gateways Started, and removed after.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before } from 'node:test'
import { startEmbeddedPlatform, type EmbeddedPlatform, type EmbeddedPlatformOptions } from '../../control/platform.ts'
import { createDefaultCompiler } from '../../runtime/compile/index.ts'
import { platformClient } from './platform-client.ts'

export interface TestPlatformOptions {
  token: string
  /** Gateways created (and waited for until Started) before the tests. */
  gateways?: Array<{ id: string; pipeline?: boolean }>
  /** Anything else for startEmbeddedPlatform (egress, sandbox limits …). */
  platform?: Partial<EmbeddedPlatformOptions>
  /** Runs once the platform and its gateways are up (publish fixtures …). */
  setup?: (client: ReturnType<typeof platformClient>) => Promise<void>
}

export function useTestPlatform(options: TestPlatformOptions) {
  let platform: EmbeddedPlatform | undefined
  let directory: string | undefined
  const client = platformClient(() => current().url, options.token)
  const current = (): EmbeddedPlatform => {
    if (!platform) throw new Error('the test platform is not started (use it inside tests or later hooks)')
    return platform
  }
  before(async () => {
    directory = await mkdtemp(join(tmpdir(), 'imprun-test-'))
    platform = await startEmbeddedPlatform({ dataDirectory: directory, port: 0, adminToken: options.token, compiler: createDefaultCompiler(), reconciler: { idlePollMs: 20 }, ...options.platform })
    for (const gateway of options.gateways ?? []) {
      const created = await client.admin('POST', '/admin/gateways', gateway)
      if (created.status !== 201) throw new Error(`creating gateway ${gateway.id}: ${created.status} ${JSON.stringify(created.body)}`)
      await client.waitForPhase(gateway.id, 'Started')
    }
    await options.setup?.(client)
  })
  after(async () => {
    await platform?.close()
    if (directory) await rm(directory, { recursive: true, force: true })
  })
  return { ...client, platform: current }
}
