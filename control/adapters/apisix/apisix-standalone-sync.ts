/**
 * EdgeSync as a standalone APISIX configuration file (`conf/apisix.yaml`, data-plane role with
 * the yaml config provider; APISIX re-reads it every second). The file holds every gateway: a
 * sync replaces the items labelled for that gateway and keeps everything else (other gateways,
 * hand-written entries), then writes the file atomically (temp file + rename) ending in the
 * `#END` line without which APISIX ignores it. Writes in one process are serialised.
 *
 * Keep the file on a volume the APISIX pods mount (a ConfigMap written by a job, or a shared
 * volume); docs/run-on-kubernetes.md shows both.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { parse, stringify } from 'yaml'
import { ImprunError } from '../../errors.ts'
import type { EdgeSync, GatewayEdgeState } from '../../edge-sync.ts'
import { adminLabel, apisixAdminObjects, type ApisixObjectOptions } from './apisix-objects.ts'

export interface ApisixStandaloneSyncOptions extends ApisixObjectOptions {
  /** Path of `apisix.yaml`. */
  file: string
}

type Document = Record<string, unknown> & {
  routes?: unknown[]
  upstreams?: unknown[]
  plugin_configs?: unknown[]
  consumers?: unknown[]
}

const ownedKeys = ['routes', 'upstreams', 'plugin_configs', 'consumers'] as const

export function createApisixStandaloneSync(options: ApisixStandaloneSyncOptions): EdgeSync & { read(): Document } {
  let queue: Promise<unknown> = Promise.resolve()
  const serialised = <T>(work: () => T): Promise<T> => {
    const next = queue.then(work)
    queue = next.catch(() => {})
    return next
  }

  const read = (): Document => {
    if (!existsSync(options.file)) return {}
    const text = readFileSync(options.file, 'utf8')
    let parsed: unknown
    try {
      parsed = parse(text)
    } catch (error) {
      throw new ImprunError('internal', `${options.file} is not valid YAML: ${error instanceof Error ? error.message : String(error)}`, { cause: error })
    }
    if (parsed === null || parsed === undefined) return {}
    if (typeof parsed !== 'object' || Array.isArray(parsed)) throw new ImprunError('internal', `${options.file} does not hold a YAML mapping`)
    return parsed as Document
  }

  const write = (document: Document) => {
    const temporary = `${options.file}.${process.pid}.tmp`
    writeFileSync(temporary, `${stringify(document, { lineWidth: 0 })}#END\n`, { mode: 0o600 })
    renameSync(temporary, options.file)
  }

  const replaceGateway = (gatewayId: string, desired: GatewayEdgeState | null) => {
    const document = read()
    for (const key of ownedKeys) {
      const items = Array.isArray(document[key]) ? (document[key] as unknown[]) : []
      document[key] = items.filter((item) => gatewayOf(item) !== gatewayId)
    }
    if (desired) {
      const objects = apisixAdminObjects(desired, options)
      document.upstreams!.push(...objects.upstreams)
      document.plugin_configs!.push(...objects.plugin_configs)
      document.routes!.push(...objects.routes)
      document.consumers!.push(...objects.consumers)
    }
    for (const key of ownedKeys) if ((document[key] as unknown[]).length === 0) delete document[key]
    write(document)
  }

  return {
    kind: 'apisix-standalone',
    read,
    sync: (desired) => serialised(() => replaceGateway(desired.gatewayId, desired)),
    remove: (gatewayId) => serialised(() => replaceGateway(gatewayId, null)),
    listGateways: () =>
      serialised(() => {
        const document = read()
        const gateways = new Set<string>()
        for (const key of ownedKeys) for (const item of Array.isArray(document[key]) ? (document[key] as unknown[]) : []) if (gatewayOf(item)) gateways.add(gatewayOf(item))
        return [...gateways]
      }),
  }
}

function gatewayOf(item: unknown): string {
  if (typeof item !== 'object' || item === null) return ''
  const labels = (item as { labels?: unknown }).labels
  if (typeof labels !== 'object' || labels === null) return ''
  const value = (labels as Record<string, unknown>)[adminLabel]
  return typeof value === 'string' ? value : ''
}
