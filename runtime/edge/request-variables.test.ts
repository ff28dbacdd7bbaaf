import { test } from 'node:test'
import assert from 'node:assert/strict'
import { normalizeClientIp, queryValue, queryWithout, requestVariable, resolveLimitKey, resolveTemplate } from './request-variables.ts'
import { edgeRequest } from './test-support.ts'

const context = {
  request: edgeRequest({
    method: 'POST',
    path: '/user/me',
    headers: { host: 'API.Example.com:8443', 'x-user-id': 'u1', cookie: 'theme=dark; session=abc=def' },
    query: new URLSearchParams('year=2024&year=2025&q=a%20b'),
  }),
  remoteAddr: '198.51.100.4',
  consumer: 'mobile',
}

test('requestVariable reads the nginx/APISIX variables limit keys and templates use', () => {
  const expected: Record<string, string | undefined> = {
    remote_addr: '198.51.100.4',
    consumer_name: 'mobile',
    request_method: 'POST',
    uri: '/user/me',
    request_uri: '/user/me?year=2024&year=2025&q=a+b',
    host: 'api.example.com',
    http_x_user_id: 'u1',
    http_x_missing: undefined,
    arg_year: '2024',
    arg_q: 'a b',
    cookie_session: 'abc=def',
    cookie_none: undefined,
    server_name: undefined,
  }
  for (const [name, value] of Object.entries(expected)) assert.equal(requestVariable(context, name), value, name)
})

test('resolveTemplate fills $var and ${var}, empties unknown ones, counts what resolved, keeps \\$', () => {
  const lookup = (name: string) => requestVariable(context, name)
  assert.deepEqual(resolveTemplate('$remote_addr:${http_x_user_id}x', lookup), { value: '198.51.100.4:u1x', resolved: 2 })
  assert.deepEqual(resolveTemplate('$http_x_missing-$arg_none', lookup), { value: '-', resolved: 0 })
  assert.deepEqual(resolveTemplate('price \\$5', lookup), { value: 'price \\$5', resolved: 0 })
  assert.deepEqual(resolveTemplate('plain', lookup), { value: 'plain', resolved: 0 })
})

test('resolveLimitKey falls back to remote_addr when the key resolves to nothing', () => {
  assert.equal(resolveLimitKey(context, 'http_x_user_id', 'var'), 'u1')
  assert.equal(resolveLimitKey(context, 'http_x_missing', 'var'), '198.51.100.4')
  assert.equal(resolveLimitKey(context, '$http_x_missing $arg_none', 'var_combination'), '198.51.100.4')
  assert.equal(resolveLimitKey(context, '$consumer_name-$arg_year', 'var_combination'), 'mobile-2024')
  assert.equal(resolveLimitKey(context, 'all', 'constant'), 'all')
})

test('normalizeClientIp unmaps IPv4-mapped IPv6 only', () => {
  assert.equal(normalizeClientIp('::ffff:127.0.0.1'), '127.0.0.1')
  assert.equal(normalizeClientIp('::FFFF:10.1.2.3'), '10.1.2.3')
  assert.equal(normalizeClientIp('2001:db8::1'), '2001:db8::1')
  assert.equal(normalizeClientIp('::ffff:999.1.1.1'), '::ffff:999.1.1.1')
})

test('query helpers work on URLSearchParams and records alike and never mutate', () => {
  const record = { apikey: 'k', tags: ['a', 'b'] }
  assert.equal(queryValue(record, 'tags'), 'a')
  assert.equal(queryValue(record, 'toString'), undefined, 'no prototype keys')
  assert.deepEqual(queryWithout(record, 'apikey'), { tags: ['a', 'b'] })
  assert.deepEqual(record, { apikey: 'k', tags: ['a', 'b'] })
  const params = new URLSearchParams('apikey=k&x=1')
  assert.equal(queryWithout(params, 'apikey').toString(), 'x=1')
  assert.equal(params.toString(), 'apikey=k&x=1')
})
