import assert from 'node:assert/strict'
import { test } from 'node:test'
import { presentedCredential, rebindingViolation } from './request-guard.ts'

const policy = { allowedHosts: ['mcp.example.com'] }

test('loopback listeners accept loopback and configured hosts only', () => {
  for (const host of ['localhost:8080', '127.0.0.1:8080', '[::1]:8080', 'mcp.example.com', 'hometax.imprun.localhost:8080']) {
    assert.equal(rebindingViolation({ host }, '127.0.0.1', policy), null, host)
  }
  assert.match(rebindingViolation({ host: 'evil.example.com' }, '127.0.0.1', policy) ?? '', /host/)
  assert.match(rebindingViolation({ host: 'evil.example.com' }, '::ffff:127.0.0.1', policy) ?? '', /host/)
  assert.match(rebindingViolation({}, '::1', policy) ?? '', /host/)
})

test('public listeners check Origin but not Host', () => {
  assert.equal(rebindingViolation({ host: 'api.example.org' }, '10.0.0.5', policy), null)
  assert.match(rebindingViolation({ host: 'api.example.org', origin: 'https://evil.example.com' }, '10.0.0.5', policy) ?? '', /origin/)
  assert.equal(rebindingViolation({ host: 'localhost', origin: 'http://localhost:6274' }, '127.0.0.1', policy), null)
  assert.match(rebindingViolation({ host: 'localhost', origin: 'null' }, '127.0.0.1', policy) ?? '', /origin/)
})

test('credentials come from Bearer, or x-api-key where keys are accepted', () => {
  assert.equal(presentedCredential({ authorization: 'Bearer abc' }, { apiKeyHeader: false }), 'abc')
  assert.equal(presentedCredential({ 'x-api-key': 'k' }, { apiKeyHeader: false }), undefined)
  assert.equal(presentedCredential({ 'x-api-key': 'k' }, { apiKeyHeader: true }), 'k')
  assert.equal(presentedCredential({ authorization: 'Basic abc' }, { apiKeyHeader: true }), undefined)
})
