/**
 * The embedded platform: one process, one port, nothing else to install. SQLite store under the
 * data directory, in-process environments, the control core with its reconciler, and one fastify
 * server carrying the admin API under /admin (and the other surfaces under their own prefixes).
 */
import { mkdirSync, rmSync } from 'node:fs'
import { join, resolve } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { createLocalProvisioner } from './adapters/local/local-provisioner.ts'
import { createPluginChain, createRateLimitState } from '../runtime/edge/index.ts'
import { EmbeddedRuntime } from '../runtime/embedded-runtime.ts'
import { followInvocationLog } from '../runtime/logs/invocation-log.ts'
import type { SandboxLimits } from '../runtime/sandbox/function-sandbox.ts'
import type { EgressFetchOptions } from '../runtime/sandbox/egress-fetch.ts'
import { createSqliteStore } from './adapters/sqlite/sqlite-store.ts'
import { ensureAdminToken, type AdminTokens } from './admin-token.ts'
import { lockDataDirectory } from './data-directory-lock.ts'
import { createAesSecretBox, loadOrCreateSecretKey, parseSecretKey } from './secrets/aes-secret-box.ts'
import { createControlPlane, type ControlPlane } from './control-plane.ts'
import { registerAdminApi } from './http/admin-api.ts'
import { createHttpServer, listenOrClose } from './http/http-server.ts'
import type { Compiler, SecretBox, Store } from './ports.ts'
import type { FunctionCatalog } from '../runtime/function-catalog.ts'
import { registerMcpSurface } from '../mcp-server/index.ts'
import { registerChatGateway } from '../adaptors/chat-gateway/chat-gateway.ts'

export interface EmbeddedPlatformOptions {
  /** Data directory (default `./.imprun`). */
  dataDirectory?: string
  port?: number
  host?: string
  /** Fixes the admin token instead of generating one on first start. */
  adminToken?: string
  compiler: Compiler
  /** Largest accepted request body, bytes (default 2 MiB). */
  bodyLimit?: number
  logger?: boolean
  reconciler?: { leaseMs?: number; idlePollMs?: number; backoffBaseMs?: number; backoffMaxMs?: number }
  sandbox?: Partial<SandboxLimits>
  /** Egress policy for functions' fetch (default: public addresses only). */
  egress?: EgressFetchOptions
  /** Host-form routing domain: `{gateway}.{domain}/{stage}/{function}`. */
  domain?: string
}

/** What the platform's surfaces are built from. */
export interface PlatformServices {
  store: Store
  control: ControlPlane
  /** Live functions: list and call them (MCP function tools, chat tools). */
  catalog: FunctionCatalog
  /** Verifies the admin bearer token. */
  tokens: AdminTokens
  secretBox: SecretBox
  runtime: EmbeddedRuntime
}

export interface EmbeddedPlatform {
  url: string
  port: number
  dataDirectory: string
  /** The admin token when this start generated it (first start), else null. */
  createdAdminToken: string | null
  tokenFile: string
  control: ControlPlane
  runtime: EmbeddedRuntime
  store: Store
  app: FastifyInstance
  services: PlatformServices
  close(): Promise<void>
}

export async function startEmbeddedPlatform(options: EmbeddedPlatformOptions): Promise<EmbeddedPlatform> {
  const dataDirectory = resolve(options.dataDirectory ?? '.imprun')
  mkdirSync(dataDirectory, { recursive: true, mode: 0o700 })
  const lock = lockDataDirectory(dataDirectory)
  let store: Store
  try {
    store = createSqliteStore({ directory: join(dataDirectory, 'store') })
  } catch (error) {
    lock.release()
    throw error
  }
  const secretKey = process.env.IMPRUN_SECRET_KEY ? parseSecretKey(process.env.IMPRUN_SECRET_KEY) : loadOrCreateSecretKey(join(dataDirectory, 'secret-key'))
  const secretBox = createAesSecretBox(secretKey)
  const rateLimitState = createRateLimitState()
  let control: ControlPlane
  const runtime = new EmbeddedRuntime({
    store,
    secretBox,
    limits: options.sandbox,
    egress: options.egress,
    domain: options.domain,
    createChain: (plugins, scope) =>
      createPluginChain(plugins, {
        scope: `${scope.gatewayId}/${scope.stage}/${scope.functionName}`,
        rateLimitState,
        verifyKey: async (key) => {
          const verified = await control.access.verify(key, scope.gatewayId, scope.stage)
          return verified ? { consumer: verified.applicationId, credentialId: verified.grantId } : null
        },
      }),
  })
  control = createControlPlane({
    store,
    provisioner: createLocalProvisioner(runtime),
    secretBox,
    // The data directory's lock makes this the only control plane on its store.
    exclusive: true,
    compiler: options.compiler,
    reconciler: options.reconciler,
  })
  const tokenFile = join(dataDirectory, 'admin-token')
  const tokens = await ensureAdminToken({ store, token: options.adminToken, tokenFile })

  const app = createHttpServer({ logger: options.logger, bodyLimit: options.bodyLimit })
  app.get('/healthz', async () => ({ status: 'ok' }))
  await registerAdminApi(app, {
    control,
    tokens,
    catalog: runtime.catalog,
    logs: {
      query: (gatewayId, filter) => runtime.log.query(gatewayId, filter),
      follow: (gatewayId, filter, signal) => followInvocationLog(store, gatewayId, filter, signal),
    },
  })
  await runtime.registerRoutes(app)
  // Further surfaces on the shared port (MCP under /mcp, the chat gateway under /v1) register
  // here, each from its own part, given the same services.
  const services: PlatformServices = { store, control, catalog: runtime.catalog, tokens, secretBox, runtime }
  await registerMcpSurface(app, services)
  await registerChatGateway(app, services)

  // Before listening: the first publish must not pay for the compiler's start-up.
  await options.compiler.warm?.()
  await control.start()
  const close = async () => {
    await app.close()
    await control.stop()
    await runtime.close()
    options.compiler.close?.()
    await store.close()
    lock.release()
  }
  const host = options.host ?? '127.0.0.1'
  const port = await listenOrClose(app, { port: options.port ?? 8080, host }, async () => {
    // A first start that cannot listen must not swallow the token it never showed.
    if (tokens.created) {
      await store.system().collection('settings').deleteOne({ _id: 'admin-token' })
      rmSync(tokenFile, { force: true })
    }
    await close()
  })
  const urlHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host

  return {
    url: `http://${urlHost}:${port}`,
    port,
    dataDirectory,
    createdAdminToken: tokens.created,
    tokenFile,
    control,
    runtime,
    store,
    app,
    services,
    close,
  }
}
