/**
 * Resources of the management server: function sources (draft and each version), deployment
 * history and recent invocation logs, addressed as
 *
 *   imprun://gateways/{gateway}/functions/{name}/source
 *   imprun://gateways/{gateway}/functions/{name}/versions/{number}
 *   imprun://gateways/{gateway}/functions/{name}/history
 *   imprun://gateways/{gateway}/history
 *   imprun://gateways/{gateway}/logs
 *
 * `{name}` is the function name URI-encoded (`user/me` → `user%2Fme`). A source with several
 * files reads as one content entry per file, `#path` appended to the URI.
 */
import { ErrorCode, McpError, type ReadResourceResult, type Resource, type ResourceTemplate } from '@modelcontextprotocol/sdk/types.js'
import { isImprunError } from '../control/errors.ts'
import type { SourceFiles } from '../control/ports.ts'
import type { McpServices } from './mcp-services.ts'

const base = 'imprun://gateways'

export const resourceTemplates: ResourceTemplate[] = [
  {
    uriTemplate: `${base}/{gateway}/functions/{name}/source`,
    name: 'function-source',
    title: 'Function source (draft)',
    description: 'The current draft source files of a function ({name} URI-encoded: user/me → user%2Fme)',
    mimeType: 'text/typescript',
  },
  {
    uriTemplate: `${base}/{gateway}/functions/{name}/versions/{number}`,
    name: 'function-version',
    title: 'Function version',
    description: 'The source files of one immutable version, and its metadata as JSON (#metadata)',
    mimeType: 'text/typescript',
  },
  {
    uriTemplate: `${base}/{gateway}/functions/{name}/history`,
    name: 'function-history',
    title: 'Function deployment history',
    description: 'Every publish, promote, rollback and undeploy of one function, newest first',
    mimeType: 'application/json',
  },
  {
    uriTemplate: `${base}/{gateway}/history`,
    name: 'gateway-history',
    title: 'Gateway deployment history',
    description: 'Deployment history of all functions of a gateway, newest first',
    mimeType: 'application/json',
  },
  {
    uriTemplate: `${base}/{gateway}/logs`,
    name: 'gateway-logs',
    title: 'Recent invocations',
    description: 'The 50 most recent invocations of a gateway with their log lines',
    mimeType: 'application/json',
  },
]

type ParsedUri =
  | { kind: 'source'; gateway: string; name: string }
  | { kind: 'version'; gateway: string; name: string; number: number }
  | { kind: 'function-history'; gateway: string; name: string }
  | { kind: 'history'; gateway: string }
  | { kind: 'logs'; gateway: string }

const patterns: Array<[RegExp, (match: string[]) => ParsedUri]> = [
  [/^imprun:\/\/gateways\/([^/]+)\/functions\/([^/]+)\/source$/, ([, gateway, name]) => ({ kind: 'source', gateway: gateway!, name: name! })],
  [
    /^imprun:\/\/gateways\/([^/]+)\/functions\/([^/]+)\/versions\/([1-9][0-9]{0,8})$/,
    ([, gateway, name, number]) => ({ kind: 'version', gateway: gateway!, name: name!, number: Number(number) }),
  ],
  [/^imprun:\/\/gateways\/([^/]+)\/functions\/([^/]+)\/history$/, ([, gateway, name]) => ({ kind: 'function-history', gateway: gateway!, name: name! })],
  [/^imprun:\/\/gateways\/([^/]+)\/history$/, ([, gateway]) => ({ kind: 'history', gateway: gateway! })],
  [/^imprun:\/\/gateways\/([^/]+)\/logs$/, ([, gateway]) => ({ kind: 'logs', gateway: gateway! })],
]

function parseUri(uri: string): ParsedUri | null {
  for (const [pattern, build] of patterns) {
    const match = pattern.exec(uri)
    if (!match) continue
    try {
      const parsed = build(match.map((part, index) => (index === 0 ? part : decodeURIComponent(part))))
      return parsed
    } catch {
      return null
    }
  }
  return null
}

export function functionSourceUri(gateway: string, name: string): string {
  return `${base}/${encodeURIComponent(gateway)}/functions/${encodeURIComponent(name)}/source`
}

/** Concrete resources: each gateway's history and logs, each function's draft source. */
export async function listResources(services: McpServices, limit = 500): Promise<Resource[]> {
  const resources: Resource[] = []
  for (const gateway of await services.control.gateways.list()) {
    const id = encodeURIComponent(gateway.id)
    resources.push(
      { uri: `${base}/${id}/history`, name: `${gateway.id} history`, description: `Deployment history of ${gateway.id}`, mimeType: 'application/json' },
      { uri: `${base}/${id}/logs`, name: `${gateway.id} logs`, description: `Recent invocations of ${gateway.id}`, mimeType: 'application/json' },
    )
    for (const summary of await services.control.functions.list(gateway.id)) {
      resources.push({
        uri: functionSourceUri(gateway.id, summary.name),
        name: `${gateway.id}/${summary.name}`,
        description: `Draft source of ${summary.name} (latest version v${summary.latestVersion})`,
        mimeType: 'text/typescript',
      })
    }
    if (resources.length >= limit) break
  }
  return resources.slice(0, limit)
}

export async function readResource(services: McpServices, uri: string): Promise<ReadResourceResult> {
  const parsed = parseUri(uri)
  if (!parsed) throw new McpError(ErrorCode.InvalidParams, `unknown resource '${uri}'`, { uri })
  const { functions } = services.control
  try {
    switch (parsed.kind) {
      case 'source':
        return { contents: fileContents(uri, (await functions.get(parsed.gateway, parsed.name)).files) }
      case 'version': {
        const version = await functions.version(parsed.gateway, parsed.name, parsed.number)
        const metadata = { number: version.number, message: version.message, createdAt: version.createdAt, sourceHash: version.sourceHash, metadata: version.metadata }
        return { contents: [...fileContents(uri, version.files), json(`${uri}#metadata`, metadata)] }
      }
      case 'function-history':
        await functions.get(parsed.gateway, parsed.name)
        return { contents: [json(uri, { history: await functions.history(parsed.gateway, { function: parsed.name }) })] }
      case 'history':
        return { contents: [json(uri, { history: await functions.history(parsed.gateway) })] }
      case 'logs':
        await services.control.gateways.record(parsed.gateway)
        return { contents: [json(uri, { logs: await services.logs.query(parsed.gateway, { limit: 50 }) })] }
    }
  } catch (error) {
    // The spec's "resource not found" error code.
    if (isImprunError(error, 'not_found')) throw new McpError(-32002, error.message, { uri })
    throw error
  }
}

/** Values for a template argument, for `completion/complete`. */
export async function completeResourceArgument(
  services: McpServices,
  argument: { name: string; value: string },
  context: Record<string, string>,
): Promise<string[]> {
  try {
    if (argument.name === 'gateway') return (await services.control.gateways.list()).map((gateway) => gateway.id).filter((id) => id.startsWith(argument.value))
    const gateway = context.gateway
    if (!gateway) return []
    if (argument.name === 'name') {
      return (await services.control.functions.list(gateway)).map((summary) => encodeURIComponent(summary.name)).filter((name) => name.startsWith(argument.value))
    }
    if (argument.name === 'number' && context.name) {
      const versions = await services.control.functions.versions(gateway, decodeURIComponent(context.name))
      return versions.map((version) => String(version.number)).filter((number) => number.startsWith(argument.value))
    }
  } catch (error) {
    if (!isImprunError(error)) throw error
  }
  return []
}

function fileContents(uri: string, files: SourceFiles): ReadResourceResult['contents'] {
  const paths = Object.keys(files).sort((left, right) => (left === 'index.ts' ? -1 : right === 'index.ts' ? 1 : left < right ? -1 : 1))
  return paths.map((path) => ({
    uri: paths.length === 1 && path === 'index.ts' ? uri : `${uri}#${path}`,
    mimeType: mimeTypeOf(path),
    text: files[path]!,
  }))
}

function json(uri: string, value: unknown) {
  return { uri, mimeType: 'application/json', text: JSON.stringify(value, null, 2) }
}

function mimeTypeOf(path: string): string {
  if (path.endsWith('.json')) return 'application/json'
  if (path.endsWith('.js') || path.endsWith('.mjs')) return 'text/javascript'
  return 'text/typescript'
}
