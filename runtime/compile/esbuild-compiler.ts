/**
 * TypeScript → one JavaScript script per function version, with esbuild. The files of a function
 * form a virtual file system; relative imports resolve inside it, `zod` resolves to the sandbox's
 * shared copy, and `@functions/<name>` imports another function of the same gateway (its files
 * are bundled in, so a version never changes when the other function does). Nothing else can be
 * imported: there is no file system or package registry behind a function.
 *
 * The output defines `__imprun_module` (the module's exports) when run as a script.
 */
import { build, type Message, type Plugin } from 'esbuild'
import { ImprunError } from '../../control/errors.ts'
import type { CompiledFunction, CompileRequest, Compiler, FunctionMetadata, SourceFiles } from '../../control/ports.ts'
import { zodShimModule } from './zod-bundle.ts'

export const moduleGlobalName = '__imprun_module'

export interface Diagnostic {
  file: string
  line: number
  column: number
  message: string
}

export interface EsbuildCompilerOptions {
  /** Evaluates a bundle and reads its exports (runs it in the sandbox). */
  extractMetadata: ((code: string) => Promise<FunctionMetadata>) & { close?(): void }
}

const namespace = 'imprun-function'
const extensions = ['', '.ts', '.mts', '.js', '.mjs', '.json', '/index.ts', '/index.js']

/** Imports zod and declares an input, so warming goes through every path a publish can take. */
const warmUpFiles: SourceFiles = {
  'index.ts': "import { z } from 'zod'\nexport const input = z.object({ n: z.number() })\nexport default () => null\n",
}

export function createEsbuildCompiler(options: EsbuildCompilerOptions): Compiler {
  let warming: Promise<void> | null = null
  const compiler: Compiler = {
    async compile(request: CompileRequest): Promise<CompiledFunction> {
      const code = await bundle(request)
      const metadata = await options.extractMetadata(code)
      return { code, metadata }
    },
    // esbuild's service process, the zod bundle and snapshot (built synchronously, about 200 ms
    // of blocked event loop) and the extractor's isolate: otherwise all paid by the first publish.
    warm() {
      warming ??= compiler.compile({ gatewayId: 'warm-up', name: 'warm-up', files: warmUpFiles }).then(
        () => {},
        () => {},
      )
      return warming
    },
    close() {
      options.extractMetadata.close?.()
    },
  }
  return compiler
}

export async function bundle(request: CompileRequest): Promise<string> {
  try {
    const entry = request.files['index.ts']
    const result = await build({
      // The entry as stdin: no round trip to the plugin to resolve and load it (about 1 ms of a
      // publish); its imports still go through the plugin, with `self/index.ts` as importer.
      ...(entry === undefined ? { entryPoints: [`${namespace}:self/index.ts`] } : { stdin: { contents: entry, loader: 'ts' as const, sourcefile: 'self/index.ts' } }),
      bundle: true,
      write: false,
      format: 'iife',
      globalName: moduleGlobalName,
      platform: 'neutral',
      target: 'es2023',
      charset: 'utf8',
      legalComments: 'none',
      logLevel: 'silent',
      plugins: [virtualFiles(request)],
    })
    return result.outputFiles[0]!.text
  } catch (error) {
    const messages = (error as { errors?: Message[] }).errors
    if (!messages) throw error
    throw compileFailed(messages.map(toDiagnostic))
  }
}

export function compileFailed(diagnostics: Diagnostic[]): ImprunError {
  const first = diagnostics[0]
  const summary = first ? `${first.file}:${first.line}:${first.column}: ${first.message}` : 'compilation failed'
  const more = diagnostics.length > 1 ? ` (and ${diagnostics.length - 1} more)` : ''
  return new ImprunError('compile_failed', summary + more, { details: { diagnostics } })
}

function toDiagnostic(message: Message): Diagnostic {
  const location = message.location
  return {
    file: location ? displayPath(location.file) : 'index.ts',
    line: location?.line ?? 1,
    column: (location?.column ?? 0) + 1,
    message: message.text,
  }
}

/** `imprun-function:self/a/b.ts` → `a/b.ts`; another function's files keep its name. */
function displayPath(path: string): string {
  const bare = path.startsWith(`${namespace}:`) ? path.slice(namespace.length + 1) : path
  if (bare.startsWith('self/')) return bare.slice(5)
  const [owner, ...rest] = bare.split('/')
  return `@functions/${decodeURIComponent(owner!)}/${rest.join('/')}`
}

function virtualFiles(request: CompileRequest): Plugin {
  const sources = new Map<string, SourceFiles>([['self', request.files]])
  const owners = new Map<string, SourceFiles | null>()
  return {
    name: 'imprun-virtual-files',
    setup(builder) {
      builder.onResolve({ filter: /.*/ }, async (args) => {
        if (args.kind === 'entry-point') return { path: args.path.slice(namespace.length + 1), namespace }
        if (args.path === 'zod' || args.path === 'zod/v4') return { path: 'zod', namespace: 'imprun-zod' }
        if (args.path.startsWith('@functions/')) {
          const name = args.path.slice('@functions/'.length)
          if (name === request.name) return { errors: [{ text: `a function cannot import itself (${args.path})` }] }
          if (!owners.has(name)) owners.set(name, (await request.resolveFunction?.(name)) ?? null)
          const files = owners.get(name)
          if (!files) return { errors: [{ text: `no function '${name}' in this gateway to import` }] }
          // The owner is the first path segment, so a name with / is encoded.
          sources.set(encodeURIComponent(name), files)
          return { path: `${encodeURIComponent(name)}/index.ts`, namespace }
        }
        if (args.path.startsWith('./') || args.path.startsWith('../')) {
          const [owner, ...directory] = args.importer.split('/')
          const base = resolveRelative(directory.slice(0, -1), args.path)
          const files = sources.get(owner!)
          if (base !== null && files) {
            for (const extension of extensions) {
              if (`${base}${extension}` in files) return { path: `${owner}/${base}${extension}`, namespace }
            }
          }
          return { errors: [{ text: `cannot find '${args.path}' among the function's files` }] }
        }
        return {
          errors: [{ text: `cannot import '${args.path}': functions may import zod, their own files and @functions/<name>; use fetch and ctx.imp for the rest` }],
        }
      })
      builder.onLoad({ filter: /.*/, namespace: 'imprun-zod' }, async () => ({ contents: await zodShimModule(), loader: 'js' }))
      builder.onLoad({ filter: /.*/, namespace }, (args) => {
        const [owner, ...rest] = args.path.split('/')
        const path = rest.join('/')
        const contents = sources.get(owner!)?.[path]
        if (contents === undefined) return { errors: [{ text: `missing file ${path}` }] }
        const loader = path.endsWith('.json') ? 'json' : path.endsWith('.js') || path.endsWith('.mjs') ? 'js' : 'ts'
        return { contents, loader }
      })
    },
  }
}

/** Resolves `./x` / `../x` against a directory inside the virtual tree; null if it escapes. */
function resolveRelative(directory: string[], specifier: string): string | null {
  const parts = [...directory]
  for (const segment of specifier.split('/')) {
    if (segment === '.' || segment === '') continue
    if (segment === '..') {
      if (parts.length === 0) return null
      parts.pop()
    } else parts.push(segment)
  }
  return parts.join('/')
}
