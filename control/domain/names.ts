/** Naming rules for everything a user names, checked at every boundary. */
import { z } from 'zod'
import { ImprunError } from '../errors.ts'
import type { Stage } from '../ports.ts'

export const stages: readonly Stage[] = ['dev', 'staging', 'prod']

/**
 * Ids a gateway may not take: they are path prefixes of the platform's own surfaces on the
 * shared port (admin REST, MCP, chat gateway, health), or would be confusing as a hostname.
 */
export const reservedGatewayIds: ReadonlySet<string> = new Set([
  'admin', 'api', 'mcp', 'v1', 'v2', 'sse', 'messages', 'health', 'healthz', 'readyz', 'metrics',
  'openapi', 'docs', 'static', 'www', 'system', 'imprun', 'dev', 'staging', 'prod', 'localhost',
])

/** DNS-1123 label, at most 40 characters (room for prefixes in namespaces and database names). */
export const gatewayIdSchema = z
  .string()
  .min(1)
  .max(40)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'a gateway id is a DNS-1123 label: lower-case letters, digits and -, starting and ending with a letter or digit')
  .refine((id) => !reservedGatewayIds.has(id), { message: 'this gateway id is reserved' })
  .describe('Gateway id: DNS-1123 label (a-z, 0-9, -), 1-40 characters')

/** Path-like: up to 4 segments of a letter then letters, digits, _ or -; 128 characters at most. */
export const functionNameSchema = z
  .string()
  .min(1)
  .max(128)
  .regex(
    /^[A-Za-z][A-Za-z0-9_-]{0,63}(\/[A-Za-z][A-Za-z0-9_-]{0,63}){0,3}$/,
    'a function name is 1-4 path segments separated by /, each a letter followed by letters, digits, _ or -',
  )
  .describe('Function name, path-like (e.g. calculateTax or user/me)')

export const stageSchema = z.enum(['dev', 'staging', 'prod']).describe('Environment (stage): dev, staging or prod')

export const applicationNameSchema = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9][A-Za-z0-9 _.-]*$/, 'an application name is letters, digits, space, _, . or -, starting with a letter or digit')
  .describe('Application (API consumer) name')

/** Parses with a schema and turns a failure into an `invalid_name` error. */
export function checkName<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const result = schema.safeParse(value)
  if (result.success) return result.data
  const reason = result.error.issues[0]?.message ?? 'invalid'
  throw new ImprunError('invalid_name', `invalid ${what} '${String(value)}': ${reason}`, { details: { what } })
}

export function nextStage(stage: Stage): Stage | null {
  const index = stages.indexOf(stage)
  return stages[index + 1] ?? null
}
