import { test } from 'node:test'
import assert from 'node:assert/strict'
import { baseCorsConf } from '../../control/domain/plugins.ts'
import { isImprunError } from '../../control/errors.ts'
import { corsConfIssues } from './cors.ts'
import { createPluginChain } from './plugin-chain.ts'
import { edgeRequest, validatedChain } from './test-support.ts'

test('the base CORS conf (APISIX defaults) answers any origin with "*" and no Vary', async () => {
  const chain = createPluginChain({ cors: baseCorsConf() }, { scope: 's' })
  const result = await chain.run(edgeRequest({ headers: { origin: 'https://app.example' } }))
  assert.equal(result.response, undefined, 'a simple request goes on to the function')
  assert.deepEqual(result.headers, {
    'access-control-allow-origin': '*',
    'access-control-allow-methods': '*',
    'access-control-allow-headers': '*',
    'access-control-max-age': '5',
  })
  const withoutOrigin = await chain.run(edgeRequest())
  assert.equal(withoutOrigin.headers['access-control-allow-origin'], '*', 'APISIX sets "*" even without an Origin')
})

test('a preflight from a configured origin is answered 200 with exact CORS headers, credentials and Vary', async () => {
  const chain = validatedChain({
    cors: {
      allow_origins: 'https://a.example,https://b.example:8443',
      allow_methods: 'GET,POST',
      allow_headers: 'content-type,apikey',
      expose_headers: 'x-ratelimit-remaining',
      max_age: 600,
      allow_credential: true,
    },
  })
  const result = await chain.run(
    edgeRequest({
      method: 'OPTIONS',
      headers: { origin: 'https://b.example:8443', 'access-control-request-method': 'POST' },
    }),
  )
  assert.deepEqual(result.response, {
    status: 200,
    body: null,
    headers: {
      'access-control-allow-origin': 'https://b.example:8443',
      vary: 'Origin',
      'access-control-allow-methods': 'GET,POST',
      'access-control-allow-headers': 'content-type,apikey',
      'access-control-expose-headers': 'x-ratelimit-remaining',
      'access-control-max-age': '600',
      'access-control-allow-credentials': 'true',
    },
  })
})

test('an origin that is not allowed gets no CORS headers, and the request still proceeds', async () => {
  const chain = validatedChain({ cors: { allow_origins: 'https://a.example,https://b.example' } })
  const simple = await chain.run(edgeRequest({ headers: { origin: 'https://evil.example' } }))
  assert.equal(simple.response, undefined)
  assert.deepEqual(simple.headers, {})

  const preflight = await chain.run(edgeRequest({ method: 'OPTIONS', headers: { origin: 'https://evil.example' } }))
  assert.deepEqual(preflight.response, { status: 200, headers: {}, body: null }, 'APISIX still answers OPTIONS itself')

  const single = validatedChain({ cors: { allow_origins: 'https://a.example' } })
  assert.deepEqual((await single.run(edgeRequest({ headers: { origin: 'https://a.example.evil' } }))).headers, {})
  assert.deepEqual((await single.run(edgeRequest())).headers, {}, 'no Origin, no match for a specific origin')
})

test('"**" echoes the origin and the requested headers even with credentials, and lists all methods', async () => {
  const chain = validatedChain({
    cors: { allow_origins: '**', allow_methods: '**', allow_headers: '**', expose_headers: 'x-id', allow_credential: true },
  })
  const result = await chain.run(
    edgeRequest({
      method: 'OPTIONS',
      headers: { origin: 'https://anywhere.example', 'access-control-request-headers': 'x-custom, content-type' },
    }),
  )
  assert.equal(result.response?.headers['access-control-allow-origin'], 'https://anywhere.example')
  assert.equal(result.response?.headers.vary, 'Origin')
  assert.equal(result.response?.headers['access-control-allow-methods'], 'GET,POST,PUT,DELETE,PATCH,HEAD,OPTIONS,CONNECT,TRACE')
  assert.equal(result.response?.headers['access-control-allow-headers'], 'x-custom, content-type')
  assert.equal(result.response?.headers['access-control-allow-credentials'], 'true')
})

test('allow_origins_by_regex replaces allow_origins: only matching origins are echoed', async () => {
  // allow_origins keeps its default "*", which the regex must override.
  const chain = validatedChain({ cors: { allow_origins_by_regex: ['^https://[a-z0-9-]+\\.example\\.com$'] } })
  const sub = await chain.run(edgeRequest({ headers: { origin: 'https://shop.example.com' } }))
  assert.equal(sub.headers['access-control-allow-origin'], 'https://shop.example.com')
  assert.equal(sub.headers.vary, 'Origin')
  const other = await chain.run(edgeRequest({ headers: { origin: 'https://example.com.evil.net' } }))
  assert.deepEqual(other.headers, {})
})

test('timing_allow_origins sets Timing-Allow-Origin for matching origins only', async () => {
  const chain = validatedChain({ cors: { timing_allow_origins: 'https://a.example' } })
  const matching = await chain.run(edgeRequest({ headers: { origin: 'https://a.example' } }))
  assert.equal(matching.headers['timing-allow-origin'], 'https://a.example')
  const other = await chain.run(edgeRequest({ headers: { origin: 'https://b.example' } }))
  assert.equal(other.headers['timing-allow-origin'], undefined)
})

test('allow_credential with "*" in another field is refused, as APISIX check_schema does', () => {
  assert.deepEqual(corsConfIssues({ allow_origins: 'https://a.example', allow_methods: 'GET', allow_headers: 'x', allow_credential: true }), [])
  const issues = corsConfIssues({ ...baseCorsConf(), allow_credential: true })
  assert.equal(issues.length, 1)
  assert.match(issues[0]!, /allow_origins, allow_methods, allow_headers/)
  assert.throws(
    () => createPluginChain({ cors: { ...baseCorsConf(), allow_origins: 'https://a.example', allow_credential: true } }, { scope: 's' }),
    (error) => isImprunError(error, 'invalid_plugin_config'),
  )
  assert.equal(corsConfIssues({ allow_origins_by_regex: ['(unclosed'] }).length, 1)
})
