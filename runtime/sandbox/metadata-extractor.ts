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
import { IdleSpare } from './idle-spare.ts'
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

/** The extractor's isolate and what is made once per isolate. */
interface ExtractorIsolate {
  isolate: ivm.Isolate
  /** `inspect`, compiled once: a Script belongs to its isolate and runs in any of its contexts. */
  inspect: ivm.Script | null
}

export interface MetadataExtractor {
  (code: string): Promise<FunctionMetadata>
  /** Disposes the isolate (and the spare context in it); a later call starts a new one. */
  close(): void
}

export function createMetadataExtractor(options: MetadataExtractorOptions = {}): MetadataExtractor {
  const memoryLimit = options.memoryLimitMb ?? 64
  const timeout = options.timeoutMs ?? 1000
  let current: ExtractorIsolate | null = null
  let running = 0
  /**
   * One context built while no extraction runs, for the next publish. Each context serves one
   * module only (a module's top-level code could leave anything in its globals). Built only in a
   * live isolate: none after close(), nor right after a memory bomb disposed one. One spare for
   * the extractor, tagged with its isolate and dropped with it: a spare kept per isolate object
   * instead crashed isolated-vm's teardown at exit after a memory bomb (7 runs in 16).
   */
  const spare = new IdleSpare(
    async () => {
      const owner = current!
      return { owner, context: await owner.isolate.createContext() }
    },
    () => running === 0 && current !== null && !current.isolate.isDisposed,
  )

  const isolateInUse = (): ExtractorIsolate => {
    if (!current || current.isolate.isDisposed) {
      current = { isolate: new ivm.Isolate({ memoryLimit, snapshot: zodSnapshot() }), inspect: null }
      spare.drop()
    }
    return current
  }

  /** The spare, if it belongs to the isolate in use. */
  const takeSpare = async (owner: ExtractorIsolate): Promise<ivm.Context | null> => {
    const taken = await spare.take()
    return taken && taken.owner === owner ? taken.context : null
  }

  const close = (): void => {
    const owner = current
    current = null
    spare.drop()
    if (owner && !owner.isolate.isDisposed) owner.isolate.dispose()
  }

  async function extractMetadata(code: string): Promise<FunctionMetadata> {
    const owner = isolateInUse()
    const { isolate } = owner
    running++
    let context: ivm.Context | null = null
    try {
      context = (await takeSpare(owner)) ?? (await isolate.createContext())
      const script = await isolate.compileScript(code, { filename: 'index.js' })
      try {
        await script.run(context, { timeout })
      } catch (error) {
        throw compileFailed([{ file: 'index.ts', line: 1, column: 1, message: `evaluating the module failed: ${describe(error)}` }])
      } finally {
        script.release()
      }
      owner.inspect ??= await isolate.compileScript(inspect, { filename: 'inspect.js' })
      const result = JSON.parse((await owner.inspect.run(context, { timeout })) as string) as {
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
      running--
      if (isolate.isDisposed) {
        // A memory bomb: the isolate and every context in it are gone; the next call makes new ones.
        if (current === owner) current = null
      } else context?.release()
      spare.refill()
    }
  }
  return Object.assign(extractMetadata, { close })
}

function describe(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error)
  if (/timed out/i.test(message)) return 'module top-level code ran too long'
  if (/memory limit|disposed/i.test(message)) return 'module top-level code used too much memory'
  return message
}
