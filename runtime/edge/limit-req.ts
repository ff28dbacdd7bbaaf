/**
 * limit-req (apisix/plugins/limit-req.lua over resty.limit.req, priority 1001, access phase),
 * `policy: "local"`: a leaky bucket draining `rate` requests per second that holds up to `burst`
 * requests above the rate, per key (`key_type` "var" or "var_combination"; a key resolving to
 * nothing falls back to remote_addr).
 *
 * A request arriving while the bucket's excess would pass `burst` is rejected with
 * `rejected_code` (APISIX default 503) and `rejected_msg`. A request within the burst is let
 * through after a delay of excess / rate seconds, unless `nodelay`; the chain does not sleep
 * itself but returns the delay (`delayMs`) for the caller to await before invoking the function
 * (APISIX sleeps when the delay is at least 1 ms). Rejected requests do not fill the bucket.
 */
import { ImprunError } from '../../control/errors.ts'
import type { PluginConf } from '../../control/domain/plugins.ts'
import { rateLimitedMessage, type LimitPluginOptions } from './limit-count.ts'
import { confIdentity } from './rate-limit-state.ts'
import { resolveLimitKey } from './request-variables.ts'
import { errorResponse, type EdgeContext, type EdgePlugin, type ShortCircuit } from './types.ts'

export const limitReqDefaults = {
  key_type: 'var',
  rejected_code: 503,
  nodelay: false,
  allow_degradation: false,
  policy: 'local',
} as const

export function createLimitReq(conf: PluginConf, options: LimitPluginOptions): EdgePlugin {
  if ((conf.policy ?? limitReqDefaults.policy) !== 'local') throw refused('policy', 'only "local" is supported')
  const rate = conf.rate
  const burst = conf.burst
  if (typeof rate !== 'number' || !(rate > 0)) throw refused('rate', 'must be a number above 0')
  if (typeof burst !== 'number' || !(burst >= 0)) throw refused('burst', 'must be a number of at least 0')
  if (typeof conf.key !== 'string') throw refused('key', 'is required')
  const key = conf.key
  const keyType = typeof conf.key_type === 'string' ? conf.key_type : limitReqDefaults.key_type
  const nodelay = conf.nodelay === true
  const rejectedCode = typeof conf.rejected_code === 'number' ? conf.rejected_code : limitReqDefaults.rejected_code
  const rejectedMessage = typeof conf.rejected_msg === 'string' ? conf.rejected_msg : rateLimitedMessage
  const counterPrefix = `limit-req\u0000${options.scope}\u0000${confIdentity(conf)}`

  return {
    name: 'limit-req',
    phase: 'access',
    priority: 1001,
    run(context: EdgeContext): ShortCircuit | undefined {
      const counter = `${counterPrefix}\u0000${resolveLimitKey(context, key, keyType)}`
      const result = options.state.leakyBucket(counter, rate, burst, options.clock.now())
      if (!result.allowed) return errorResponse(rejectedCode, 'rate_limited', rejectedMessage)
      if (!nodelay && result.delaySeconds >= 0.001) context.delayMs += result.delaySeconds * 1000
      return undefined
    },
  }
}

function refused(field: string, message: string): ImprunError {
  return new ImprunError('invalid_plugin_config', `plugins.limit-req/${field}: ${message}`, {
    details: { plugin: 'limit-req', field },
  })
}
