/**
 * The function tools of each environment, shared by every MCP session of the process: one
 * listing per environment, built from the catalog's stored metadata (never from code), kept
 * until the catalog says that environment's functions changed. The same change fans out to the
 * sessions watching that environment, which send `notifications/tools/list_changed`.
 */
import type { Tool } from '@modelcontextprotocol/sdk/types.js'
import type { Stage } from '../control/ports.ts'
import type { CatalogFunction, FunctionCatalog } from '../runtime/function-catalog.ts'
import { clientToolSchema } from '../runtime/tool-schema.ts'
import { toolNameOf } from './function-tool-names.ts'

export interface EnvironmentTools {
  tools: Tool[]
  /** Live function by tool name. */
  byToolName: Map<string, { function: CatalogFunction; hasOutputSchema: boolean }>
}

export class EnvironmentToolDirectory {
  private readonly catalog: FunctionCatalog
  private readonly listings = new Map<string, Promise<EnvironmentTools>>()
  private readonly watchers = new Map<string, Set<() => void>>()
  private unsubscribe: (() => void) | null = null

  constructor(catalog: FunctionCatalog) {
    this.catalog = catalog
  }

  /** The environment's tools; fails like `catalog.list` (not_found for an unknown gateway). */
  tools(gatewayId: string, stage: Stage): Promise<EnvironmentTools> {
    this.subscribe()
    const key = `${gatewayId}/${stage}`
    let listing = this.listings.get(key)
    if (!listing) {
      listing = this.catalog.list(gatewayId, stage).then((functions) => environmentTools(gatewayId, stage, functions))
      this.listings.set(key, listing)
      // A failed listing (gateway not there yet) must not stick.
      listing.catch(() => {
        if (this.listings.get(key) === listing) this.listings.delete(key)
      })
    }
    return listing
  }

  /** Calls `listener` whenever the environment's functions change; returns the unwatch. */
  watch(gatewayId: string, stage: Stage, listener: () => void): () => void {
    this.subscribe()
    const key = `${gatewayId}/${stage}`
    const set = this.watchers.get(key) ?? new Set()
    set.add(listener)
    this.watchers.set(key, set)
    return () => {
      set.delete(listener)
      if (set.size === 0 && this.watchers.get(key) === set) this.watchers.delete(key)
    }
  }

  close(): void {
    this.unsubscribe?.()
    this.unsubscribe = null
    this.listings.clear()
    this.watchers.clear()
  }

  private subscribe(): void {
    this.unsubscribe ??= this.catalog.onChange(({ gatewayId, stage }) => {
      const key = `${gatewayId}/${stage}`
      this.listings.delete(key)
      for (const listener of [...(this.watchers.get(key) ?? [])]) listener()
    })
  }
}

function environmentTools(gatewayId: string, stage: Stage, functions: CatalogFunction[]): EnvironmentTools {
  const tools: Tool[] = []
  const byToolName: EnvironmentTools['byToolName'] = new Map()
  for (const live of functions) {
    const name = toolNameOf(live.name)
    const { description, inputSchema, outputSchema } = live.metadata
    const tool: Tool = {
      name,
      title: live.name,
      description: description || `Function ${live.name} of ${gatewayId}/${stage}`,
      inputSchema: clientToolSchema({ ...(inputSchema ?? {}), type: 'object' }) as Tool['inputSchema'],
      _meta: { 'imprun.dev/function': live.name, 'imprun.dev/version': live.version },
    }
    // MCP output schemas describe structuredContent, which is always an object.
    const hasOutputSchema = outputSchema !== null && outputSchema.type === 'object'
    if (hasOutputSchema) tool.outputSchema = clientToolSchema(outputSchema) as Tool['outputSchema']
    tools.push(tool)
    byToolName.set(name, { function: live, hasOutputSchema })
  }
  return { tools, byToolName }
}
