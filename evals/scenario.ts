/**
 * The data shape of an eval scenario (evals/scenarios/*.json), validated with zod at load.
 *
 * A scenario is a task a user would give an agent, an optional setup run through the admin REST
 * API before the agent starts, a grader that checks the platform's END STATE (admin REST API and
 * data-plane calls, never the transcript), and a reference trajectory of MCP tool calls that
 * solves it (replayed by the scripted provider, so that every grader is known to be passable).
 *
 * Values anywhere in setup, trajectory and grader may hold:
 * - `"${setup.NAME.path}"`: a value saved by a setup step (`save: NAME`), e.g. a leaked key;
 * - `"${steps.N.path}"`: the structured result of reference step N (0-based, scripted only);
 * - `"${checks.NAME.path}"`: a response body saved by an earlier check (`save: NAME`);
 * - `{ "$file": "examples/hometax/calculateTax.ts" }`: a file's text, relative to the repo root.
 * A string that is exactly one reference takes the referenced value's type; inside a longer
 * string the value is interpolated as text.
 *
 * Matchers in `expect` / `expectBody`: objects match partially and recursively; arrays match
 * element by element with the same length; `{ "$contains": X }` matches an array with at least one
 * element matching X; `"$any"` is anything but null/undefined; `"$absent"` is undefined.
 */
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { z } from 'zod'

export const stageSchema = z.enum(['dev', 'staging', 'prod'])

/** An admin REST request: `path` starts with /admin. */
export const requestStepSchema = z
  .object({
    method: z.enum(['GET', 'POST', 'PUT', 'PATCH', 'DELETE']),
    path: z.string().startsWith('/admin'),
    body: z.unknown().optional(),
    /** Expected status; default any 2xx. */
    expectStatus: z.number().int().optional(),
    /** Keep the response body as `${setup.NAME…}`. */
    save: z.string().optional(),
  })
  .strict()

/** Shorthand: gateway (created and Started if missing) + function written, published, promoted. */
export const deployStepSchema = z
  .object({
    deploy: z
      .object({
        gateway: z.string(),
        function: z.string(),
        source: z.unknown(),
        stages: z.array(stageSchema).min(1).default(['dev']),
        message: z.string().optional(),
      })
      .strict(),
  })
  .strict()

/** Shorthand: create a gateway and wait until it is Started. */
export const gatewayStepSchema = z.object({ gateway: z.object({ id: z.string(), pipeline: z.boolean().optional() }).strict() }).strict()

export const setupStepSchema = z.union([requestStepSchema, deployStepSchema, gatewayStepSchema])

export const httpCallSchema = z
  .object({
    method: z.enum(['GET', 'POST', 'PUT', 'PATCH', 'DELETE']).default('POST'),
    /** Data-plane path, e.g. /hometax/prod/calculateTax (query string allowed). */
    path: z.string().startsWith('/'),
    body: z.unknown().optional(),
    headers: z.record(z.string(), z.string()).optional(),
  })
  .strict()

export const checkSchema = z.union([
  z
    .object({
      /** Admin REST GET (admin token added). */
      get: z.string().startsWith('/admin'),
      expectStatus: z.number().int().default(200),
      expect: z.unknown().optional(),
      why: z.string().optional(),
    })
    .strict(),
  z
    .object({
      /** A data-plane call. */
      call: httpCallSchema,
      /** Send an API key of a grant the grader makes for itself on this environment. */
      auth: z.object({ grant: z.object({ gateway: z.string(), stage: stageSchema }).strict() }).strict().optional(),
      /** Send the call this many times; the last answer is checked (rate limits). */
      repeat: z.number().int().min(1).max(50).default(1),
      expectStatus: z.number().int(),
      expectBody: z.unknown().optional(),
      save: z.string().optional(),
      why: z.string().optional(),
    })
    .strict(),
])

export const toolCallSchema = z
  .object({
    tool: z.string(),
    arguments: z.record(z.string(), z.unknown()).default({}),
    /** The step is meant to fail (e.g. reproducing a broken publish); the replay goes on. */
    expectError: z.boolean().optional(),
  })
  .strict()

export const scenarioSchema = z
  .object({
    id: z.string().regex(/^[a-z0-9-]+$/),
    title: z.string(),
    /** What a user would ask an agent. */
    task: z.string(),
    tags: z.array(z.string()).default([]),
    setup: z.array(setupStepSchema).default([]),
    grader: z.array(checkSchema).min(1),
    reference: z.array(toolCallSchema).min(1),
  })
  .strict()

export type Scenario = z.infer<typeof scenarioSchema>
export type SetupStep = z.infer<typeof setupStepSchema>
export type Check = z.infer<typeof checkSchema>
export type ToolCall = z.infer<typeof toolCallSchema>
export type HttpCall = z.infer<typeof httpCallSchema>

export const scenariosDirectory = join(import.meta.dirname, 'scenarios')

/** Every scenario file of a directory, sorted by file name, validated. */
export async function loadScenarios(directory: string = scenariosDirectory): Promise<Scenario[]> {
  const names = (await readdir(directory)).filter((name) => name.endsWith('.json')).sort()
  const scenarios: Scenario[] = []
  for (const name of names) {
    const parsed = scenarioSchema.safeParse(JSON.parse(await readFile(join(directory, name), 'utf8')))
    if (!parsed.success) throw new Error(`${name}: ${z.prettifyError(parsed.error)}`)
    if (`${parsed.data.id}.json` !== name) throw new Error(`${name}: id '${parsed.data.id}' does not match the file name`)
    scenarios.push(parsed.data)
  }
  const ids = new Set(scenarios.map((scenario) => scenario.id))
  if (ids.size !== scenarios.length) throw new Error('duplicate scenario ids')
  return scenarios
}
