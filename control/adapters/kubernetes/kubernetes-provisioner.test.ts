import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import { isImprunError } from '../../errors.ts'
import type { ProvisionTarget } from '../../ports.ts'
import { stages } from '../../domain/names.ts'
import { createKubernetesClient, kubeConfigForServer, loadKubeConfig, type KubernetesClient } from './kubernetes-client.ts'
import { createKubernetesProvisioner } from './kubernetes-provisioner.ts'
import { TestDoubleKubeApi } from './testing/test-double-kube-api.ts'

const secretValues = () => ({ storeUrl: 'mongodb://mongo:27017/?replicaSet=rs0', secretKey: 'k'.repeat(43) })
const target = (gatewayId: string): ProvisionTarget => ({ gatewayId, stages })

describe('kubernetes provisioner over HTTP against the API double', () => {
  let api: TestDoubleKubeApi
  let client: KubernetesClient
  before(async () => {
    api = await new TestDoubleKubeApi({ namespaceTerminationMs: 20 }).start()
    client = createKubernetesClient({ kubeConfig: kubeConfigForServer(api.url) })
  })
  after(() => api.close())

  const provisioner = (overrides: { namespaceDeletionWaitMs?: number } = {}) =>
    createKubernetesProvisioner({ kubernetes: { client }, image: 'imprun:test', secretValues, pollIntervalMs: 5, ...overrides })

  test('create → start → ready; a second create and start write nothing', async () => {
    const p = provisioner()
    await p.create(target('alpha'))
    const namespace = 'imprun-gw-alpha'
    assert.ok(api.get('Namespace', undefined, namespace))
    for (const kind of ['ServiceAccount', 'ResourceQuota', 'LimitRange', 'NetworkPolicy', 'Secret']) assert.equal(api.list(kind, namespace).length, 1, kind)
    assert.equal(api.list('Deployment', namespace).length, 0)
    assert.equal(await p.isReady(target('alpha')), false)
    await p.start(target('alpha'))
    for (const kind of ['Deployment', 'Service', 'HorizontalPodAutoscaler']) assert.equal(api.list(kind, namespace).length, 3, kind)
    assert.equal(await p.isReady(target('alpha')), true)
    const writes = api.writes().length
    await p.create(target('alpha'))
    await p.start(target('alpha'))
    assert.equal(api.writes().length, writes, 'idempotent: no write when nothing changed')
  })

  test('not ready until the Deployments have an available replica', async () => {
    api.deploymentsBecomeAvailable = false
    try {
      const p = provisioner()
      await p.start(target('slow'))
      assert.equal(await p.isReady(target('slow')), false)
    } finally {
      api.deploymentsBecomeAvailable = true
    }
  })

  test('stop scales to zero and drops the HPAs; start brings a replica back', async () => {
    const p = provisioner()
    await p.start(target('beta'))
    await p.stop(target('beta'))
    assert.equal(api.list('HorizontalPodAutoscaler', 'imprun-gw-beta').length, 0)
    assert.equal((api.get('Deployment', 'imprun-gw-beta', 'runtime-prod')!.spec as { replicas: number }).replicas, 0)
    assert.equal(await p.isReady(target('beta')), false)
    await p.stop(target('beta'))
    await p.start(target('beta'))
    assert.equal((api.get('Deployment', 'imprun-gw-beta', 'runtime-prod')!.spec as { replicas: number }).replicas, 1)
    assert.equal(await p.isReady(target('beta')), true)
  })

  test('a resourceVersion conflict is retried with a fresh read', async () => {
    const p = provisioner()
    await p.start(target('gamma'))
    // Another writer changes the Deployment right after each of our next three reads: stop's own
    // look, then apply's read twice → two 409s, each answered by reading again.
    api.interfere('Deployment', 'imprun-gw-gamma', 'runtime-dev', 3)
    const conflictsBefore = api.requests.filter((request) => request.status === 409).length
    await p.stop(target('gamma'))
    assert.equal(api.requests.filter((request) => request.status === 409).length - conflictsBefore, 2)
    assert.equal((api.get('Deployment', 'imprun-gw-gamma', 'runtime-dev')!.spec as { replicas: number }).replicas, 0)
  })

  test('endless conflicts end in a retryable `conflict` carrying the apiserver message', async () => {
    const p = provisioner()
    await p.start(target('delta'))
    api.interfere('Deployment', 'imprun-gw-delta', 'runtime-dev', 50)
    await assert.rejects(p.stop(target('delta')), (error) => {
      assert.ok(isImprunError(error, 'conflict'))
      assert.equal(error.retryable, true)
      assert.match(error.message, /the object has been modified; please apply your changes to the latest version/)
      return true
    })
    api.interfere('Deployment', 'imprun-gw-delta', 'runtime-dev', 0)
  })

  test('an RBAC refusal is `forbidden` with the apiserver message', async () => {
    api.forbid({ verb: 'create', resource: 'resourcequotas' })
    try {
      await assert.rejects(provisioner().create(target('epsilon')), (error) => {
        assert.ok(isImprunError(error, 'forbidden'))
        assert.match(error.message, /resourcequotas(\.| )?.*is forbidden: User "system:serviceaccount:imprun:imprun-control" cannot create resource "resourcequotas"/)
        return true
      })
    } finally {
      api.allow()
    }
  })

  test('destroy deletes the namespace, waits for it, and leaves nothing behind', async () => {
    const p = provisioner()
    await p.start(target('zeta'))
    assert.ok(api.list(undefined, 'imprun-gw-zeta').length > 0)
    await p.destroy(target('zeta'))
    assert.equal(api.get('Namespace', undefined, 'imprun-gw-zeta'), undefined)
    assert.deepEqual(api.list(undefined, 'imprun-gw-zeta'), [])
    await p.destroy(target('zeta')) // idempotent
  })

  test('destroy reports a namespace that takes longer as retryable; create refuses a terminating one', async () => {
    const slow = await new TestDoubleKubeApi({ namespaceTerminationMs: 300 }).start()
    try {
      const slowClient = createKubernetesClient({ kubeConfig: kubeConfigForServer(slow.url) })
      const p = createKubernetesProvisioner({ kubernetes: { client: slowClient }, image: 'imprun:test', secretValues, pollIntervalMs: 5, namespaceDeletionWaitMs: 30 })
      await p.create(target('eta'))
      await assert.rejects(p.destroy(target('eta')), (error) => isImprunError(error, 'conflict') && error.retryable && /still terminating/.test(error.message))
      await assert.rejects(p.create(target('eta')), (error) => isImprunError(error, 'conflict') && /still terminating/.test(error.message))
      await new Promise((resolve) => setTimeout(resolve, 350))
      await p.destroy(target('eta'))
      await p.create(target('eta'))
    } finally {
      await slow.close()
    }
  })
})

const kubeconfig = process.env.KUBECONFIG
describe('kubernetes provisioner against a real cluster', { skip: kubeconfig ? false : 'KUBECONFIG is not set' }, () => {
  test('create → start → ready → stop → destroy', { timeout: 600_000 }, async () => {
    const client = createKubernetesClient({ kubeConfig: loadKubeConfig({ file: kubeconfig! }) })
    const p = createKubernetesProvisioner({
      kubernetes: { client },
      image: process.env.IMPRUN_TEST_IMAGE ?? 'imprun:test',
      secretValues,
      namespaceDeletionWaitMs: 120_000,
    })
    const gatewayId = `t${randomBytes(4).toString('hex')}`
    try {
      await p.create(target(gatewayId))
      await p.start(target(gatewayId))
      if (process.env.IMPRUN_TEST_IMAGE) {
        const deadline = Date.now() + 300_000
        while (!(await p.isReady(target(gatewayId)))) {
          assert.ok(Date.now() < deadline, 'runtimes did not become ready')
          await new Promise((resolve) => setTimeout(resolve, 2000))
        }
      }
      await p.stop(target(gatewayId))
    } finally {
      await p.destroy(target(gatewayId))
    }
  })
})
