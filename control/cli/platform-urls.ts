/**
 * The URLs `imprun start` announces. This is the one place to add a surface (data plane, MCP,
 * chat gateway) when it is mounted on the platform's port.
 */
export interface PlatformUrl {
  label: string
  url: string
}

export function platformUrls(baseUrl: string): PlatformUrl[] {
  return [
    { label: 'functions', url: `${baseUrl}/{gateway}/{dev|staging|prod}/{function}` },
    { label: 'admin API', url: `${baseUrl}/admin` },
    { label: 'OpenAPI', url: `${baseUrl}/admin/openapi.json` },
    { label: 'MCP (management)', url: `${baseUrl}/mcp` },
    { label: 'MCP (functions)', url: `${baseUrl}/mcp/{gateway}/{dev|staging|prod}` },
    { label: 'chat gateway', url: `${baseUrl}/v1/chat/completions, ${baseUrl}/v1/messages` },
    { label: 'health', url: `${baseUrl}/healthz` },
  ]
}
