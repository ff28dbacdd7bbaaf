/**
 * `imprun control`: the cluster-mode control plane — admin API, gateway reconciler driving the
 * Kubernetes provisioner, and the edge sync keeping APISIX in step — on a shared store
 * (MongoDB). `startClusterControlPlane` is the assembly (the cluster counterpart of
 * control/platform.ts); `runControl` parses the command line and runs it until a signal.
 */
import type { FastifyInstance } from 'fastify'
import { createApisixAdminSync } from '../adapters/apisix/apisix-admin-sync.ts'
import { createApisixCrdSync } from '../adapters/apisix/apisix-crd-sync.ts'
import { createApisixStandaloneSync } from '../adapters/apisix/apisix-standalone-sync.ts'
import { createKubernetesClient, kubeConfigForServer, loadKubeConfig, type KubernetesClient } from '../adapters/kubernetes/kubernetes-client.ts'
import { defaultClusterSettings, namespaceName } from '../adapters/kubernetes/kubernetes-manifests.ts'
import { createKubernetesProvisioner, runtimeUpstream } from '../adapters/kubernetes/kubernetes-provisioner.ts'
import { ensurePlatformIndexes, redact, storeFromUrl } from '../adapters/store-from-url.ts'
import { ensureAdminToken } from '../admin-token.ts'
import { createControlPlane, type ControlPlane } from '../control-plane.ts'
import { buildGatewayEdgeState, captureIssuedKeys, createGrantKeyVault, EdgeSyncLoop, withEdge, type EdgeSync, type EdgeTopology } from '../edge-sync.ts'
import { isImprunError } from '../errors.ts'
import { registerAdminApi } from '../http/admin-api.ts'
import { createHttpServer, listenOrClose } from '../http/http-server.ts'
import type { Compiler, Stage, Store } from '../ports.ts'
import { createAesSecretBox } from '../secrets/aes-secret-box.ts'
import { CliError, usageError } from './cli-error.ts'
import type { CliIo } from './cli-io.ts'
import { checkPositionals, formatOptions, helpOption, parseCommandLine, parseInteger, type OptionSpecs } from './command-line.ts'
import { requireSecretKey } from './runtime-command.ts'
import { waitForStopSignal } from './stop-signal.ts'

export type EdgeKind = 'apisix-crd' | 'apisix-admin' | 'apisix-standalone'

export interface ClusterControlOptions {
  store: Store
  /** The store URL the gateway runtimes get in their Secret (may differ per gateway). */
  runtimeStoreUrl(gatewayId: string): string
  secretKey: Buffer
  compiler: Compiler
  adminToken: string
  kubernetes: KubernetesClient
  image: string
  edge: { kind: 'apisix-crd'; ingressClassName?: string } | { kind: 'apisix-admin'; url: string; adminKey: string } | { kind: 'apisix-standalone'; file: string }
  /** Hosts of a gateway are `<gateway>.<domain>` (no host match when unset). */
  domain?: string
  namespacePrefix?: string
  apisixNamespace?: string
  runtimePort?: number
  port?: number
  host?: string
  logger?: boolean
  reconciler?: { leaseMs?: number; idlePollMs?: number; backoffBaseMs?: number; backoffMaxMs?: number; readinessPollMs?: number }
}

export interface ClusterControlPlane {
  url: string
  port: number
  app: FastifyInstance
  control: ControlPlane
  edge: EdgeSync
  edgeLoop: EdgeSyncLoop
  close(): Promise<void>
}

export async function startClusterControlPlane(options: ClusterControlOptions): Promise<ClusterControlPlane> {
  const { store } = options
  const secretBox = createAesSecretBox(options.secretKey)
  const settings = {
    namespacePrefix: options.namespacePrefix ?? defaultClusterSettings.namespacePrefix,
    port: options.runtimePort ?? defaultClusterSettings.port,
  }
  const edge: EdgeSync =
    options.edge.kind === 'apisix-crd'
      ? createApisixCrdSync({
          kubernetes: { client: options.kubernetes },
          namespaceOf: (gatewayId) => namespaceName(gatewayId, settings),
          ...(options.edge.ingressClassName ? { ingressClassName: options.edge.ingressClassName } : {}),
        })
      : options.edge.kind === 'apisix-admin'
        ? createApisixAdminSync({ url: options.edge.url, adminKey: options.edge.adminKey })
        : createApisixStandaloneSync({ file: options.edge.file })
  const topology: EdgeTopology = {
    upstream: (gatewayId: string, stage: Stage) => runtimeUpstream(gatewayId, stage, settings),
    hosts: (gatewayId: string) => (options.domain ? [`${gatewayId}.${options.domain}`] : []),
  }
  const vault = createGrantKeyVault({ store, secretBox })
  const desiredState = (gatewayId: string) => buildGatewayEdgeState(gatewayId, { store, vault, topology })
  const provisioner = withEdge(
    createKubernetesProvisioner({
      kubernetes: { client: options.kubernetes },
      image: options.image,
      namespacePrefix: settings.namespacePrefix,
      port: settings.port,
      ...(options.apisixNamespace ? { apisixNamespace: options.apisixNamespace } : {}),
      secretValues: (gatewayId) => ({ storeUrl: options.runtimeStoreUrl(gatewayId), secretKey: options.secretKey.toString('base64url') }),
    }),
    { edge, desiredState },
  )
  await ensurePlatformIndexes(store)
  const control = createControlPlane({ store, provisioner, compiler: options.compiler, secretBox, reconciler: options.reconciler })
  const edgeLoop = new EdgeSyncLoop({ store, edge, desiredState })
  captureIssuedKeys(control.access, vault, () => {})
  const tokens = await ensureAdminToken({ store, token: options.adminToken })

  const app = createHttpServer({ logger: options.logger })
  app.get('/healthz', async () => ({ status: 'ok' }))
  app.get('/readyz', async (_request, reply) => {
    try {
      await store.system().collection('gateways').countDocuments({})
      return { status: 'ready' }
    } catch {
      return reply.status(503).send({ status: 'store-unavailable' })
    }
  })
  await registerAdminApi(app, { control, tokens })
  // Before listening: the first publish must not pay for the compiler's start-up.
  await options.compiler.warm?.()
  await control.start()
  await edgeLoop.start()
  const close = async () => {
    await app.close()
    await edgeLoop.stop()
    await control.stop()
    options.compiler.close?.()
  }
  const port = await listenOrClose(app, { port: options.port ?? 8080, host: options.host ?? '0.0.0.0' }, close)
  return { url: `http://127.0.0.1:${port}`, port, app, control, edge, edgeLoop, close }
}

const controlOptions: OptionSpecs = {
  store: { type: 'string', value: 'URL', description: 'Store: mongodb://… (env IMPRUN_STORE)' },
  'runtime-store': { type: 'string', value: 'URL', description: 'Store URL handed to gateway runtimes (env IMPRUN_RUNTIME_STORE; default --store)' },
  'database-prefix': { type: 'string', value: 'NAME', description: 'MongoDB database prefix (env IMPRUN_DATABASE_PREFIX; default imprun)' },
  provisioner: { type: 'string', value: 'KIND', description: 'kubernetes (the only cluster provisioner)' },
  edge: { type: 'string', value: 'KIND', description: 'apisix-crd | apisix-admin | apisix-standalone (env IMPRUN_EDGE)' },
  image: { type: 'string', value: 'IMAGE', description: 'Runtime image for gateway Deployments (env IMPRUN_RUNTIME_IMAGE)' },
  kubeconfig: { type: 'string', value: 'FILE', description: 'kubeconfig file (default: in-cluster service account, else ~/.kube/config)' },
  'kube-server': { type: 'string', value: 'URL', description: 'API server URL with a bearer token from KUBE_TOKEN (instead of a kubeconfig)' },
  'namespace-prefix': { type: 'string', value: 'PREFIX', description: 'Gateway namespaces are PREFIX<gateway> (default imprun-gw-)' },
  'apisix-namespace': { type: 'string', value: 'NS', description: 'Namespace APISIX runs in, admitted by the NetworkPolicies (default apisix)' },
  'apisix-admin-url': { type: 'string', value: 'URL', description: 'APISIX Admin API (env APISIX_ADMIN_URL; key from APISIX_ADMIN_KEY)' },
  'apisix-config': { type: 'string', value: 'FILE', description: 'apisix.yaml to write (apisix-standalone; env IMPRUN_APISIX_CONFIG)' },
  'ingress-class': { type: 'string', value: 'NAME', description: 'ingressClassName of the APISIX custom resources (apisix-crd)' },
  domain: { type: 'string', value: 'DOMAIN', description: 'Gateways answer on <gateway>.DOMAIN (env IMPRUN_DOMAIN)' },
  port: { type: 'string', value: 'N', description: 'Admin API port (env PORT; default 8080)' },
  host: { type: 'string', value: 'HOST', description: 'Interface (default 0.0.0.0)' },
}

export const controlUsage = [
  'Usage: imprun control --store URL --provisioner kubernetes --edge KIND [options]',
  '',
  'Runs the cluster control plane: admin API (/admin), gateway reconciler (Kubernetes) and the',
  'APISIX edge sync. Secrets from the environment: IMPRUN_ADMIN_TOKEN (the admin bearer token),',
  'IMPRUN_SECRET_KEY (seals secrets and grant keys), APISIX_ADMIN_KEY (apisix-admin).',
  '',
  'Options:',
  ...formatOptions({ ...controlOptions, ...helpOption }),
  '',
].join('\n')

export async function runControl(argv: string[], context: { io: CliIo; loadCompiler: () => Compiler | Promise<Compiler> }): Promise<number> {
  const { io } = context
  const commandLine = parseCommandLine(argv, controlOptions, controlUsage)
  if (commandLine.help) {
    io.stdout.write(controlUsage)
    return 0
  }
  checkPositionals(commandLine.positionals, [], controlUsage)
  const storeUrl = commandLine.string('store') ?? io.env.IMPRUN_STORE
  if (!storeUrl) throw usageError('--store (or IMPRUN_STORE) is required', controlUsage)
  const provisionerKind = commandLine.string('provisioner') ?? 'kubernetes'
  if (provisionerKind !== 'kubernetes') throw usageError(`--provisioner ${provisionerKind}: cluster mode provisions on kubernetes (use \`imprun start\` for the embedded platform)`, controlUsage)
  const edgeKind = commandLine.string('edge') ?? io.env.IMPRUN_EDGE
  if (edgeKind !== 'apisix-crd' && edgeKind !== 'apisix-admin' && edgeKind !== 'apisix-standalone') {
    throw usageError('--edge must be apisix-crd, apisix-admin or apisix-standalone', controlUsage)
  }
  const image = commandLine.string('image') ?? io.env.IMPRUN_RUNTIME_IMAGE
  if (!image) throw usageError('--image (or IMPRUN_RUNTIME_IMAGE) is required: the image gateway runtimes run', controlUsage)
  const adminToken = io.env.IMPRUN_ADMIN_TOKEN
  if (!adminToken) throw new CliError('missing_admin_token', 'IMPRUN_ADMIN_TOKEN is not set: the cluster control plane takes its admin token from a Secret', { exitCode: 2 })
  const secretKey = requireSecretKey(io)
  let edge: ClusterControlOptions['edge']
  if (edgeKind === 'apisix-admin') {
    const url = commandLine.string('apisix-admin-url') ?? io.env.APISIX_ADMIN_URL
    if (!url || !io.env.APISIX_ADMIN_KEY) throw usageError('--edge apisix-admin needs --apisix-admin-url (or APISIX_ADMIN_URL) and APISIX_ADMIN_KEY', controlUsage)
    edge = { kind: 'apisix-admin', url, adminKey: io.env.APISIX_ADMIN_KEY }
  } else if (edgeKind === 'apisix-standalone') {
    const file = commandLine.string('apisix-config') ?? io.env.IMPRUN_APISIX_CONFIG
    if (!file) throw usageError('--edge apisix-standalone needs --apisix-config FILE', controlUsage)
    edge = { kind: 'apisix-standalone', file }
  } else {
    const ingressClassName = commandLine.string('ingress-class')
    edge = ingressClassName ? { kind: 'apisix-crd', ingressClassName } : { kind: 'apisix-crd' }
  }
  const kubeServer = commandLine.string('kube-server')
  const kubeConfig = kubeServer
    ? kubeConfigForServer(kubeServer, io.env.KUBE_TOKEN)
    : loadKubeConfig({ ...(commandLine.string('kubeconfig') ? { file: commandLine.string('kubeconfig')! } : {}), inCluster: !commandLine.string('kubeconfig') && Boolean(io.env.KUBERNETES_SERVICE_HOST) })
  const port = parseInteger(commandLine.string('port') ?? io.env.PORT ?? '8080', 'the port', { min: 0, max: 65_535 }, controlUsage)
  const databasePrefix = commandLine.string('database-prefix') ?? io.env.IMPRUN_DATABASE_PREFIX
  let store: Store
  try {
    store = storeFromUrl(storeUrl, databasePrefix ? { databasePrefix } : {})
  } catch (error) {
    if (isImprunError(error)) throw new CliError(error.code, error.message, { exitCode: 2 })
    throw error
  }
  const runtimeStoreUrl = commandLine.string('runtime-store') ?? io.env.IMPRUN_RUNTIME_STORE ?? storeUrl
  const compiler = await context.loadCompiler()
  const domain = commandLine.string('domain') ?? io.env.IMPRUN_DOMAIN
  const plane = await startClusterControlPlane({
    store,
    runtimeStoreUrl: () => runtimeStoreUrl,
    secretKey,
    compiler,
    adminToken,
    kubernetes: createKubernetesClient({ kubeConfig }),
    image,
    edge,
    ...(domain ? { domain } : {}),
    ...(commandLine.string('namespace-prefix') ? { namespacePrefix: commandLine.string('namespace-prefix')! } : {}),
    ...(commandLine.string('apisix-namespace') ? { apisixNamespace: commandLine.string('apisix-namespace')! } : {}),
    port,
    host: commandLine.string('host') ?? '0.0.0.0',
  })
  io.stdout.write(`imprun control plane listening on port ${plane.port} (store ${redact(storeUrl)}, provisioner kubernetes, edge ${edgeKind})\n`)
  const signal = await waitForStopSignal(io.signals ?? process)
  io.stderr.write(`received ${signal}, stopping…\n`)
  await plane.close()
  await store.close()
  return 0
}
