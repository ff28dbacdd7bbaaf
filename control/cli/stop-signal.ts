import type { SignalSource } from './cli-io.ts'

/**
 * Resolves with the first SIGINT or SIGTERM, then lets go of both: a second Ctrl-C during a slow
 * shutdown gets Node's default behaviour and ends the process at once. Every long-running
 * command (start, mcp, runtime, control) stops on it.
 */
export function waitForStopSignal(signals: SignalSource): Promise<'SIGINT' | 'SIGTERM'> {
  return new Promise((resolve) => {
    const onInterrupt = () => settle('SIGINT')
    const onTerminate = () => settle('SIGTERM')
    const settle = (signal: 'SIGINT' | 'SIGTERM') => {
      signals.off('SIGINT', onInterrupt)
      signals.off('SIGTERM', onTerminate)
      resolve(signal)
    }
    signals.once('SIGINT', onInterrupt)
    signals.once('SIGTERM', onTerminate)
  })
}
