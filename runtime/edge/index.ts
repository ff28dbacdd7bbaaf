/** The embedded data plane's edge: APISIX plugin semantics in process (see plugin-chain.ts). */
export { createPluginChain, mergeResponseHeaders, type EdgeResult, type PluginChain, type PluginChainDeps } from './plugin-chain.ts'
export {
  createRateLimitState,
  type FixedWindowResult,
  type LeakyBucketResult,
  type RateLimitState,
  type RateLimitStateOptions,
  type SlidingWindowResult,
} from './rate-limit-state.ts'
export { corsConfIssues, corsDefaults } from './cors.ts'
export { ipRestrictionDefaults } from './ip-restriction.ts'
export { invalidKeyMessage, keyAuthDefaults, missingKeyMessage } from './key-auth.ts'
export { limitCountDefaults, rateLimitedMessage } from './limit-count.ts'
export { limitReqDefaults } from './limit-req.ts'
export type { EdgeErrorBody, EdgeQuery, EdgeRequest, ShortCircuit, VerifiedConsumer, VerifyKey } from './types.ts'
