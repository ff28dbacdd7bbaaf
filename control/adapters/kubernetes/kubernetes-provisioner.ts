/**
 * The Provisioner port on Kubernetes. create: the gateway's namespace and what guards it
 * (ServiceAccount, ResourceQuota, LimitRange, NetworkPolicy, Secret); start: per stage a runtime
 * Service, Deployment and HPA; isReady: every stage Deployment has rolled out and has an
 * available replica; stop: Deployments to 0 replicas and their HPAs removed (data stays);
 * destroy: the namespace deleted and waited for, so nothing is left behind.
 * Every call is idempotent (see kubernetes-client.ts `apply`).
 */
import { ImprunError } from '../../errors.ts'
import type { Provisioner, ProvisionTarget, Stage } from '../../ports.ts'
import { createKubernetesClient, type KubernetesClient, type KubernetesClientOptions } from './kubernetes-client.ts'
import {
  defaultClusterSettings,
  gatewayManifests,
  namespaceName,
  runtimeAutoscaler,
  runtimeDeployment,
  runtimeName,
  runtimeService,
  type GatewayClusterSettings,
  type GatewaySecretValues,
  type KubernetesObject,
} from './kubernetes-manifests.ts'

export interface KubernetesProvisionerOptions extends Partial<Omit<GatewayClusterSettings, 'image'>> {
  /** How to reach the apiserver (or a ready client, for tests). */
  kubernetes: Pick<KubernetesClientOptions, 'kubeConfig' | 'fieldManager' | 'maxConflictRetries'> | { client: KubernetesClient }
  image: string
  /** What each gateway's runtimes get in their Secret (store URL may differ per gateway). */
  secretValues(gatewayId: string): GatewaySecretValues | Promise<GatewaySecretValues>
  /** How long destroy waits for the namespace to go before reporting "still terminating" (default 20 s). */
  namespaceDeletionWaitMs?: number
  pollIntervalMs?: number
}

export function createKubernetesProvisioner(options: KubernetesProvisionerOptions): Provisioner {
  const client = 'client' in options.kubernetes ? options.kubernetes.client : createKubernetesClient(options.kubernetes)
  const settings: GatewayClusterSettings = {
    ...defaultClusterSettings,
    ...definedOnly(options),
    image: options.image,
  }
  const waitMs = options.namespaceDeletionWaitMs ?? 20_000
  const pollMs = options.pollIntervalMs ?? 250
  const namespaceOf = (gatewayId: string) => namespaceName(gatewayId, settings)

  const applyAll = async (objects: KubernetesObject[]) => {
    for (const object of objects) await client.apply(object)
  }

  /** Refuses to work in a namespace that is going away (a gateway id reused too soon). */
  const ensureNamespaceUsable = async (gatewayId: string) => {
    const namespace = await client.read({ apiVersion: 'v1', kind: 'Namespace', name: namespaceOf(gatewayId) })
    if (namespace && (namespace.metadata.deletionTimestamp || (namespace.status as { phase?: string } | undefined)?.phase === 'Terminating')) {
      throw new ImprunError('conflict', `namespace ${namespaceOf(gatewayId)} is still terminating from an earlier deletion; retrying`, {
        retryable: true,
        details: { namespace: namespaceOf(gatewayId) },
      })
    }
  }

  const create = async (target: ProvisionTarget) => {
    await ensureNamespaceUsable(target.gatewayId)
    await applyAll(gatewayManifests(target.gatewayId, settings, await options.secretValues(target.gatewayId)))
  }

  return {
    kind: 'kubernetes',
    create,
    async start(target) {
      // Starting also (re)creates the gateway objects: a start after a manual cleanup heals.
      await create(target)
      const namespace = namespaceOf(target.gatewayId)
      for (const stage of target.stages) {
        const live = await client.read({ apiVersion: 'apps/v1', kind: 'Deployment', name: runtimeName(stage), namespace })
        const liveReplicas = (live?.spec as { replicas?: number } | undefined)?.replicas
        // The HPA owns the replica count; only a stopped (0) or new Deployment is given one.
        const replicas = live === null || liveReplicas === 0 ? settings.autoscaling.minReplicas : undefined
        await client.apply(runtimeService(target.gatewayId, stage, settings))
        await client.apply(runtimeDeployment(target.gatewayId, stage, settings, replicas === undefined ? {} : { replicas }))
        await client.apply(runtimeAutoscaler(target.gatewayId, stage, settings))
      }
    },
    async isReady(target) {
      const namespace = namespaceOf(target.gatewayId)
      for (const stage of target.stages) {
        const deployment = await client.read({ apiVersion: 'apps/v1', kind: 'Deployment', name: runtimeName(stage), namespace })
        if (!deployment || !deploymentAvailable(deployment)) return false
      }
      return true
    },
    async stop(target) {
      const namespace = namespaceOf(target.gatewayId)
      for (const stage of target.stages) {
        await client.delete({ apiVersion: 'autoscaling/v2', kind: 'HorizontalPodAutoscaler', name: runtimeName(stage), namespace })
        const live = await client.read({ apiVersion: 'apps/v1', kind: 'Deployment', name: runtimeName(stage), namespace })
        if (live) await client.apply(runtimeDeployment(target.gatewayId, stage, settings, { replicas: 0 }))
      }
    },
    async destroy(target) {
      const reference = { apiVersion: 'v1', kind: 'Namespace', name: namespaceOf(target.gatewayId) }
      await client.delete(reference)
      const deadline = Date.now() + waitMs
      while ((await client.read(reference)) !== null) {
        if (Date.now() >= deadline) {
          throw new ImprunError('conflict', `namespace ${reference.name} is still terminating; waiting for Kubernetes to finish deleting it`, {
            retryable: true,
            details: { namespace: reference.name },
          })
        }
        await new Promise((resolve) => setTimeout(resolve, pollMs))
      }
    },
  }
}

/** Rolled out (observed the latest generation, all replicas updated) and at least one available. */
export function deploymentAvailable(deployment: KubernetesObject): boolean {
  const generation = deployment.metadata.generation
  const spec = (deployment.spec ?? {}) as { replicas?: number }
  const status = (deployment.status ?? {}) as { observedGeneration?: number; updatedReplicas?: number; availableReplicas?: number; replicas?: number }
  const wanted = spec.replicas ?? 1
  if (wanted === 0) return false
  if (typeof generation === 'number' && (status.observedGeneration ?? 0) < generation) return false
  return (status.updatedReplicas ?? 0) >= wanted && (status.availableReplicas ?? 0) >= 1
}

/** Where a stage's runtime listens, for the edge (EdgeTopology upstream). */
export function runtimeUpstream(gatewayId: string, stage: Stage, settings: Pick<GatewayClusterSettings, 'namespacePrefix' | 'port'> = defaultClusterSettings) {
  return { namespace: namespaceName(gatewayId, settings), serviceName: runtimeName(stage), port: settings.port }
}

function definedOnly(options: KubernetesProvisionerOptions): Partial<GatewayClusterSettings> {
  const result: Partial<GatewayClusterSettings> = {}
  if (options.namespacePrefix !== undefined) result.namespacePrefix = options.namespacePrefix
  if (options.imagePullPolicy !== undefined) result.imagePullPolicy = options.imagePullPolicy
  if (options.apisixNamespace !== undefined) result.apisixNamespace = options.apisixNamespace
  if (options.port !== undefined) result.port = options.port
  if (options.runtime !== undefined) result.runtime = options.runtime
  if (options.autoscaling !== undefined) result.autoscaling = options.autoscaling
  if (options.quota !== undefined) result.quota = options.quota
  if (options.extraEnv !== undefined) result.extraEnv = options.extraEnv
  return result
}
