/**
 * key-auth (apisix/plugins/key-auth.lua, priority 2500, rewrite phase). The key is read from the
 * request header `header` (default "apikey"), else from the query parameter `query` (default
 * "apikey"), and checked by the injected `verifyKey` (the platform checks a grant for this
 * gateway and stage). Failures are 401 with `WWW-Authenticate: apikey realm="<realm>"` (realm
 * default "key") and APISIX's messages "Missing API key in request" / "Invalid API key in
 * request", in our error body. With `hide_credentials` the header or query parameter the key came
 * from is removed from the request passed on.
 *
 * As APISIX's `attach_consumer`, the request passed on carries `x-consumer-username` (and
 * `x-credential-identifier` when known); a client-sent value of either is removed, so a function
 * can trust them.
 *
 * imprun extension (not in APISIX): while `header` is the default "apikey", a key may also be
 * sent as `Authorization: Bearer <key>` (what most HTTP and MCP clients know how to send). It is
 * looked at after the apikey header and before the query parameter; `hide_credentials` then
 * removes the Authorization header.
 *
 * `anonymous_consumer` is refused by the platform's validation and refused here too.
 */
import { ImprunError, isImprunError } from '../../control/errors.ts'
import type { PluginConf } from '../../control/domain/plugins.ts'
import { queryValue, queryWithout } from './request-variables.ts'
import { errorResponse, type EdgeContext, type EdgePlugin, type ShortCircuit, type VerifyKey } from './types.ts'

export const keyAuthDefaults = { header: 'apikey', query: 'apikey', hide_credentials: false, realm: 'key' } as const

export const missingKeyMessage = 'Missing API key in request'
export const invalidKeyMessage = 'Invalid API key in request'

type KeySource = 'header' | 'bearer' | 'query'

export function createKeyAuth(conf: PluginConf, verifyKey: VerifyKey | undefined): EdgePlugin {
  if (verifyKey === undefined) {
    throw new ImprunError('internal', 'key-auth is configured but the plugin chain was given no verifyKey')
  }
  if (conf.anonymous_consumer !== undefined) {
    throw new ImprunError('invalid_plugin_config', 'plugins.key-auth/anonymous_consumer: is not supported', {
      details: { plugin: 'key-auth', field: 'anonymous_consumer' },
    })
  }
  const headerName = (typeof conf.header === 'string' ? conf.header : keyAuthDefaults.header).toLowerCase()
  const queryName = typeof conf.query === 'string' ? conf.query : keyAuthDefaults.query
  const hideCredentials = conf.hide_credentials === true
  const realm = typeof conf.realm === 'string' ? conf.realm : keyAuthDefaults.realm
  const acceptBearer = headerName === keyAuthDefaults.header

  const unauthorized = (message: string): ShortCircuit =>
    errorResponse(401, 'unauthorized', message, { 'www-authenticate': `apikey realm="${realm}"` })

  return {
    name: 'key-auth',
    phase: 'rewrite',
    priority: 2500,
    async run(context: EdgeContext): Promise<ShortCircuit | undefined> {
      const request = context.request
      let key: string | undefined = request.headers[headerName]
      let source: KeySource = 'header'
      if (key === undefined && acceptBearer) {
        key = bearerToken(request.headers.authorization)
        source = 'bearer'
      }
      if (key === undefined) {
        key = queryValue(request.query, queryName)
        source = 'query'
      }
      if (key === undefined) return unauthorized(missingKeyMessage)

      let verified
      try {
        verified = key === '' ? null : await verifyKey(key)
      } catch (error) {
        // A store outage is the platform's error (e.g. 503 store_unavailable), not a bad key.
        if (isImprunError(error)) return errorResponse(error.status, error.code, error.message)
        throw error
      }
      if (verified === null) return unauthorized(invalidKeyMessage)

      const headers: Record<string, string> = { ...request.headers }
      let query = request.query
      if (hideCredentials) {
        if (source === 'header') delete headers[headerName]
        else if (source === 'bearer') delete headers.authorization
        else query = queryWithout(query, queryName)
      }
      headers['x-consumer-username'] = verified.consumer
      if (verified.credentialId !== undefined) headers['x-credential-identifier'] = verified.credentialId
      else delete headers['x-credential-identifier']

      context.request = { ...request, headers, query }
      context.consumer = verified.consumer
      return undefined
    },
  }
}

/** The token of `Authorization: Bearer <token>` (scheme case-insensitive), or undefined. */
function bearerToken(authorization: string | undefined): string | undefined {
  if (authorization === undefined) return undefined
  const match = /^bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization)
  return match ? match[1] : undefined
}
