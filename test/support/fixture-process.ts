/**
 * Starts a fixture (`test/fixtures/<name>.ts`) as a real child process with the same Node
 * binary, and reads its stdout line by line. Fixtures speak one JSON object per line. Every wait
 * has a deadline, and a wait fails at once when the child exits, with its stderr in the message,
 * so that a crashing fixture shows up as its own error instead of as a timeout.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

export interface FixtureProcess {
  readonly name: string
  readonly child: ChildProcess
  /** Every stdout line so far, parsed as JSON. */
  readonly messages: Array<Record<string, unknown>>
  /** Resolves when the process has exited and its stdout and stderr are fully read. */
  readonly closed: Promise<void>
  stderr(): string
  /** Writes one line to the child's stdin. */
  send(message: Record<string, unknown>): void
  /** Resolves with the first message (already seen or still to come) for which `pick` returns a value. */
  waitFor<R>(what: string, pick: (message: Record<string, unknown>) => R | undefined, timeoutMs: number): Promise<R>
  /** Sends SIGKILL (when still running) and waits until the process is gone and its pipes are drained. */
  kill(): Promise<void>
}

export interface FixtureOptions {
  environment?: Record<string, string>
}

export function startFixture(name: string, options: FixtureOptions = {}): FixtureProcess {
  const path = fileURLToPath(new URL(`../fixtures/${name}.ts`, import.meta.url))
  const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', path], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, ...options.environment },
  })
  const messages: Array<Record<string, unknown>> = []
  const listeners = new Set<() => void>()
  let stderr = ''
  let exited = false
  const notify = (): void => {
    for (const listener of [...listeners]) listener()
  }

  child.stderr!.setEncoding('utf8')
  child.stderr!.on('data', (chunk: string) => (stderr += chunk))
  const lines = createInterface({ input: child.stdout! })
  lines.on('line', (line) => {
    try {
      messages.push(JSON.parse(line) as Record<string, unknown>)
    } catch {
      messages.push({ unparsed: line })
    }
    notify()
  })
  // 'close' comes after 'exit' and after both pipes ended, so no line is still on its way.
  const closed = once(child, 'close').then(() => {
    exited = true
    notify()
  })
  // A write to a child that just died must not crash the test process.
  child.stdin!.on('error', () => {})

  return {
    name,
    child,
    messages,
    closed,
    stderr: () => stderr,
    send(message) {
      child.stdin!.write(`${JSON.stringify(message)}\n`)
    },
    waitFor(what, pick, timeoutMs) {
      return new Promise((resolve, reject) => {
        let seen = 0
        const check = (): void => {
          for (; seen < messages.length; seen++) {
            const picked = pick(messages[seen]!)
            if (picked !== undefined) return finish(() => resolve(picked))
          }
          if (exited) {
            finish(() =>
              reject(new Error(`${name} exited (${child.exitCode ?? child.signalCode}) before ${what}; stderr:\n${stderr}`)),
            )
          }
        }
        const timer = setTimeout(
          () => finish(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${name}: ${what}; stderr:\n${stderr}`))),
          timeoutMs,
        )
        const finish = (settle: () => void): void => {
          clearTimeout(timer)
          listeners.delete(check)
          settle()
        }
        listeners.add(check)
        check()
      })
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
      await closed
    },
  }
}

/** Resolves with `probe()`'s first defined result, polling every `intervalMs`; fails after `timeoutMs`. */
export async function pollUntil<R>(
  what: string,
  probe: () => Promise<R | undefined>,
  timeoutMs: number,
  intervalMs = 20,
): Promise<R> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const result = await probe()
    if (result !== undefined) return result
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, intervalMs))
  }
}
