import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ImprunError, isImprunError } from '../../control/errors.ts'
import { createPluginChain } from './plugin-chain.ts'
import { edgeRequest, validatedChain } from './test-support.ts'
import type { VerifiedConsumer, VerifyKey } from './types.ts'

const validKey = 'imp_0123456789abcdef_secret'

/** A verifyKey that knows one key (consumer "mobile") and records every key it was asked about. */
function verifier(): VerifyKey & { calls: string[] } {
  const calls: string[] = []
  const verify = async (key: string): Promise<VerifiedConsumer | null> => {
    calls.push(key)
    return key === validKey ? { consumer: 'mobile', credentialId: 'grant-1' } : null
  }
  return Object.assign(verify, { calls })
}

test('a key in the apikey header authenticates: consumer set and sent on as x-consumer-username', async () => {
  const verifyKey = verifier()
  const chain = validatedChain({ 'key-auth': {} }, { verifyKey })
  const request = edgeRequest({ headers: { apikey: validKey, 'x-consumer-username': 'spoofed' } })
  const result = await chain.run(request)
  assert.equal(result.response, undefined)
  assert.equal(result.consumer, 'mobile')
  assert.deepEqual(verifyKey.calls, [validKey])
  assert.deepEqual(result.request.headers, {
    apikey: validKey,
    'x-consumer-username': 'mobile',
    'x-credential-identifier': 'grant-1',
  })
  assert.deepEqual(request.headers, { apikey: validKey, 'x-consumer-username': 'spoofed' }, "the caller's request is not mutated")
})

test('a key in the query parameter authenticates, with URLSearchParams and with a parsed record', async () => {
  const chain = validatedChain({ 'key-auth': {} }, { verifyKey: verifier() })
  const fromParams = await chain.run(edgeRequest({ query: new URLSearchParams({ apikey: validKey, year: '2024' }) }))
  assert.equal(fromParams.consumer, 'mobile')
  const fromRecord = await chain.run(edgeRequest({ query: { apikey: [validKey, 'ignored'], year: '2024' } }))
  assert.equal(fromRecord.consumer, 'mobile')
})

test('the header wins over the query parameter, as in APISIX', async () => {
  const verifyKey = verifier()
  const chain = validatedChain({ 'key-auth': {} }, { verifyKey })
  const result = await chain.run(edgeRequest({ headers: { apikey: 'wrong' }, query: new URLSearchParams({ apikey: validKey }) }))
  assert.equal(result.response?.status, 401)
  assert.deepEqual(verifyKey.calls, ['wrong'])
})

test('Authorization: Bearer is accepted while header is the default, and not with a custom header', async () => {
  const defaultHeader = validatedChain({ 'key-auth': {} }, { verifyKey: verifier() })
  const bearer = await defaultHeader.run(edgeRequest({ headers: { authorization: `Bearer ${validKey}` } }))
  assert.equal(bearer.consumer, 'mobile')
  const lowerCase = await defaultHeader.run(edgeRequest({ headers: { authorization: `bearer ${validKey}` } }))
  assert.equal(lowerCase.consumer, 'mobile')
  const basic = await defaultHeader.run(edgeRequest({ headers: { authorization: 'Basic dXNlcjpwYXNz' } }))
  assert.equal(basic.response?.status, 401)

  const customHeader = validatedChain({ 'key-auth': { header: 'X-API-Key' } }, { verifyKey: verifier() })
  const refused = await customHeader.run(edgeRequest({ headers: { authorization: `Bearer ${validKey}` } }))
  assert.deepEqual(refused.response?.body, { error: { code: 'unauthorized', message: 'Missing API key in request' } })
  const custom = await customHeader.run(edgeRequest({ headers: { 'x-api-key': validKey } }))
  assert.equal(custom.consumer, 'mobile', 'the header name matches case-insensitively')
})

test('hide_credentials removes the key from the header, the query or Authorization it came from', async () => {
  const chain = validatedChain({ 'key-auth': { hide_credentials: true } }, { verifyKey: verifier() })

  const header = await chain.run(edgeRequest({ headers: { apikey: validKey, accept: 'application/json' } }))
  assert.equal(header.request.headers.apikey, undefined)
  assert.equal(header.request.headers.accept, 'application/json')

  const params = await chain.run(edgeRequest({ query: new URLSearchParams({ apikey: validKey, year: '2024' }) }))
  assert.ok(params.request.query instanceof URLSearchParams)
  assert.equal(params.request.query.toString(), 'year=2024')

  const record = await chain.run(edgeRequest({ query: { apikey: validKey, year: '2024' } }))
  assert.deepEqual(record.request.query, { year: '2024' })

  const bearer = await chain.run(edgeRequest({ headers: { authorization: `Bearer ${validKey}` } }))
  assert.equal(bearer.request.headers.authorization, undefined)

  const kept = validatedChain({ 'key-auth': {} }, { verifyKey: verifier() })
  const notHidden = await kept.run(edgeRequest({ query: { apikey: validKey } }))
  assert.deepEqual(notHidden.request.query, { apikey: validKey }, 'without hide_credentials the key is passed on')
})

test('missing and invalid keys are 401 with APISIX messages and a WWW-Authenticate challenge', async () => {
  const verifyKey = verifier()
  const chain = validatedChain({ 'key-auth': {} }, { verifyKey })
  const missing = await chain.run(edgeRequest())
  assert.deepEqual(missing.response, {
    status: 401,
    headers: { 'www-authenticate': 'apikey realm="key"' },
    body: { error: { code: 'unauthorized', message: 'Missing API key in request' } },
  })
  assert.deepEqual(verifyKey.calls, [], 'nothing to verify')

  const invalid = await chain.run(edgeRequest({ headers: { apikey: 'imp_nope' } }))
  assert.deepEqual(invalid.response?.body, { error: { code: 'unauthorized', message: 'Invalid API key in request' } })
  assert.equal(invalid.consumer, undefined)

  const empty = await chain.run(edgeRequest({ headers: { apikey: '' } }))
  assert.equal((empty.response?.body as { error: { message: string } }).error.message, 'Invalid API key in request')
  assert.deepEqual(verifyKey.calls, ['imp_nope'], 'an empty key is invalid without asking')
})

test('a store failure while verifying is the platform error, not a 401; other errors propagate', async () => {
  const down = validatedChain(
    { 'key-auth': {} },
    { verifyKey: async () => { throw new ImprunError('store_unavailable', 'the store is unavailable', { retryable: true }) } },
  )
  const result = await down.run(edgeRequest({ headers: { apikey: validKey } }))
  assert.equal(result.response?.status, 503)
  assert.deepEqual(result.response?.body, { error: { code: 'store_unavailable', message: 'the store is unavailable' } })

  const broken = validatedChain({ 'key-auth': {} }, { verifyKey: async () => { throw new TypeError('bug') } })
  await assert.rejects(broken.run(edgeRequest({ headers: { apikey: validKey } })), TypeError)
})

test('key-auth without a verifyKey, or with anonymous_consumer, fails the build', () => {
  assert.throws(() => createPluginChain({ 'key-auth': { header: 'apikey' } }, { scope: 's' }), (error) => isImprunError(error, 'internal'))
  assert.throws(
    () => createPluginChain({ 'key-auth': { anonymous_consumer: 'anyone' } }, { scope: 's', verifyKey: verifier() }),
    (error) => isImprunError(error, 'invalid_plugin_config'),
  )
})
