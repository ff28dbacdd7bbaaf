/**
 * The runtime as cluster mode runs it: one process (one Deployment replica) serves ONE
 * environment of ONE gateway behind APISIX. It is the embedded runtime (live registry following
 * the store's change feed — MongoDB change streams in cluster mode —, sandbox, invocation log,
 * data plane) with three differences:
 *
 * - paths arrive as APISIX forwards them, `/<stage>/<function>` on any host; they are mapped onto
 *   the data plane's `/<gateway>/<stage>/<function>` form for the one gateway served;
 * - APISIX already ran the stage's plugins (base CORS < gateway < environment), so the runtime's
 *   own chain runs only what the edge could not: plugins a FUNCTION sets or changes, and
 *   key-auth again — APISIX consumers are global, so only here is a key checked against the
 *   grant for THIS gateway and stage (see docs/decisions/0601-cluster-edge-plugins-and-grant-keys.md);
 * - `/healthz` (liveness: the process answers) and `/readyz` (readiness: the gateway's live
 *   state has been loaded from the store) for the Kubernetes probes.
 */
import type { FastifyInstance } from 'fastify'
import { createHttpServer, listenOrClose } from '../control/http/http-server.ts'
import { AccessService } from '../control/domain/access.ts'
import { GatewayService } from '../control/domain/gateways.ts'
import { effectivePlugins, type PluginConfigs } from '../control/domain/plugins.ts'
import { systemClock, type SecretBox, type Stage, type Store } from '../control/ports.ts'
import { createPluginChain, createRateLimitState } from './edge/index.ts'
import { EmbeddedRuntime } from './embedded-runtime.ts'
import type { EdgeChain } from './http/data-plane.ts'
import type { SandboxLimits } from './sandbox/function-sandbox.ts'
import type { EgressFetchOptions } from './sandbox/egress-fetch.ts'

export interface ClusterRuntimeOptions {
  store: Store
  secretBox: SecretBox
  gatewayId: string
  stage: Stage
  port?: number
  host?: string
  limits?: Partial<SandboxLimits>
  egress?: EgressFetchOptions
  bodyLimit?: number
  logger?: boolean
}

export interface ClusterRuntime {
  url: string
  port: number
  app: FastifyInstance
  runtime: EmbeddedRuntime
  /** Whether `/readyz` answers 200 now. */
  isReady(): Promise<boolean>
  close(): Promise<void>
}

/**
 * The plugins the runtime itself runs for one function in cluster mode: key-auth (the binding
 * check) and every plugin whose conf differs from what the edge ran for the stage.
 */
export function runtimeLayerPlugins(effective: PluginConfigs, stage: PluginConfigs): PluginConfigs {
  const result: PluginConfigs = {}
  for (const [name, conf] of Object.entries(effective)) {
    if (name === 'key-auth' || JSON.stringify(stage[name]) !== JSON.stringify(conf)) result[name] = conf
  }
  return result
}

export async function startClusterRuntime(options: ClusterRuntimeOptions): Promise<ClusterRuntime> {
  const { store, gatewayId, stage } = options
  const gateways = new GatewayService({ store, clock: systemClock })
  const access = new AccessService({ store, clock: systemClock, gateways })
  const rateLimitState = createRateLimitState()
  let runtime: EmbeddedRuntime
  const createChain = (effective: PluginConfigs, scope: { gatewayId: string; stage: Stage; functionName: string }): EdgeChain => {
    let built: Promise<EdgeChain> | null = null
    const build = async (): Promise<EdgeChain> => {
      const gateway = await runtime.registry.gateway(scope.gatewayId)
      const environment = gateway?.environments.get(scope.stage)
      const stagePlugins = effectivePlugins({ gateway: gateway?.plugins ?? {}, environment: environment?.plugins ?? {} })
      return createPluginChain(runtimeLayerPlugins(effective, stagePlugins), {
        scope: `${scope.gatewayId}/${scope.stage}/${scope.functionName}`,
        rateLimitState,
        verifyKey: async (key) => {
          const verified = await access.verify(key, scope.gatewayId, scope.stage)
          return verified ? { consumer: verified.applicationId, credentialId: verified.grantId } : null
        },
      })
    }
    return {
      run: async (request) => {
        built ??= build().catch((error: unknown) => {
          built = null
          throw error
        })
        return (await built).run(request)
      },
    }
  }
  runtime = new EmbeddedRuntime({ store, secretBox: options.secretBox, createChain, limits: options.limits, egress: options.egress })

  const probes = new Set(['/healthz', '/readyz'])
  const app = createHttpServer({
    logger: options.logger,
    bodyLimit: options.bodyLimit,
    // APISIX forwards `/<stage>/<function>`; the data plane routes `/<gateway>/<stage>/<function>`.
    rewriteUrl: (request) => {
      const url = request.url ?? '/'
      return probes.has(url.split('?')[0]!) ? url : `/${gatewayId}${url.startsWith('/') ? '' : '/'}${url}`
    },
  })
  const isReady = async () => {
    try {
      // A start that found the store unreachable is retried by the next probe.
      if (!runtime.isServing(gatewayId, stage)) await runtime.startEnvironment(gatewayId, stage)
      return (await runtime.registry.gateway(gatewayId)) !== null && runtime.isServing(gatewayId, stage)
    } catch {
      return false
    }
  }
  app.get('/healthz', async () => ({ status: 'ok' }))
  app.get('/readyz', async (_request, reply) => {
    const ready = await isReady()
    return reply.status(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not-ready', gateway: gatewayId, stage })
  })
  await runtime.registerRoutes(app)
  // Loading the gateway also starts following its change feed (hot reload).
  await runtime.startEnvironment(gatewayId, stage).catch(() => {})
  const close = async () => {
    await app.close()
    await runtime.close()
  }
  const port = await listenOrClose(app, { port: options.port ?? 8080, host: options.host ?? '0.0.0.0' }, close)
  return { url: `http://127.0.0.1:${port}`, port, app, runtime, isReady, close }
}
