/** The compiler the platform uses: esbuild bundling plus sandboxed metadata extraction. */
import type { Compiler } from '../../control/ports.ts'
import { createMetadataExtractor } from '../sandbox/metadata-extractor.ts'
import { createEsbuildCompiler } from './esbuild-compiler.ts'

export { bundle, compileFailed, createEsbuildCompiler, moduleGlobalName, type Diagnostic } from './esbuild-compiler.ts'
export { zodBundle, zodGlobalName } from './zod-bundle.ts'

export function createDefaultCompiler(): Compiler {
  return createEsbuildCompiler({ extractMetadata: createMetadataExtractor() })
}
