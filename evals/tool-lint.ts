/**
 * Lint of the tool surface an agent sees: the management endpoint's tools and an environment's
 * function tools. Errors (fail the test): a tool or input property without a description, a name
 * outside MCP's `^[a-zA-Z0-9_.-]{1,128}$`, an input schema whose top level is not
 * `type: "object"`, a `$ref` cycle; on surfaces we write ourselves (`strict`: the management
 * tools) also a JSON Schema keyword some major client rejects, and a model-visible size over
 * budget. Notes (reported only): names an LLM API would reject (`^[a-zA-Z0-9_-]{1,64}$`, so they
 * need mapping) and, on users' function tools, the risky keywords.
 *
 * Sizes are counted in tokens with gpt-tokenizer (o200k_base, GPT-4o's encoding; other models'
 * tokenizers differ by some tens of percent): the whole tools/list result, and the part a model
 * is sent (name, description and input schema of each tool; output schemas and annotations stay
 * with the client).
 *
 * `node evals/tool-lint.ts` lints a fresh embedded platform with hometax published.
 */
import type { Tool } from '@modelcontextprotocol/sdk/types.js'
import { countTokens } from 'gpt-tokenizer'

export interface LintFinding {
  endpoint: string
  tool: string
  message: string
}

export interface SurfaceSize {
  endpoint: string
  tools: number
  /** JSON characters of the tools/list result. */
  characters: number
  /** Tokens of the tools/list result. */
  listTokens: number
  /** Tokens of what a model is sent: name, description and input schema per tool. */
  modelTokens: number
}

export interface LintReport {
  errors: LintFinding[]
  notes: LintFinding[]
  sizes: SurfaceSize[]
}

export interface LintOptions {
  /** Risky keywords are errors, not notes (surfaces whose schemas we write). */
  strict?: boolean
  /** Largest model-visible size allowed, in tokens. */
  modelTokenBudget?: number
}

const mcpName = /^[a-zA-Z0-9_.-]{1,128}$/
const llmName = /^[a-zA-Z0-9_-]{1,64}$/
/** Keywords that OpenAI strict mode, Gemini function declarations or older clients reject or ignore. */
const riskyKeywords = ['oneOf', 'allOf', 'not', 'if', 'then', 'else', 'patternProperties', 'propertyNames', 'dependentSchemas', 'unevaluatedProperties', '$dynamicRef', 'prefixItems', 'contains']

/** The tools as a model is sent them (the shape our LLM adaptors pass on). */
export function modelVisible(tools: Tool[]): Array<{ name: string; description: string; parameters: unknown }> {
  return tools.map((tool) => ({ name: tool.name, description: tool.description ?? '', parameters: tool.inputSchema }))
}

export function surfaceSize(endpoint: string, tools: Tool[]): SurfaceSize {
  const listed = JSON.stringify({ tools })
  return { endpoint, tools: tools.length, characters: listed.length, listTokens: countTokens(listed), modelTokens: countTokens(JSON.stringify(modelVisible(tools))) }
}

export function lintTools(endpoint: string, tools: Tool[], options: LintOptions = {}): LintReport {
  const size = surfaceSize(endpoint, tools)
  const report: LintReport = { errors: [], notes: [], sizes: [size] }
  if (options.modelTokenBudget !== undefined && size.modelTokens > options.modelTokenBudget) {
    report.errors.push({ endpoint, tool: '*', message: `the model-visible tool surface is ${size.modelTokens} tokens, over its budget of ${options.modelTokenBudget}` })
  }
  for (const tool of tools) {
    const error = (message: string) => report.errors.push({ endpoint, tool: tool.name, message })
    const note = (message: string) => report.notes.push({ endpoint, tool: tool.name, message })
    if (!mcpName.test(tool.name)) error(`name does not match ${mcpName}`)
    if (!llmName.test(tool.name)) note(`name does not match ${llmName}: LLM APIs need it mapped`)
    if (!tool.description?.trim()) error('no description')
    const schema = tool.inputSchema as Record<string, unknown>
    if (schema.type !== 'object') error('input schema is not type "object" at the top')
    const properties = (schema.properties ?? {}) as Record<string, Record<string, unknown>>
    for (const [name, property] of Object.entries(properties)) {
      if (typeof property.description !== 'string' || !property.description.trim()) error(`input property '${name}' has no description`)
    }
    const cycle = refCycle(schema)
    if (cycle) error(`$ref cycle: ${cycle}`)
    const used = new Set<string>()
    walk(schema, (node) => {
      for (const keyword of riskyKeywords) if (keyword in node) used.add(keyword)
    })
    if (used.size) (options.strict ? error : note)(`input schema uses ${[...used].sort().join(', ')} (not supported by every major client)`)
  }
  return report
}

function walk(value: unknown, visit: (node: Record<string, unknown>) => void): void {
  if (Array.isArray(value)) return value.forEach((item) => walk(item, visit))
  if (value === null || typeof value !== 'object') return
  visit(value as Record<string, unknown>)
  for (const child of Object.values(value)) walk(child, visit)
}

/** A cycle among local `$ref`s ("#/…" pointers), as "a -> b -> a", or null. */
export function refCycle(schema: Record<string, unknown>): string | null {
  const resolve = (pointer: string): unknown => {
    if (!pointer.startsWith('#')) return undefined
    let node: unknown = schema
    for (const part of pointer.slice(1).split('/').filter(Boolean)) {
      node = node !== null && typeof node === 'object' ? (node as Record<string, unknown>)[part.replace(/~1/g, '/').replace(/~0/g, '~')] : undefined
    }
    return node
  }
  const refsIn = (node: unknown): string[] => {
    const found: string[] = []
    walk(node, (child) => typeof child.$ref === 'string' && found.push(child.$ref))
    return found
  }
  const state = new Map<string, 'open' | 'done'>()
  const visit = (pointer: string, path: string[]): string | null => {
    if (state.get(pointer) === 'open') return [...path, pointer].join(' -> ')
    if (state.get(pointer) === 'done') return null
    state.set(pointer, 'open')
    for (const next of refsIn(resolve(pointer))) {
      const cycle = visit(next, [...path, pointer])
      if (cycle) return cycle
    }
    state.set(pointer, 'done')
    return null
  }
  for (const pointer of refsIn(schema)) {
    const cycle = visit(pointer, [])
    if (cycle) return cycle
  }
  return null
}

export function mergeReports(reports: LintReport[]): LintReport {
  return { errors: reports.flatMap((report) => report.errors), notes: reports.flatMap((report) => report.notes), sizes: reports.flatMap((report) => report.sizes) }
}

export function formatReport(report: LintReport): string {
  const lines = report.sizes.map((size) => `${size.endpoint}: ${size.tools} tools; tools/list ${size.characters} chars, ${size.listTokens} tokens; sent to a model (name, description, input schema) ${size.modelTokens} tokens (o200k_base)`)
  for (const finding of report.errors) lines.push(`ERROR ${finding.endpoint} ${finding.tool}: ${finding.message}`)
  for (const finding of report.notes) lines.push(`note  ${finding.endpoint} ${finding.tool}: ${finding.message}`)
  lines.push(`${report.errors.length} errors, ${report.notes.length} notes`)
  return lines.join('\n')
}

/**
 * What the management tools may cost a model per request, in tokens. Measured at 5,503 when the
 * budget was set; a tool or description that pushes past it should replace words, not add them.
 */
export const managementModelTokenBudget = 6000

/** Lints a fresh platform: management tools and the dev function endpoint with two functions. */
export async function lintFreshPlatform(): Promise<LintReport> {
  const { McpSession, startWorld } = await import('./harness.ts')
  const { Client } = await import('@modelcontextprotocol/sdk/client/index.js')
  const { StreamableHTTPClientTransport } = await import('@modelcontextprotocol/sdk/client/streamableHttp.js')
  const { readFile } = await import('node:fs/promises')
  const { join } = await import('node:path')
  const world = await startWorld()
  try {
    const management = await McpSession.connect(world)
    const managementTools = await management.listTools()
    await management.close()

    const calculateTax = await readFile(join(import.meta.dirname, '..', 'examples', 'hometax', 'calculateTax.ts'), 'utf8')
    const greet = "import { z } from 'zod'\nexport const description = 'Greets someone'\nexport const input = z.object({ name: z.string().describe('Who to greet') })\nexport default async function (ctx) { return 'Hello, ' + ctx.input.name }\n"
    await world.admin.must('POST', '/admin/gateways', { id: 'hometax' })
    await world.admin.waitForPhase('hometax', 'Started')
    for (const [name, source] of [['calculateTax', calculateTax], ['user/greet', greet]] as const) {
      await world.admin.must('PUT', `/admin/gateways/hometax/functions/${encodeURIComponent(name)}`, { source })
      await world.admin.must('POST', `/admin/gateways/hometax/functions/${encodeURIComponent(name)}/publish`, {})
    }
    await world.admin.request('POST', '/admin/applications', { name: 'lint' })
    const grant = (await world.admin.must('POST', '/admin/grants', { application: 'lint', gateway: 'hometax', stage: 'dev' })) as { apiKey: string }
    const client = new Client({ name: 'imprun-tool-lint', version: '1.0.0' })
    await client.connect(new StreamableHTTPClientTransport(new URL(`${world.url}/mcp/hometax/dev`), { requestInit: { headers: { authorization: `Bearer ${grant.apiKey}` } } }))
    const functionTools = (await client.listTools()).tools
    await client.close()
    return mergeReports([lintTools('/mcp', managementTools, { strict: true, modelTokenBudget: managementModelTokenBudget }), lintTools('/mcp/hometax/dev', functionTools)])
  } finally {
    await world.close()
  }
}

if (import.meta.main) {
  const report = await lintFreshPlatform()
  console.log(formatReport(report))
  process.exitCode = report.errors.length ? 1 : 0
}
