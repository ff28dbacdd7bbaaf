/**
 * The security review as tests, against a real embedded platform over loopback: the admin token
 * on every admin route (enumerated from the OpenAPI document, so a new route is covered the day
 * it is added), grant keys kept out of function code and logs, size limits.
 */
import assert from 'node:assert/strict'
import { request as httpRequest } from 'node:http'
import { test } from 'node:test'
import { jsonRequest, until } from './support/platform-client.ts'
import { useTestPlatform } from './support/test-platform.ts'

const token = 'security-token'
const { admin, call, platform } = useTestPlatform({ token, gateways: [{ id: 'vault' }] })


test('every admin route refuses a missing, wrong or malformed token', async () => {
  const document = await admin('GET', '/admin/openapi.json')
  assert.equal(document.status, 200)
  const operations: Array<[string, string]> = []
  for (const [path, methods] of Object.entries(document.body.paths as Record<string, Record<string, unknown>>)) {
    if (!path.startsWith('/admin/')) continue
    for (const method of Object.keys(methods)) operations.push([method.toUpperCase(), path.replace(/\{[^}]+\}/g, (name) => (name === '{stage}' ? 'dev' : name === '{gateway}' ? 'vault' : 'x'))])
  }
  assert.ok(operations.length >= 30, `only ${operations.length} operations documented`)
  // The API description itself is public (it is the open-source API, no data); nothing else is.
  assert.equal((await call('/admin/openapi.json')).status, 200)
  for (const [method, path] of operations) {
    for (const authorization of [undefined, 'Bearer wrong-token', `Bearer ${token}x`, token, 'Basic Zm9vOmJhcg==']) {
      const response = await call(path, {
        method,
        headers: { ...(authorization ? { authorization } : {}), ...(method === 'GET' || method === 'DELETE' ? {} : { 'content-type': 'application/json' }) },
        body: method === 'GET' || method === 'DELETE' ? undefined : '{}',
      })
      assert.equal(response.status, 401, `${method} ${path} with ${authorization ?? 'no token'}: ${response.status}`)
      assert.equal(response.body.error.code, 'unauthorized')
    }
  }
  // Nothing was changed by any of those requests.
  assert.deepEqual((await admin('GET', '/admin/gateways')).body.gateways.map((gateway: { id: string }) => gateway.id), ['vault'])
})

test('grant keys: shown once, hidden from functions on prod, never in logs or listings', async () => {
  const leaky = `export default (ctx: any) => { console.log('headers', JSON.stringify(ctx.request.headers), 'query', JSON.stringify(ctx.request.query)); return { seen: ctx.request.headers.apikey ?? ctx.request.query.apikey ?? null } }`
  await admin('PUT', '/admin/gateways/vault/functions/leaky', { source: leaky })
  await admin('POST', '/admin/gateways/vault/functions/leaky/publish', {})
  await admin('POST', '/admin/gateways/vault/functions/leaky/promote', { from: 'dev' })
  await admin('POST', '/admin/gateways/vault/functions/leaky/promote', { from: 'staging' })
  await admin('POST', '/admin/applications', { name: 'spy' })
  const grant = await admin('POST', '/admin/grants', { application: 'spy', gateway: 'vault', stage: 'prod' })
  const key: string = grant.body.apiKey
  const byHeader = await until(() => call('/vault/prod/leaky', { headers: { apikey: key } }), (response) => response.status !== 404, 'prod deployment')
  assert.deepEqual([byHeader.status, byHeader.body], [200, { seen: null }], 'prod key-auth hides the key from the function')
  const byQuery = await call(`/vault/prod/leaky?apikey=${encodeURIComponent(key)}`)
  assert.deepEqual([byQuery.status, byQuery.body], [200, { seen: null }])
  const byBearer = await call('/vault/prod/leaky', { headers: { authorization: `Bearer ${key}` } })
  assert.equal(byBearer.status, 200)

  const logs = await admin('GET', '/admin/gateways/vault/logs?stage=prod')
  assert.ok(logs.body.logs.length >= 3)
  assert.ok(!JSON.stringify(logs.body).includes(key.slice(-20)), 'no part of the secret in the logs')
  for (const path of ['/admin/grants', `/admin/grants/${grant.body.id}`, '/admin/applications/spy']) {
    const listed = await admin('GET', path)
    assert.equal(listed.status, 200)
    assert.ok(!JSON.stringify(listed.body).includes(key.slice(-20)), `${path} shows no key`)
  }
  const rotated = await admin('POST', `/admin/grants/${grant.body.id}/rotate`, {})
  assert.notEqual(rotated.body.apiKey, key)
  assert.equal((await call('/vault/prod/leaky', { headers: { apikey: key } })).status, 401, 'the old key stops at once')
  assert.equal((await call('/vault/prod/leaky', { headers: { apikey: rotated.body.apiKey } })).status, 200)
  await admin('POST', `/admin/grants/${grant.body.id}/revoke`)
  assert.equal((await call('/vault/prod/leaky', { headers: { apikey: rotated.body.apiKey } })).status, 401, 'revoked at once')
})

test('request body and header size limits answer 413 and 431, and the server keeps serving', async () => {
  const huge = 'x'.repeat(3 * 1024 * 1024)
  const adminBody = await call('/admin/gateways', { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ id: 'big', description: huge }) })
  assert.equal(adminBody.status, 413)
  await admin('PUT', '/admin/gateways/vault/functions/echo', { source: 'export default (ctx: any) => ({ size: JSON.stringify(ctx.input).length })' })
  await admin('POST', '/admin/gateways/vault/functions/echo/publish', {})
  const planeBody = await until(() => call('/vault/dev/echo', jsonRequest('POST', { huge })), (response) => response.status !== 404, 'echo live')
  assert.equal(planeBody.status, 413)
  assert.equal(planeBody.body.error.code, 'body_too_large')

  const status = await new Promise<number>((resolve, reject) => {
    const url = new URL('/vault/dev/echo', platform().url)
    const outgoing = httpRequest({ host: url.hostname, port: url.port, path: url.pathname, headers: { 'x-padding': 'y'.repeat(64 * 1024) } }, (response) => {
      response.resume()
      resolve(response.statusCode ?? 0)
    })
    outgoing.on('error', reject)
    outgoing.end()
  })
  assert.equal(status, 431)
  const fine = await call('/vault/dev/echo', jsonRequest('POST', { small: true }))
  assert.deepEqual([fine.status, fine.body], [200, { size: 14 }])
})
