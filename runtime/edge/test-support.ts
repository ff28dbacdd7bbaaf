/** Helpers for the edge tests: requests, a clock the test moves, validated plugin confs. */
import { validatePluginConfigs, type PluginConfigs } from '../../control/domain/plugins.ts'
import type { Clock } from '../../control/ports.ts'
import { createPluginChain, type PluginChain, type PluginChainDeps } from './plugin-chain.ts'
import type { EdgeRequest } from './types.ts'

export function edgeRequest(overrides: Partial<EdgeRequest> = {}): EdgeRequest {
  return { method: 'GET', path: '/calculateTax', headers: {}, query: new URLSearchParams(), clientIp: '203.0.113.7', ...overrides }
}

export interface ManualClock extends Clock {
  advance(ms: number): void
}

export function manualClock(start = 1_700_000_000_000): ManualClock {
  let now = start
  return {
    now: () => now,
    advance(ms) {
      now += ms
    },
  }
}

/**
 * A chain over confs validated (and default-filled) the way the platform stores them; only the
 * plugins named, no base CORS unless given.
 */
export function validatedChain(plugins: Record<string, unknown>, deps: Partial<PluginChainDeps> = {}): PluginChain {
  const confs: PluginConfigs = validatePluginConfigs(plugins)
  return createPluginChain(confs, { scope: 'hometax/prod/calculateTax', ...deps })
}
