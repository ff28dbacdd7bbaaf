/**
 * Test doubles behind the control ports. Named as such: they stand in for the real compiler
 * (runtime/compile) and provisioners (local, kubernetes) in tests of the control core only.
 */
import { ImprunError } from '../errors.ts'
import type { CompiledFunction, CompileRequest, Compiler, Provisioner, ProvisionTarget } from '../ports.ts'

/**
 * A compiler test double: "compiles" by copying `index.ts`; the description is the text of a
 * `// description: …` line; a file containing `SYNTAX ERROR` fails like a real syntax error.
 */
export class TestDoubleCompiler implements Compiler {
  calls = 0

  async compile(request: CompileRequest): Promise<CompiledFunction> {
    this.calls++
    for (const [file, text] of Object.entries(request.files)) {
      const line = text.split('\n').findIndex((content) => content.includes('SYNTAX ERROR'))
      if (line >= 0) {
        throw new ImprunError('compile_failed', `${file}:${line + 1}:1: syntax error`, {
          details: { diagnostics: [{ file, line: line + 1, column: 1, message: 'syntax error' }] },
        })
      }
    }
    const source = request.files['index.ts'] ?? ''
    const description = /\/\/ description: (.*)/.exec(source)?.[1] ?? ''
    return { code: source, metadata: { description, inputSchema: { type: 'object' }, outputSchema: null } }
  }
}

export type ProvisionerCall = { method: keyof Provisioner; gatewayId: string }

/**
 * A provisioner test double that records calls, can fail a method a number of times, can hang
 * in a method until released, and reports ready only after `start` (or as told).
 */
export class TestDoubleProvisioner implements Provisioner {
  readonly kind = 'test-double'
  readonly calls: ProvisionerCall[] = []
  readonly started = new Set<string>()
  failures: Partial<Record<keyof Provisioner, { remaining: number; message: string }>> = {}
  hang: Partial<Record<keyof Provisioner, Promise<void>>> = {}
  readyAfterStart = true

  failNext(method: keyof Provisioner, times: number, message = `${method} failed`): void {
    this.failures[method] = { remaining: times, message }
  }

  private async enter(method: keyof Provisioner, target: ProvisionTarget): Promise<void> {
    this.calls.push({ method, gatewayId: target.gatewayId })
    const failure = this.failures[method]
    if (failure && failure.remaining > 0) {
      failure.remaining--
      throw new ImprunError('internal', failure.message, { retryable: true })
    }
    await this.hang[method]
  }

  async create(target: ProvisionTarget): Promise<void> {
    await this.enter('create', target)
  }
  async start(target: ProvisionTarget): Promise<void> {
    await this.enter('start', target)
    this.started.add(target.gatewayId)
  }
  async isReady(target: ProvisionTarget): Promise<boolean> {
    await this.enter('isReady', target)
    return this.readyAfterStart && this.started.has(target.gatewayId)
  }
  async stop(target: ProvisionTarget): Promise<void> {
    await this.enter('stop', target)
    this.started.delete(target.gatewayId)
  }
  async destroy(target: ProvisionTarget): Promise<void> {
    await this.enter('destroy', target)
    this.started.delete(target.gatewayId)
  }

  methodsFor(gatewayId: string): string[] {
    return this.calls.filter((call) => call.gatewayId === gatewayId).map((call) => call.method)
  }
}
