/** The MCP server of imprun: management tools, function tools per environment, transports. */
export { registerMcpSurface, type McpSurfaceOptions } from './http/mcp-routes.ts'
export { createManagementServer, createManagementTools, type ManagementTools } from './management-server.ts'
export { createFunctionServer, type FunctionEndpointScope, type FunctionServerOptions } from './function-server.ts'
export { EnvironmentToolDirectory } from './environment-tools.ts'
export { mcpServicesOf, type McpServices, type PlatformServiceSubset } from './mcp-services.ts'
export { functionNameOf, toolNameOf } from './function-tool-names.ts'
export { hostPolicyFromEnvironment, type HostPolicy } from './http/request-guard.ts'
