/**
 * zod for the sandbox. User functions import `zod`; instead of bundling it into every function
 * version (460 kB each), functions reference one copy that the sandbox evaluates into each context
 * as the global `__imprun_zod`. Built once per process from the installed zod package.
 */
import { buildSync } from 'esbuild'

export const zodGlobalName = '__imprun_zod'

let cached: string | null = null

export function zodBundle(): string {
  cached ??= buildSync({
    stdin: { contents: "export * from 'zod'", resolveDir: import.meta.dirname },
    bundle: true,
    format: 'iife',
    globalName: zodGlobalName,
    platform: 'neutral',
    mainFields: ['module', 'main'],
    target: 'es2023',
    minify: true,
    write: false,
    logLevel: 'silent',
  }).outputFiles[0]!.text
  return cached
}

let shim: string | null = null

/**
 * The module a function gets for `import … from 'zod'`: every export of the zod package, read
 * from the shared global, so named, default and namespace imports all work.
 */
export async function zodShimModule(): Promise<string> {
  if (shim) return shim
  const names = Object.keys(await import('zod')).filter((name) => name !== 'default' && /^[A-Za-z_$][\w$]*$/.test(name))
  shim = [
    `const zod = globalThis.${zodGlobalName};`,
    `export const { ${names.join(', ')} } = zod;`,
    'export default zod.default ?? zod.z;',
  ].join('\n')
  return shim
}
