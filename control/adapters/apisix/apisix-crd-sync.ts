/**
 * EdgeSync through the APISIX Ingress Controller: the gateway's ApisixRoute / ApisixPluginConfig
 * / ApisixUpstream / ApisixConsumer resources (and the consumers' key Secrets) applied in the
 * gateway's namespace with the idempotent Kubernetes apply; resources labelled for the gateway
 * that the desired state no longer names are deleted. A cluster without the CRDs answers 404
 * on the group, which surfaces as `not_found` with the apiserver's words.
 */
import { isImprunError } from '../../errors.ts'
import type { EdgeSync, GatewayEdgeState } from '../../edge-sync.ts'
import { createKubernetesClient, type KubernetesClient, type KubernetesClientOptions } from '../kubernetes/kubernetes-client.ts'
import type { KubernetesObject } from '../kubernetes/kubernetes-manifests.ts'
import { apisixCrdObjects, crdKinds, crdLabels, type ApisixCrdOptions } from './apisix-objects.ts'

export interface ApisixCrdSyncOptions extends ApisixCrdOptions {
  kubernetes: Pick<KubernetesClientOptions, 'kubeConfig' | 'fieldManager'> | { client: KubernetesClient }
  /** Namespace of a gateway (where its Services and these resources live). */
  namespaceOf(gatewayId: string): string
}

export function createApisixCrdSync(options: ApisixCrdSyncOptions): EdgeSync {
  const client = 'client' in options.kubernetes ? options.kubernetes.client : createKubernetesClient(options.kubernetes)
  const apiVersion = 'apisix.apache.org/v2'

  /** Everything of ours for a gateway at the edge now: custom resources and consumer-key Secrets. */
  const owned = async (gatewayId: string): Promise<KubernetesObject[]> => {
    const namespace = options.namespaceOf(gatewayId)
    const selector = `${crdLabels.gateway}=${gatewayId},${crdLabels.managedBy}=imprun`
    const found: KubernetesObject[] = []
    for (const kind of crdKinds) found.push(...(await client.list(apiVersion, kind, { namespace, labelSelector: selector })))
    found.push(...(await client.list('v1', 'Secret', { namespace, labelSelector: `${selector},${crdLabels.component}=consumer-key` })))
    return found
  }

  const deleteAll = async (objects: KubernetesObject[]) => {
    // Routes first, then what they reference, then the consumers' Secrets.
    const order = ['ApisixRoute', 'ApisixConsumer', 'ApisixPluginConfig', 'ApisixUpstream', 'Secret']
    for (const object of [...objects].sort((left, right) => order.indexOf(left.kind) - order.indexOf(right.kind))) {
      await client.delete({ apiVersion: object.apiVersion, kind: object.kind, name: object.metadata.name, namespace: options.namespaceOf(gatewayOf(object)) })
    }
  }

  return {
    kind: 'apisix-crd',
    async sync(desired: GatewayEdgeState) {
      // Listing first also asks the apiserver whether it serves the CRDs at all.
      const existing = await owned(desired.gatewayId)
      const { resources, secrets } = apisixCrdObjects(desired, options)
      // Secrets and upstreams/plugin configs before the route and consumers that name them.
      const order = ['Secret', 'ApisixUpstream', 'ApisixPluginConfig', 'ApisixRoute', 'ApisixConsumer']
      const wanted = [...secrets, ...resources].sort((left, right) => order.indexOf(left.kind) - order.indexOf(right.kind)) as KubernetesObject[]
      for (const object of wanted) await client.apply(object)
      const keep = new Set(wanted.map((object) => `${object.kind}/${object.metadata.name}`))
      await deleteAll(existing.filter((object) => !keep.has(`${object.kind}/${object.metadata.name}`)))
    },
    async remove(gatewayId) {
      const namespace = await client.read({ apiVersion: 'v1', kind: 'Namespace', name: options.namespaceOf(gatewayId) })
      if (!namespace) return
      let objects: KubernetesObject[]
      try {
        objects = await owned(gatewayId)
      } catch (error) {
        // No APISIX CRDs in the cluster: there is nothing of ours to remove.
        if (isImprunError(error, 'not_found') && error.details?.apiVersion === apiVersion) return
        throw error
      }
      await deleteAll(objects)
    },
    async listGateways() {
      const routes = await client.list(apiVersion, 'ApisixRoute', { labelSelector: `${crdLabels.managedBy}=imprun` })
      return [...new Set(routes.map(gatewayOf).filter((gatewayId) => gatewayId !== ''))]
    },
  }
}

function gatewayOf(object: KubernetesObject): string {
  return object.metadata.labels?.[crdLabels.gateway] ?? ''
}
