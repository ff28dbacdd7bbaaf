/**
 * `imprun control`'s assembly end to end over HTTP: admin API → reconciler → Kubernetes API
 * double, edge → APISIX Admin API double.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { TestDoubleApisixAdmin } from '../control/adapters/apisix/testing/test-double-apisix-admin.ts'
import { createKubernetesClient, kubeConfigForServer } from '../control/adapters/kubernetes/kubernetes-client.ts'
import { TestDoubleKubeApi } from '../control/adapters/kubernetes/testing/test-double-kube-api.ts'
import { storeFromUrl } from '../control/adapters/store-from-url.ts'
import { startClusterControlPlane } from '../control/cli/control-command.ts'
import { TestDoubleCompiler } from '../control/testing/test-doubles.ts'

test('cluster control plane: create a gateway over the admin API, it reaches Started on Kubernetes with its APISIX routes, delete cleans up', async () => {
  const directory = await mkdtemp(join(tmpdir(), 'imprun-cluster-control-'))
  const kube = await new TestDoubleKubeApi({ namespaceTerminationMs: 10 }).start()
  const admin = await new TestDoubleApisixAdmin().start()
  const store = storeFromUrl(`sqlite:${directory}`)
  const token = `imp_admin_${randomBytes(16).toString('hex')}`
  const plane = await startClusterControlPlane({
    store,
    runtimeStoreUrl: () => 'mongodb://mongo/?replicaSet=rs0',
    secretKey: randomBytes(32),
    compiler: new TestDoubleCompiler(),
    adminToken: token,
    kubernetes: createKubernetesClient({ kubeConfig: kubeConfigForServer(kube.url) }),
    image: 'ghcr.io/imprun/imprun:test',
    edge: { kind: 'apisix-admin', url: admin.url, adminKey: admin.adminKey },
    domain: 'api.example.com',
    port: 0,
    host: '127.0.0.1',
    reconciler: { idlePollMs: 20, backoffBaseMs: 5, backoffMaxMs: 50, readinessPollMs: 5 },
  })
  const call = async (method: string, path: string, body?: unknown) => {
    const response = await fetch(`${plane.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? null : JSON.stringify(body),
    })
    return { status: response.status, body: (await response.json()) as Record<string, unknown> }
  }
  const phase = async (id: string, wanted: string) => {
    const deadline = Date.now() + 10_000
    for (;;) {
      const { status, body } = await call('GET', `/admin/gateways/${id}`)
      const current = status === 404 ? 'Deleted' : String((body.gateway as { phase?: string } | undefined)?.phase ?? body.phase)
      if (current === wanted) return
      assert.ok(Date.now() < deadline, `gateway ${id} stayed ${current} (wanted ${wanted}): ${JSON.stringify(body)}`)
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  }
  try {
    assert.equal((await fetch(`${plane.url}/readyz`)).status, 200)
    assert.equal((await call('POST', '/admin/gateways', { id: 'hometax' })).status, 201)
    await phase('hometax', 'Started')
    assert.equal(kube.list('Deployment', 'imprun-gw-hometax').length, 3)
    const routes = admin.values('routes')
    assert.equal(routes.length, 4)
    assert.deepEqual(routes[0]!.hosts, ['hometax.api.example.com'])
    assert.equal((await call('DELETE', '/admin/gateways/hometax')).status < 300, true)
    await phase('hometax', 'Deleted')
    assert.deepEqual(kube.list(undefined, 'imprun-gw-hometax'), [])
    assert.deepEqual(admin.values('routes'), [])
    assert.deepEqual(admin.values('upstreams'), [])
  } finally {
    await plane.close()
    await store.close()
    await kube.close()
    await admin.close()
    await rm(directory, { recursive: true, force: true })
  }
})
