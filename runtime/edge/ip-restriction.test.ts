import { test } from 'node:test'
import assert from 'node:assert/strict'
import { isImprunError } from '../../control/errors.ts'
import { createPluginChain } from './plugin-chain.ts'
import { edgeRequest, validatedChain } from './test-support.ts'

async function statusFor(chain: ReturnType<typeof validatedChain>, clientIp: string): Promise<number> {
  const result = await chain.run(edgeRequest({ clientIp }))
  return result.response?.status ?? 200
}

test('whitelist with IPv4 and IPv6 CIDRs lets only addresses inside them through', async () => {
  const chain = validatedChain({ 'ip-restriction': { whitelist: ['10.0.0.0/8', '192.168.1.17', '2001:db8::/32'] } })
  assert.equal(await statusFor(chain, '10.20.30.40'), 200)
  assert.equal(await statusFor(chain, '192.168.1.17'), 200)
  assert.equal(await statusFor(chain, '2001:db8:1::5'), 200)
  assert.equal(await statusFor(chain, '192.168.1.18'), 403)
  assert.equal(await statusFor(chain, '11.0.0.1'), 403)
  assert.equal(await statusFor(chain, '2001:db9::1'), 403)
})

test('a rejection uses APISIX defaults: 403 "Your IP address is not allowed" in our error body', async () => {
  const chain = validatedChain({ 'ip-restriction': { whitelist: ['10.0.0.0/8'] } })
  const result = await chain.run(edgeRequest({ clientIp: '8.8.8.8' }))
  assert.deepEqual(result.response, {
    status: 403,
    headers: {},
    body: { error: { code: 'forbidden', message: 'Your IP address is not allowed' } },
  })
})

test('an IPv4-mapped IPv6 peer is matched as its IPv4 address, and mapped rules match IPv4 peers', async () => {
  const whitelist = validatedChain({ 'ip-restriction': { whitelist: ['127.0.0.0/8'] } })
  assert.equal(await statusFor(whitelist, '::ffff:127.0.0.1'), 200)
  assert.equal(await statusFor(whitelist, '::ffff:10.0.0.1'), 403)

  // ::ffff:c633:6400/120 is ::ffff:198.51.100.0/120 (the schema's CIDR pattern wants hex groups).
  const mappedRule = validatedChain({ 'ip-restriction': { blacklist: ['::ffff:c633:6400/120', '::ffff:192.0.2.1'] } })
  assert.equal(await statusFor(mappedRule, '198.51.100.9'), 403)
  assert.equal(await statusFor(mappedRule, '192.0.2.1'), 403)
  assert.equal(await statusFor(mappedRule, '198.51.101.9'), 200)
})

test('blacklist blocks listed addresses with the configured response_code and message', async () => {
  const chain = validatedChain({
    'ip-restriction': { blacklist: ['203.0.113.0/24', '::1'], response_code: 404, message: 'nothing here' },
  })
  assert.equal(await statusFor(chain, '198.51.100.1'), 200)
  const blocked = await chain.run(edgeRequest({ clientIp: '203.0.113.200' }))
  assert.deepEqual(blocked.response?.body, { error: { code: 'not_found', message: 'nothing here' } })
  assert.equal(blocked.response?.status, 404)
  assert.equal(await statusFor(chain, '0:0:0:0:0:0:0:1'), 404, 'IPv6 written out in full is the same address')
})

test('a peer address that is not an IP is blocked by a whitelist and passed by a blacklist', async () => {
  assert.equal(await statusFor(validatedChain({ 'ip-restriction': { whitelist: ['10.0.0.0/8'] } }), 'unknown'), 403)
  assert.equal(await statusFor(validatedChain({ 'ip-restriction': { blacklist: ['10.0.0.0/8'] } }), ''), 200)
})

test('entries the schema lets through but no matcher can use fail the build', () => {
  for (const entry of ['2001:db8::/129', '300.1.1.1']) {
    assert.throws(
      () => createPluginChain({ 'ip-restriction': { whitelist: [entry] } }, { scope: 's' }),
      (error) => isImprunError(error, 'invalid_plugin_config') && error.message.includes(entry),
    )
  }
})
