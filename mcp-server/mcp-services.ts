/**
 * What the MCP server is built from: the control services, the function catalog, the admin
 * token check and the invocation log. A subset of the platform's services, so the same server
 * runs in the embedded platform, over stdio and in tests with in-memory transports.
 */
import type { AdminTokens } from '../control/admin-token.ts'
import type { ControlPlane } from '../control/control-plane.ts'
import type { FunctionCatalog } from '../runtime/function-catalog.ts'
import type { InvocationLogEntry } from '../runtime/logs/invocation-log.ts'

export interface InvocationLogReader {
  query(gatewayId: string, filter: { function?: string; stage?: string; limit?: number }): Promise<InvocationLogEntry[]>
}

export interface McpServices {
  control: ControlPlane
  catalog: FunctionCatalog
  tokens: AdminTokens
  logs: InvocationLogReader
  /** Where unexpected errors go (never to a client); stderr by default. */
  reportInternalError?: (error: unknown) => void
}

/** The platform's services as the MCP server needs them (structural: no import of the platform). */
export interface PlatformServiceSubset {
  control: ControlPlane
  catalog: FunctionCatalog
  tokens: AdminTokens
  runtime: { log: InvocationLogReader }
}

export function mcpServicesOf(services: PlatformServiceSubset): McpServices {
  return {
    control: services.control,
    catalog: services.catalog,
    tokens: services.tokens,
    logs: { query: (gatewayId, filter) => services.runtime.log.query(gatewayId, filter) },
  }
}
