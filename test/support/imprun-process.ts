/** `imprun start` as a real child process, the way `npm start` runs it. */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'

export const imprunBin = fileURLToPath(new URL('../../bin/imprun.ts', import.meta.url))

/** The environment without the variables that would point the CLI elsewhere. */
export function cleanEnvironment(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const environment = { ...process.env }
  for (const name of ['IMPRUN_URL', 'IMPRUN_TOKEN', 'IMPRUN_DATA_DIR', 'IMPRUN_PORT', 'IMPRUN_HOST', 'PORT']) delete environment[name]
  return { ...environment, ...extra }
}

export interface ImprunServer {
  child: ChildProcess
  url: string
  stdout(): string
  stderr(): string
  /** Sends SIGTERM and resolves with the exit code. */
  stop(): Promise<number | null>
  /** SIGKILL: no shutdown code runs. */
  kill(): Promise<void>
}

export async function startImprunServer(dataDirectory: string, extraArguments: string[] = []): Promise<ImprunServer> {
  const child = spawn(process.execPath, [imprunBin, 'start', '--data-dir', dataDirectory, '--port', '0', ...extraArguments], {
    cwd: dataDirectory,
    env: cleanEnvironment(),
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  const exited = once(child, 'close').then(() => child.exitCode)
  const deadline = Date.now() + 30_000
  let url: string | undefined
  // Wait for the line after the token block too, so that the whole announcement is in.
  while (!(url = /imprun is running at (\S+)/.exec(stdout)?.[1]) || !stdout.includes('Press Ctrl-C to stop.')) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`imprun start exited early (${child.exitCode ?? child.signalCode}):\n${stdout}\n${stderr}`)
    if (Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`imprun start printed no URL within 30 s:\n${stdout}\n${stderr}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return {
    child,
    url,
    stdout: () => stdout,
    stderr: () => stderr,
    async stop() {
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
      const code = await exited
      clearTimeout(timer)
      return code
    },
    async kill() {
      child.kill('SIGKILL')
      await exited
    },
  }
}
