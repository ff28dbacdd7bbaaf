import { test } from 'node:test'
import assert from 'node:assert/strict'
import { edgeRequest, validatedChain } from './test-support.ts'

test('headers add, then set, then remove, with $variables resolved against the request', async () => {
  const chain = validatedChain({
    'proxy-rewrite': {
      headers: {
        add: { 'X-Forwarded-Tenant': '$http_x_tenant', Accept: 'text/plain' },
        set: { 'X-Client': '$remote_addr via ${request_method}', 'X-Version': 2, 'X-Tags': ['a', 'b'] },
        remove: ['X-Debug', 'accept'],
      },
    },
  })
  const request = edgeRequest({
    method: 'POST',
    clientIp: '::ffff:198.51.100.4',
    headers: { 'x-tenant': 'acme', 'x-forwarded-tenant': 'edge', 'x-debug': '1', accept: 'application/json' },
  })
  const result = await chain.run(request)
  assert.deepEqual(result.request.headers, {
    'x-tenant': 'acme',
    'x-forwarded-tenant': 'edge, acme',
    'x-client': '198.51.100.4 via POST',
    'x-version': '2',
    'x-tags': 'a, b',
  })
  assert.equal(request.headers['x-debug'], '1', "the caller's request is not mutated")
})

test('the flat headers form sets headers; an empty value removes one; uri rewriting is ignored', async () => {
  const chain = validatedChain({ 'proxy-rewrite': { uri: '/elsewhere', headers: { 'X-Api-Version': 'v2', Cookie: '' } } })
  const result = await chain.run(edgeRequest({ headers: { cookie: 'session=1' } }))
  assert.deepEqual(result.request.headers, { 'x-api-version': 'v2' })
  assert.equal(result.request.path, '/calculateTax')
})

test('a rewritten header is what limit-count keys on (proxy-rewrite runs first)', async () => {
  const chain = validatedChain({
    'proxy-rewrite': { headers: { set: { 'X-Bucket': 'shared' } } },
    'limit-count': { count: 5, time_window: 60, key: 'http_x_bucket' },
  })
  await chain.run(edgeRequest({ clientIp: '10.0.0.1', headers: { 'x-bucket': 'one' } }))
  const second = await chain.run(edgeRequest({ clientIp: '10.0.0.2', headers: { 'x-bucket': 'two' } }))
  assert.equal(second.headers['x-ratelimit-remaining'], '3', 'both requests counted under the rewritten value')
})
