/**
 * Reads a compiled function's exports (description, zod `input` / `output` → JSON Schema) by
 * running its bundle in an isolate with zod, under memory and time limits: module top-level code
 * is user code and is treated as such. Runs once per publish; tools and routers read the stored
 * result and never load code to list functions.
 */
import ivm from 'isolated-vm'
import { ImprunError } from '../../control/errors.ts'
import type { FunctionMetadata } from '../../control/ports.ts'
import { compileFailed } from '../compile/esbuild-compiler.ts'
import { zodSnapshot } from './zod-snapshot.ts'

export interface MetadataExtractorOptions {
  memoryLimitMb?: number
  timeoutMs?: number
}

const inspect = `(() => {
  const m = globalThis.__imprun_module ?? {};
  const z = globalThis.__imprun_zod;
  const problems = [];
  if (typeof m.default !== 'function') problems.push('index.ts must export a default function: export default async function (ctx) { … }');
  const schemaOf = (name, io) => {
    const schema = m[name];
    if (schema === undefined) return null;
    if (!schema || typeof schema !== 'object' || typeof schema.safeParse !== 'function') {
      problems.push('export const ' + name + ' must be a zod schema');
      return null;
    }
    try { return z.toJSONSchema(schema, { io, unrepresentable: 'any' }); }
    catch (error) { problems.push(name + ' cannot be expressed as JSON Schema: ' + (error && error.message)); return null; }
  };
  const description = m.description === undefined ? '' : m.description;
  if (typeof description !== 'string') problems.push('export const description must be a string');
  const input = schemaOf('input', 'input');
  const output = schemaOf('output', 'output');
  if (input && input.type !== 'object') problems.push('input must be a z.object({ … }): tools take an object of named arguments');
  return JSON.stringify({ problems, description: typeof description === 'string' ? description : '', input, output });
})()`

export function createMetadataExtractor(options: MetadataExtractorOptions = {}) {
  const memoryLimit = options.memoryLimitMb ?? 64
  const timeout = options.timeoutMs ?? 1000
  let isolate: ivm.Isolate | null = null

  const fresh = (): { isolate: ivm.Isolate } => {
    if (!isolate || isolate.isDisposed) isolate = new ivm.Isolate({ memoryLimit, snapshot: zodSnapshot() })
    return { isolate }
  }

  return async function extractMetadata(code: string): Promise<FunctionMetadata> {
    const current = fresh()
    const context = await current.isolate.createContext()
    try {
      try {
        const script = await current.isolate.compileScript(code, { filename: 'index.js' })
        await script.run(context, { timeout })
      } catch (error) {
        throw compileFailed([{ file: 'index.ts', line: 1, column: 1, message: `evaluating the module failed: ${describe(error)}` }])
      }
      const result = JSON.parse(await context.eval(inspect, { timeout })) as {
        problems: string[]
        description: string
        input: Record<string, unknown> | null
        output: Record<string, unknown> | null
      }
      if (result.problems.length > 0) {
        throw compileFailed(result.problems.map((message) => ({ file: 'index.ts', line: 1, column: 1, message })))
      }
      return { description: result.description, inputSchema: result.input, outputSchema: result.output }
    } catch (error) {
      if (error instanceof ImprunError) throw error
      throw compileFailed([{ file: 'index.ts', line: 1, column: 1, message: describe(error) }])
    } finally {
      context.release()
      if (current.isolate.isDisposed) isolate = null
    }
  }
}

function describe(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error)
  if (/timed out/i.test(message)) return 'module top-level code ran too long'
  if (/memory limit|disposed/i.test(message)) return 'module top-level code used too much memory'
  return message
}
