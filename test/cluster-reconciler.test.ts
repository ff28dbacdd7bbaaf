/**
 * Cluster mode through the real control core: the gateway reconciler drives the Kubernetes
 * provisioner (and the edge) over real HTTP against the Kubernetes API and APISIX Admin API
 * doubles; the edge sync loop follows the store. Failures must land on the records users see.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, test } from 'node:test'
import { createApisixAdminSync } from '../control/adapters/apisix/apisix-admin-sync.ts'
import { createApisixCrdSync } from '../control/adapters/apisix/apisix-crd-sync.ts'
import { TestDoubleApisixAdmin } from '../control/adapters/apisix/testing/test-double-apisix-admin.ts'
import { createKubernetesClient, kubeConfigForServer } from '../control/adapters/kubernetes/kubernetes-client.ts'
import { namespaceName, defaultClusterSettings } from '../control/adapters/kubernetes/kubernetes-manifests.ts'
import { createKubernetesProvisioner, runtimeUpstream } from '../control/adapters/kubernetes/kubernetes-provisioner.ts'
import { TestDoubleKubeApi } from '../control/adapters/kubernetes/testing/test-double-kube-api.ts'
import { createSqliteStore } from '../control/adapters/sqlite/sqlite-store.ts'
import { createControlPlane, type ControlPlane } from '../control/control-plane.ts'
import {
  buildGatewayEdgeState,
  captureIssuedKeys,
  createGrantKeyVault,
  EdgeSyncLoop,
  withEdge,
  type EdgeSync,
  type EdgeSyncRecord,
} from '../control/edge-sync.ts'
import type { GatewayRecord } from '../control/domain/gateways.ts'
import { createAesSecretBox } from '../control/secrets/aes-secret-box.ts'
import { TestDoubleCompiler } from '../control/testing/test-doubles.ts'
import type { Store } from '../control/ports.ts'

interface Cluster {
  store: Store
  control: ControlPlane
  kube: TestDoubleKubeApi
  admin: TestDoubleApisixAdmin
  loop: EdgeSyncLoop
  gateway(id: string): Promise<GatewayRecord | null>
  /** Runs reconciler steps until the gateway rests or `rounds` run out. */
  settle(id: string, rounds?: number): Promise<GatewayRecord>
}

describe('cluster mode through the real reconciler', () => {
  let directory: string
  let cluster: Cluster
  const closers: Array<() => Promise<void>> = []

  async function start(options: { edge: 'admin' | 'crd'; apisixCrds?: boolean }): Promise<Cluster> {
    const kube = await new TestDoubleKubeApi({ apisixCrds: options.apisixCrds ?? true, namespaceTerminationMs: 10 }).start()
    const admin = await new TestDoubleApisixAdmin().start()
    closers.push(() => kube.close(), () => admin.close())
    const store = createSqliteStore({ directory })
    const secretBox = createAesSecretBox(randomBytes(32))
    const client = createKubernetesClient({ kubeConfig: kubeConfigForServer(kube.url) })
    const vault = createGrantKeyVault({ store, secretBox })
    const edge: EdgeSync =
      options.edge === 'admin'
        ? createApisixAdminSync({ url: admin.url, adminKey: admin.adminKey })
        : createApisixCrdSync({ kubernetes: { client }, namespaceOf: (id) => namespaceName(id, defaultClusterSettings) })
    const topology = { upstream: (id: string, stage: 'dev' | 'staging' | 'prod') => runtimeUpstream(id, stage), hosts: (id: string) => [`${id}.api.example.com`] }
    const desiredState = (id: string) => buildGatewayEdgeState(id, { store, vault, topology })
    const provisioner = withEdge(
      createKubernetesProvisioner({ kubernetes: { client }, image: 'imprun:test', secretValues: () => ({ storeUrl: 'mongodb://mongo/?replicaSet=rs0', secretKey: 'k'.repeat(43) }), pollIntervalMs: 5 }),
      { edge, desiredState },
    )
    const control = createControlPlane({
      store,
      provisioner,
      compiler: new TestDoubleCompiler(),
      secretBox,
      reconciler: { leaseMs: 5_000, backoffBaseMs: 1, backoffMaxMs: 5, readinessPollMs: 1 },
    })
    captureIssuedKeys(control.access, vault)
    await control.access.ensureIndexes()
    const loop = new EdgeSyncLoop({ store, edge, desiredState, backoffBaseMs: 5, backoffMaxMs: 20, debounceMs: 5 })
    closers.push(async () => {
      await loop.stop()
      await control.stop()
      await store.close()
    })
    const gateway = (id: string) => store.system().collection<GatewayRecord>('gateways').findOne({ _id: id })
    return {
      store,
      control,
      kube,
      admin,
      loop,
      gateway,
      async settle(id, rounds = 300) {
        const resting: Record<string, string> = { Running: 'Started', Stopped: 'Stopped', Deleted: 'Deleted' }
        for (let round = 0; round < rounds; round++) {
          const record = await gateway(id)
          if (record && resting[record.state] === record.phase) return record
          if (!(await control.reconciler.runOnce())) await new Promise((resolve) => setTimeout(resolve, 3))
        }
        return (await gateway(id))!
      },
    }
  }

  beforeEach(async () => {
    directory = await mkdtemp(join(tmpdir(), 'imprun-cluster-'))
  })
  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close()
    await rm(directory, { recursive: true, force: true })
  })

  test('create → Started with Kubernetes objects and four APISIX routes; a grant becomes a consumer; Deleting leaves nothing', async () => {
    cluster = await start({ edge: 'admin' })
    await cluster.control.gateways.create({ id: 'hometax' })
    const started = await cluster.settle('hometax')
    assert.equal(started.phase, 'Started', JSON.stringify(started.lastError))
    const namespace = 'imprun-gw-hometax'
    assert.equal(cluster.kube.list('Deployment', namespace).length, 3)
    assert.equal(cluster.admin.values('routes').length, 4)

    const application = await cluster.control.access.createApplication({ name: 'mobile' })
    const granted = await cluster.control.access.grant({ application: application.id, gatewayId: 'hometax', stage: 'prod' })
    assert.ok(await cluster.loop.syncGateway('hometax'))
    const consumers = cluster.admin.values('consumers')
    assert.equal(consumers.length, 1)
    assert.equal(((consumers[0]!.plugins as Record<string, { key: string }>)['key-auth']!).key, granted.apiKey)

    await cluster.control.access.revoke(granted.id)
    assert.ok(await cluster.loop.syncGateway('hometax'))
    assert.equal(cluster.admin.values('consumers').length, 0)

    await cluster.control.gateways.delete('hometax')
    const deleted = await cluster.settle('hometax')
    assert.equal(deleted.phase, 'Deleted', JSON.stringify(deleted.lastError))
    assert.equal(cluster.kube.get('Namespace', undefined, namespace), undefined)
    assert.deepEqual(cluster.kube.list(undefined, namespace), [], 'no Kubernetes object left in the namespace')
    for (const type of ['routes', 'upstreams', 'plugin_configs', 'consumers'] as const) assert.deepEqual(cluster.admin.values(type), [], `no APISIX ${type} left`)
  })

  test('an RBAC refusal shows on the gateway record with the Kubernetes message, and the gateway recovers once allowed', async () => {
    cluster = await start({ edge: 'admin' })
    cluster.kube.forbid({ verb: 'create', resource: 'namespaces' })
    await cluster.control.gateways.create({ id: 'locked' })
    const stuck = await cluster.settle('locked', 20)
    assert.equal(stuck.phase, 'Creating')
    assert.equal(stuck.lastError?.code, 'forbidden')
    assert.match(stuck.lastError!.message, /Kubernetes refused to create Namespace imprun-gw-locked: namespaces is forbidden: User "system:serviceaccount:imprun:imprun-control" cannot create resource "namespaces" in API group "" at the cluster scope/)
    const shown = await cluster.control.gateways.get('locked')
    assert.match(shown.lastError!.message, /is forbidden/)
    cluster.kube.allow()
    const recovered = await cluster.settle('locked')
    assert.equal(recovered.phase, 'Started')
    assert.equal(recovered.lastError, null)
  })

  test('missing APISIX CRDs (404 on the group) show on the gateway record; deleting still cleans up', async () => {
    cluster = await start({ edge: 'crd', apisixCrds: false })
    await cluster.control.gateways.create({ id: 'nocrd' })
    const stuck = await cluster.settle('nocrd', 30)
    assert.equal(stuck.phase, 'Starting')
    assert.equal(stuck.lastError?.code, 'not_found')
    assert.match(stuck.lastError!.message, /does not serve ApisixRoute in apisix\.apache\.org\/v2: the apiserver answered 404 page not found — install the APISIX Ingress Controller CRDs/)
    await cluster.control.gateways.delete('nocrd')
    const deleted = await cluster.settle('nocrd')
    assert.equal(deleted.phase, 'Deleted', JSON.stringify(deleted.lastError))
    assert.deepEqual(cluster.kube.list(undefined, 'imprun-gw-nocrd'), [])
  })

  test('CRD edge: Started gateway has its custom resources, Deleting removes them with the namespace', async () => {
    cluster = await start({ edge: 'crd' })
    await cluster.control.gateways.create({ id: 'crd' })
    assert.equal((await cluster.settle('crd')).phase, 'Started')
    assert.equal(cluster.kube.list('ApisixRoute', 'imprun-gw-crd').length, 1)
    assert.equal(cluster.kube.list('ApisixPluginConfig', 'imprun-gw-crd').length, 3)
    await cluster.control.gateways.delete('crd')
    assert.equal((await cluster.settle('crd')).phase, 'Deleted')
    assert.deepEqual(cluster.kube.list(undefined, 'imprun-gw-crd'), [])
  })

  test('the edge sync loop follows plugin changes, records a failing edge with back-off, and clears it on recovery', async () => {
    cluster = await start({ edge: 'admin' })
    await cluster.control.gateways.create({ id: 'live' })
    assert.equal((await cluster.settle('live')).phase, 'Started')
    await cluster.loop.start()
    await cluster.control.gateways.setEnvironmentPlugins('live', 'prod', { 'key-auth': {}, 'limit-count': { count: 3, time_window: 60 } })
    await waitFor(() => {
      const prod = cluster.admin.store.plugin_configs.get('imp.live.prod')?.value as { plugins: Record<string, { count?: number }> } | undefined
      return prod?.plugins['limit-count']?.count === 3
    })

    cluster.admin.unavailable = true
    await cluster.control.gateways.update('live', { plugins: { cors: { allow_origins: 'https://app.example.com' } } })
    const records = cluster.store.system().collection<EdgeSyncRecord>('edge_syncs')
    await waitFor(async () => ((await records.findOne({ _id: 'live' }))?.attempts ?? 0) >= 2)
    const failing = (await records.findOne({ _id: 'live' }))!
    assert.match(failing.lastError!.message, /has no healthy etcd endpoint available/)
    assert.ok(failing.nextAttemptAt > 0)

    cluster.admin.unavailable = false
    await waitFor(async () => (await records.findOne({ _id: 'live' }))?.lastError === null)
    const base = cluster.admin.store.routes.get('imp.live.base')!.value as { plugins: { cors: { allow_origins: string } } }
    assert.equal(base.plugins.cors.allow_origins, 'https://app.example.com')
  })
})

async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not reached in time')
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}
