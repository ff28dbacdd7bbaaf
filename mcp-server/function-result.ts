/**
 * How a function's return value becomes an MCP tool result.
 *
 * - A function that declares an `output` schema (an object) returns structured content, with the
 *   same JSON as text for clients that do not read structuredContent.
 * - Otherwise a string is text; an object is structured content plus its JSON as text; anything
 *   else (array, number, boolean, null) is its JSON as text; no value is an empty result.
 * - MCP content convention: a function without an `output` schema may return exactly
 *   `{ content: [ …MCP content blocks… ] }` (optionally with `structuredContent`) to answer with
 *   images, audio or embedded resources. Only an object with no other keys whose every block is a
 *   valid MCP content block counts; over HTTP the same object is ordinary JSON.
 */
import { ContentBlockSchema, type CallToolResult } from '@modelcontextprotocol/sdk/types.js'
import { z } from 'zod'

const contentConvention = z
  .object({
    content: z.array(z.unknown()).min(1),
    structuredContent: z.record(z.string(), z.unknown()).optional(),
  })
  .strict()

export function functionToolResult(value: unknown, options: { empty: boolean; hasOutputSchema: boolean }): CallToolResult {
  if (options.empty) return { content: [] }
  if (!options.hasOutputSchema) {
    const convention = mcpContent(value)
    if (convention) return convention
  }
  if (typeof value === 'string') return { content: [{ type: 'text', text: value }] }
  const text = JSON.stringify(value)
  if (isPlainObject(value)) return { content: [{ type: 'text', text }], structuredContent: value }
  return { content: [{ type: 'text', text }] }
}

function mcpContent(value: unknown): CallToolResult | null {
  const parsed = contentConvention.safeParse(value)
  if (!parsed.success) return null
  const blocks: CallToolResult['content'] = []
  for (const block of parsed.data.content) {
    const checked = ContentBlockSchema.safeParse(block)
    if (!checked.success) return null
    blocks.push(checked.data)
  }
  return parsed.data.structuredContent ? { content: blocks, structuredContent: parsed.data.structuredContent } : { content: blocks }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}
