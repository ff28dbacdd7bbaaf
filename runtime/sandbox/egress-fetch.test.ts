import assert from 'node:assert/strict'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { test, type TestContext } from 'node:test'
import { createServer as createTlsServer } from 'node:tls'
import { gzipSync } from 'node:zlib'
import { isImprunError, type ErrorCode } from '../../control/errors.ts'
import {
  classifyAddress,
  createEgressFetch,
  createEgressPolicy,
  type EgressConnectEvent,
  type EgressFailure,
  type EgressFetchOptions,
  type LookupAddress,
} from './egress-fetch.ts'

// Every server here listens on 127.0.0.1; no test sends traffic anywhere else. Refusals of other
// addresses are checked to happen before any connection through the onConnect spy.

interface Seen {
  method: string
  url: string
  headers: IncomingMessage['headers']
  body: Buffer
}

async function startServer(
  t: TestContext,
  handler: (request: IncomingMessage, response: ServerResponse, body: Buffer) => void,
): Promise<{ port: number; seen: Seen[] }> {
  const seen: Seen[] = []
  const server = createServer((request, response) => {
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => chunks.push(chunk))
    request.on('end', () => {
      const body = Buffer.concat(chunks)
      seen.push({ method: request.method ?? '', url: request.url ?? '', headers: request.headers, body })
      handler(request, response, body)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(async () => {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  })
  return { port: (server.address() as AddressInfo).port, seen }
}

/** Options with spies: a lookup from a fixed table and a record of connections. */
function spies(table: Record<string, string[]> = {}) {
  const lookups: string[] = []
  const connects: EgressConnectEvent[] = []
  const options: EgressFetchOptions = {
    async lookup(hostname: string): Promise<LookupAddress[]> {
      lookups.push(hostname)
      const addresses = table[hostname]
      if (addresses === undefined) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' })
      return addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }))
    },
    onConnect: (event) => connects.push(event),
  }
  return { lookups, connects, options }
}

function failsWith(code: ErrorCode, reason: EgressFailure, message?: string | RegExp) {
  return (error: unknown) => {
    assert.ok(isImprunError(error, code), `expected ${code}, got ${String(error)}`)
    assert.equal(error.details?.reason, reason)
    if (typeof message === 'string') assert.equal(error.message, message)
    else if (message !== undefined) assert.match(error.message, message)
    return true
  }
}

const denied = (message?: string | RegExp) => failsWith('egress_denied', 'denied', message)

test('classifies special-purpose addresses and leaves public ones alone', () => {
  const expected: Array<[string, string | undefined]> = [
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['::1', 'loopback'],
    ['0.0.0.0', 'unspecified'],
    ['0.1.2.3', 'unspecified'],
    ['::', 'unspecified'],
    ['169.254.169.254', 'link-local'],
    ['fe80::1', 'link-local'],
    ['fe80::1%eth0', 'link-local'],
    ['10.0.0.1', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['fd00::1', 'private'],
    ['fc00::1', 'private'],
    ['100.64.0.1', 'carrier-grade NAT'],
    ['100.127.255.255', 'carrier-grade NAT'],
    ['224.0.0.1', 'multicast'],
    ['ff02::1', 'multicast'],
    ['240.0.0.1', 'reserved'],
    ['255.255.255.255', 'reserved'],
    ['192.0.2.1', 'documentation'],
    ['198.51.100.7', 'documentation'],
    ['203.0.113.9', 'documentation'],
    ['2001:db8::1', 'documentation'],
    ['198.18.0.1', 'benchmarking'],
    ['198.19.255.255', 'benchmarking'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['::ffff:a9fe:a9fe', 'link-local'],
    ['64:ff9b::7f00:1', 'loopback'],
    ['64:ff9b::10.0.0.1', 'private'],
    ['::7f00:1', 'reserved'], // IPv4-compatible, deprecated
    ['2002:7f00:1::1', 'reserved'], // 6to4
    ['2001::1', 'reserved'], // Teredo
    ['93.184.215.14', undefined],
    ['8.8.8.8', undefined],
    ['172.32.0.1', undefined],
    ['100.128.0.1', undefined],
    ['2606:4700::1111', undefined],
    ['::ffff:8.8.8.8', undefined],
    ['64:ff9b::808:808', undefined],
  ]
  for (const [address, category] of expected) assert.equal(classifyAddress(address), category, address)
})

test('policy: allowPrivate lets private ranges through but never loopback or link-local', () => {
  const policy = createEgressPolicy({ allowPrivate: true })
  policy.checkAddresses('internal.test', ['10.1.2.3', '192.168.0.10', '100.64.0.1', 'fd12::1'])
  assert.throws(() => policy.checkAddresses('internal.test', ['10.1.2.3', '127.0.0.1']), denied(/loopback/))
  assert.throws(() => policy.checkAddresses('169.254.169.254', ['169.254.169.254']), denied(/link-local/))
})

test('policy: allowHosts by CIDR or name, denyHosts wins, bad entries are refused', () => {
  const policy = createEgressPolicy({
    allowHosts: ['10.20.0.0/16', 'Metadata.Internal.', '[fd00::1]'],
    denyHosts: ['10.20.30.40', 'blocked.test'],
  })
  policy.checkAddresses('svc.test', ['10.20.1.1'])
  policy.checkAddresses('svc.test', ['fd00::1'])
  policy.checkAddresses('metadata.internal', ['169.254.169.254'])
  assert.throws(() => policy.checkAddresses('svc.test', ['10.21.0.1']), denied(/private/))
  assert.throws(() => policy.checkAddresses('svc.test', ['10.20.30.40']), denied('egress to svc.test (10.20.30.40) is denied by policy'))
  assert.throws(() => policy.checkAddresses('blocked.test', ['93.184.215.14']), denied())
  assert.throws(() => policy.checkUrl(new URL('https://blocked.test/')), denied())
  for (const entry of ['10.0.0.0/33', 'a b', '10.0.0.0/8/1', 'host.test/8', '']) {
    assert.throws(() => createEgressPolicy({ allowHosts: [entry] }), (error: unknown) => isImprunError(error, 'bad_request'))
  }
})

test('refuses loopback, spelled any way, before connecting', async (t) => {
  const { port, seen } = await startServer(t, (_request, response) => response.end('secret'))
  const { lookups, connects, options } = spies()
  const egressFetch = createEgressFetch(options)
  await assert.rejects(egressFetch({ url: `http://127.0.0.1:${port}/` }), denied('egress to 127.0.0.1 (loopback) is not allowed'))
  await assert.rejects(egressFetch({ url: `http://localhost:${port}/` }), denied('egress to localhost (127.0.0.1, loopback) is not allowed'))
  await assert.rejects(egressFetch({ url: `http://api.localhost:${port}/` }), denied(/loopback/))
  await assert.rejects(egressFetch({ url: `http://LOCALHOST.:${port}/` }), denied(/loopback/))
  await assert.rejects(egressFetch({ url: `http://[::1]:${port}/` }), denied('egress to ::1 (loopback) is not allowed'))
  for (const url of [
    `http://2130706433:${port}/`,
    `http://0x7f000001:${port}/`,
    `http://0x7f.1:${port}/`,
    `http://0177.0.0.1:${port}/`,
    `http://127.1:${port}/`,
    `http://[::ffff:7f00:1]:${port}/`,
    `http://[::ffff:127.0.0.1]:${port}/`,
    `http://[64:ff9b::127.0.0.1]:${port}/`,
  ]) {
    await assert.rejects(egressFetch({ url }), denied(/loopback/), url)
  }
  await assert.rejects(egressFetch({ url: `http://0:${port}/` }), denied(/unspecified/))
  await assert.rejects(egressFetch({ url: `http://[::]:${port}/` }), denied(/unspecified/))
  assert.deepEqual(lookups, [], 'literal addresses and localhost names are never looked up')
  assert.deepEqual(connects, [])
  assert.equal(seen.length, 0)
})

test('refuses metadata, private and other non-public literal addresses before connecting', async () => {
  const { lookups, connects, options } = spies()
  const egressFetch = createEgressFetch(options)
  const cases: Array<[string, string]> = [
    ['http://169.254.169.254/latest/meta-data', 'egress to 169.254.169.254 (link-local) is not allowed'],
    ['http://[fd00:ec2::254]/latest/meta-data', 'egress to fd00:ec2::254 (private) is not allowed'],
    ['http://[::ffff:a9fe:a9fe]/', 'egress to ::ffff:a9fe:a9fe (link-local) is not allowed'],
    ['http://10.0.0.1/', 'egress to 10.0.0.1 (private) is not allowed'],
    ['http://172.16.5.4:8080/', 'egress to 172.16.5.4 (private) is not allowed'],
    ['https://192.168.1.1/', 'egress to 192.168.1.1 (private) is not allowed'],
    ['http://100.64.0.1/', 'egress to 100.64.0.1 (carrier-grade NAT) is not allowed'],
    ['http://224.0.0.1/', 'egress to 224.0.0.1 (multicast) is not allowed'],
    ['http://198.18.0.1/', 'egress to 198.18.0.1 (benchmarking) is not allowed'],
    ['http://192.0.2.1/', 'egress to 192.0.2.1 (documentation) is not allowed'],
    ['http://[fe80::1]/', 'egress to fe80::1 (link-local) is not allowed'],
  ]
  const started = performance.now()
  for (const [url, message] of cases) await assert.rejects(egressFetch({ url }), denied(message), url)
  assert.ok(performance.now() - started < 1000, 'refusals do not wait for any network')
  assert.deepEqual(lookups, [])
  assert.deepEqual(connects, [])
})

test('refuses host names that resolve to any forbidden address', async () => {
  const { lookups, connects, options } = spies({
    'evil.test': ['127.0.0.1'],
    'mixed.test': ['93.184.215.14', '127.0.0.1'],
    'metadata.test': ['169.254.169.254'],
    'mapped.test': ['::ffff:10.0.0.1'],
  })
  const egressFetch = createEgressFetch(options)
  await assert.rejects(egressFetch({ url: 'http://evil.test/' }), denied('egress to evil.test (127.0.0.1, loopback) is not allowed'))
  await assert.rejects(egressFetch({ url: 'http://mixed.test/' }), denied('egress to mixed.test (127.0.0.1, loopback) is not allowed'))
  await assert.rejects(egressFetch({ url: 'http://metadata.test/' }), denied(/link-local/))
  await assert.rejects(egressFetch({ url: 'http://mapped.test/' }), denied(/private/))
  await assert.rejects(egressFetch({ url: 'http://nowhere.test/' }), failsWith('egress_failed', 'dns_failed'))
  assert.deepEqual(lookups, ['evil.test', 'mixed.test', 'metadata.test', 'mapped.test', 'nowhere.test'])
  assert.deepEqual(connects, [], 'public-first answers never lead to a connection either')
})

test('connects to the checked address, sending the host name (no second lookup)', async (t) => {
  const { port, seen } = await startServer(t, (_request, response) => {
    response.setHeader('content-type', 'text/plain; charset=utf-8')
    response.setHeader('x-one', 'a')
    response.end('héllo')
  })
  const answers = [['127.0.0.1'], ['93.184.215.14']] // a rebinding resolver: loopback first, then another
  const lookups: string[] = []
  const connects: EgressConnectEvent[] = []
  const egressFetch = createEgressFetch({
    allowHosts: ['127.0.0.1'],
    async lookup(hostname) {
      lookups.push(hostname)
      return (answers.shift() ?? []).map((address) => ({ address, family: 4 }))
    },
    onConnect: (event) => connects.push(event),
  })
  const response = await egressFetch({ url: `http://example.test:${port}/hello?x=1#frag`, headers: { Host: 'evil.test', Connection: 'upgrade', 'X-Custom': 'yes' } })
  assert.equal(response.status, 200)
  assert.equal(response.statusText, 'OK')
  assert.equal(response.body, 'héllo')
  assert.equal(response.bodyBase64, undefined)
  assert.equal(response.redirected, false)
  assert.equal(response.url, `http://example.test:${port}/hello?x=1#frag`)
  assert.deepEqual(response.headers.find(([name]) => name === 'x-one'), ['x-one', 'a'])
  assert.deepEqual(lookups, ['example.test'])
  assert.deepEqual(connects, [{ url: `http://example.test:${port}/hello?x=1#frag`, hostname: 'example.test', address: '127.0.0.1', port }])
  assert.equal(seen.length, 1)
  assert.equal(seen[0]!.url, '/hello?x=1')
  assert.equal(seen[0]!.headers.host, `example.test:${port}`)
  assert.equal(seen[0]!.headers['x-custom'], 'yes')
  assert.equal(seen[0]!.headers.connection, 'close')
})

test('https presents the host name as SNI while connecting to the checked address', async (t) => {
  const names: string[] = []
  const server = createTlsServer({
    SNICallback(servername, callback) {
      names.push(servername)
      callback(new Error('no certificate here'))
    },
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(() => new Promise((resolve) => server.close(resolve)))
  const port = (server.address() as AddressInfo).port
  const { options } = spies({ 'example.test': ['127.0.0.1'] })
  const egressFetch = createEgressFetch({ ...options, allowHosts: ['127.0.0.1'] })
  await assert.rejects(egressFetch({ url: `https://example.test:${port}/` }), failsWith('egress_failed', 'connect_failed'))
  assert.deepEqual(names, ['example.test'])
})

test('re-checks every redirect: an allowed name cannot bounce to loopback', async (t) => {
  let port = 0
  const server = await startServer(t, (request, response) => {
    const targets: Record<string, string> = {
      '/to-ip': `http://127.0.0.1:${port}/secret`,
      '/to-name': `http://other.test:${port}/secret`,
      '/to-metadata': 'http://169.254.169.254/latest/meta-data',
      '/to-file': 'file:///etc/passwd',
    }
    const location = targets[request.url ?? '']
    if (location === undefined) return response.end('secret')
    response.writeHead(302, { location }).end()
  })
  port = server.port
  const { connects, options } = spies({ 'allowed.test': ['127.0.0.1'], 'other.test': ['127.0.0.1'] })
  const egressFetch = createEgressFetch({ ...options, allowHosts: ['allowed.test'] })
  await assert.rejects(egressFetch({ url: `http://allowed.test:${port}/to-ip` }), denied('egress to 127.0.0.1 (loopback) is not allowed'))
  await assert.rejects(egressFetch({ url: `http://allowed.test:${port}/to-name` }), denied('egress to other.test (127.0.0.1, loopback) is not allowed'))
  await assert.rejects(egressFetch({ url: `http://allowed.test:${port}/to-metadata` }), denied(/link-local/))
  await assert.rejects(egressFetch({ url: `http://allowed.test:${port}/to-file` }), denied(/file:/))
  assert.deepEqual(server.seen.map((entry) => entry.url), ['/to-ip', '/to-name', '/to-metadata', '/to-file'])
  assert.ok(connects.every((event) => event.hostname === 'allowed.test'))
})

test('follows redirects like fetch: 303 turns POST into GET, cross-origin drops credentials', async (t) => {
  let port = 0
  const server = await startServer(t, (request, response) => {
    if (request.url === '/start') return response.writeHead(303, { location: `http://example.test:${port}/next` }).end()
    if (request.url === '/keep') return response.writeHead(307, { location: '/echo' }).end()
    if (request.url === '/loop') return response.writeHead(302, { location: '/loop' }).end()
    response.setHeader('content-type', 'application/json')
    response.end(JSON.stringify({ method: request.method, url: request.url }))
  })
  port = server.port
  const { options } = spies({ 'example.test': ['127.0.0.1'] })
  const egressFetch = createEgressFetch({ ...options, allowHosts: ['127.0.0.1'] })

  const moved = await egressFetch({
    url: `http://127.0.0.1:${port}/start`,
    method: 'post',
    headers: [['Authorization', 'Bearer secret'], ['Content-Type', 'text/plain'], ['X-Trace', '1']],
    body: 'payload',
  })
  assert.equal(moved.status, 200)
  assert.equal(moved.redirected, true)
  assert.equal(moved.url, `http://example.test:${port}/next`)
  assert.deepEqual(JSON.parse(moved.body!), { method: 'GET', url: '/next' })
  const second = server.seen[1]!
  assert.equal(second.headers.authorization, undefined)
  assert.equal(second.headers['content-type'], undefined)
  assert.equal(second.headers['x-trace'], '1')
  assert.equal(second.body.length, 0)

  const kept = await egressFetch({ url: `http://127.0.0.1:${port}/keep`, method: 'PUT', headers: { authorization: 'Bearer same-origin' }, body: 'again' })
  assert.deepEqual(JSON.parse(kept.body!), { method: 'PUT', url: '/echo' })
  const echo = server.seen.at(-1)!
  assert.equal(echo.body.toString(), 'again')
  assert.equal(echo.headers.authorization, 'Bearer same-origin')

  const manual = await egressFetch({ url: `http://127.0.0.1:${port}/loop`, redirect: 'manual' })
  assert.equal(manual.status, 302)
  assert.equal(manual.headers.find(([name]) => name === 'location')?.[1], '/loop')
  await assert.rejects(egressFetch({ url: `http://127.0.0.1:${port}/loop`, redirect: 'error' }), failsWith('egress_failed', 'redirect_not_allowed'))

  const before = server.seen.length
  await assert.rejects(egressFetch({ url: `http://127.0.0.1:${port}/loop` }), failsWith('egress_failed', 'too_many_redirects'))
  assert.equal(server.seen.length - before, 6, 'the first request and 5 redirects')
})

test('returns text as body and anything else as bodyBase64', async (t) => {
  const binary = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0xff, 0x00])
  const { port } = await startServer(t, (request, response) => {
    if (request.url === '/png') return response.writeHead(200, { 'content-type': 'image/png' }).end(binary)
    if (request.url === '/bad-utf8') return response.writeHead(200, { 'content-type': 'text/plain' }).end(binary)
    if (request.url === '/json') return response.writeHead(201, { 'content-type': 'application/problem+json' }).end('{"a":"ü"}')
    if (request.url === '/untyped') return response.end('plain')
    if (request.url === '/gzip') {
      return response.writeHead(200, { 'content-type': 'text/plain', 'content-encoding': 'gzip' }).end(gzipSync('compressed text'))
    }
    if (request.url === '/empty') return response.writeHead(204).end()
    response.writeHead(200, { 'content-type': 'application/octet-stream' }).end()
  })
  const egressFetch = createEgressFetch({ allowHosts: ['127.0.0.1'] })
  const base = `http://127.0.0.1:${port}`
  assert.equal((await egressFetch({ url: `${base}/png` })).bodyBase64, binary.toString('base64'))
  assert.equal((await egressFetch({ url: `${base}/bad-utf8` })).bodyBase64, binary.toString('base64'))
  const json = await egressFetch({ url: `${base}/json` })
  assert.equal(json.status, 201)
  assert.equal(json.body, '{"a":"ü"}')
  assert.equal((await egressFetch({ url: `${base}/untyped` })).body, 'plain')
  const gzipped = await egressFetch({ url: `${base}/gzip` })
  assert.equal(gzipped.body, 'compressed text')
  assert.ok(gzipped.headers.some(([name, value]) => name === 'content-encoding' && value === 'gzip'))
  assert.equal((await egressFetch({ url: `${base}/empty` })).body, '')
  assert.equal((await egressFetch({ url: `${base}/octets`, method: 'HEAD' })).bodyBase64, '')
})

test('sends request bodies given as text or base64, and limits their size', async (t) => {
  const { port, seen } = await startServer(t, (_request, response, body) => response.end(body))
  const egressFetch = createEgressFetch({ allowHosts: ['127.0.0.1'], maxRequestBytes: 16 })
  const url = `http://127.0.0.1:${port}/`
  const bytes = Buffer.from([0, 1, 2, 250, 255])
  const echoed = await egressFetch({ url, method: 'POST', bodyBase64: bytes.toString('base64') })
  assert.equal(echoed.bodyBase64 ?? Buffer.from(echoed.body ?? '').toString('base64'), bytes.toString('base64'))
  assert.equal(seen[0]!.headers['content-length'], '5')
  await egressFetch({ url, method: 'POST', body: 'sixteen bytes ok' })
  await assert.rejects(egressFetch({ url, method: 'POST', body: 'seventeen bytes!!' }), failsWith('body_too_large', 'request_too_large'))
  await assert.rejects(egressFetch({ url, method: 'POST', body: 'éééééééé.' }), failsWith('body_too_large', 'request_too_large'))
  await assert.rejects(egressFetch({ url, method: 'POST', bodyBase64: Buffer.alloc(64).toString('base64') }), failsWith('body_too_large', 'request_too_large'))
  assert.equal(seen.length, 2)
})

test('limits the response body, counted as it streams and after decoding', async (t) => {
  const { port } = await startServer(t, (request, response) => {
    if (request.url === '/declared') {
      response.writeHead(200, { 'content-length': String(2 * 1024 * 1024) })
      return response.end(Buffer.alloc(2 * 1024 * 1024))
    }
    if (request.url === '/bomb') {
      return response.writeHead(200, { 'content-encoding': 'gzip' }).end(gzipSync(Buffer.alloc(4 * 1024 * 1024)))
    }
    if (request.url === '/small') return response.end(Buffer.alloc(1024 * 1024))
    // chunked, no length: 64 KiB chunks until the client gives up
    let sent = 0
    const push = () => {
      while (sent < 8 * 1024 * 1024) {
        sent += 64 * 1024
        if (!response.write(Buffer.alloc(64 * 1024))) return response.once('drain', push)
      }
      response.end()
    }
    response.on('error', () => {})
    push()
  })
  const egressFetch = createEgressFetch({ allowHosts: ['127.0.0.1'], maxResponseBytes: 1024 * 1024 })
  const base = `http://127.0.0.1:${port}`
  const small = await egressFetch({ url: `${base}/small` })
  assert.equal(Buffer.from(small.body ?? small.bodyBase64 ?? '', small.body === undefined ? 'base64' : 'utf8').length, 1024 * 1024)
  await assert.rejects(egressFetch({ url: `${base}/declared` }), failsWith('egress_failed', 'response_too_large'))
  await assert.rejects(egressFetch({ url: `${base}/stream` }), failsWith('egress_failed', 'response_too_large'))
  await assert.rejects(egressFetch({ url: `${base}/bomb` }), failsWith('egress_failed', 'response_too_large'))
})

test('times out a request that never answers', async (t) => {
  const { port } = await startServer(t, () => {}) // never responds
  const egressFetch = createEgressFetch({ allowHosts: ['127.0.0.1'], timeoutMs: 200 })
  const started = performance.now()
  await assert.rejects(egressFetch({ url: `http://127.0.0.1:${port}/` }), failsWith('egress_timeout', 'timeout'))
  const elapsed = performance.now() - started
  assert.ok(elapsed >= 150 && elapsed < 2000, `timed out after ${elapsed} ms`)
})

test('times out a body that trickles', async (t) => {
  const { port } = await startServer(t, (_request, response) => {
    response.writeHead(200, { 'content-type': 'text/plain' })
    response.write('first bytes, then nothing')
  })
  const egressFetch = createEgressFetch({ allowHosts: ['127.0.0.1'], timeoutMs: 200 })
  await assert.rejects(egressFetch({ url: `http://127.0.0.1:${port}/` }), failsWith('egress_timeout', 'timeout'))
})

test("the caller's signal cancels a fetch in flight and refuses new ones", async (t) => {
  const { port } = await startServer(t, () => {})
  const egressFetch = createEgressFetch({ allowHosts: ['127.0.0.1'] })
  const controller = new AbortController()
  const pending = egressFetch({ url: `http://127.0.0.1:${port}/` }, { signal: controller.signal })
  setTimeout(() => controller.abort(), 50)
  const started = performance.now()
  await assert.rejects(pending, failsWith('egress_aborted', 'aborted'))
  assert.ok(performance.now() - started < 2000)
  await assert.rejects(egressFetch({ url: `http://127.0.0.1:${port}/` }, { signal: controller.signal }), failsWith('egress_aborted', 'aborted'))
})

test('limits concurrent fetches per signal, queueing the rest', async (t) => {
  let inFlight = 0
  let most = 0
  const { port } = await startServer(t, (_request, response) => {
    inFlight += 1
    most = Math.max(most, inFlight)
    setTimeout(() => {
      inFlight -= 1
      response.end('done')
    }, 50)
  })
  const egressFetch = createEgressFetch({ allowHosts: ['127.0.0.1'], maxConcurrent: 2, maxQueued: 3 })
  const url = `http://127.0.0.1:${port}/`
  const invocation = new AbortController()
  const results = await Promise.all(Array.from({ length: 5 }, () => egressFetch({ url }, { signal: invocation.signal })))
  assert.deepEqual(results.map((result) => result.body), ['done', 'done', 'done', 'done', 'done'])
  assert.equal(most, 2)

  // 2 running + 3 waiting fill this invocation; a sixth is refused, another invocation is not.
  const filling = Array.from({ length: 5 }, () => egressFetch({ url }, { signal: invocation.signal }))
  await assert.rejects(egressFetch({ url }, { signal: invocation.signal }), failsWith('rate_limited', 'too_many_fetches'))
  const other = await egressFetch({ url }, { signal: new AbortController().signal })
  assert.equal(other.body, 'done')
  await Promise.all(filling)

  // aborting the invocation releases its queue
  const queued = Array.from({ length: 4 }, () => egressFetch({ url }, { signal: invocation.signal }))
  invocation.abort()
  const settled = await Promise.allSettled(queued)
  assert.ok(settled.every((result) => result.status === 'rejected' && isImprunError(result.reason) && result.reason.details?.reason === 'aborted'))
})

test('refuses other schemes, credentials, bad ports and malformed requests before any lookup', async () => {
  const { lookups, connects, options } = spies({ 'example.test': ['93.184.215.14'] })
  const egressFetch = createEgressFetch({ ...options, denyHosts: ['blocked.test'] })
  for (const url of ['file:///etc/passwd', 'data:text/plain,hello', 'ftp://example.test/file', 'javascript:alert(1)', 'ws://example.test/']) {
    await assert.rejects(egressFetch({ url }), denied(/only http: and https:/), url)
  }
  await assert.rejects(egressFetch({ url: 'http://example.test:25/' }), denied('egress to port 25 is not allowed'))
  await assert.rejects(egressFetch({ url: 'http://blocked.test/' }), denied('egress to blocked.test is denied by policy'))
  await assert.rejects(egressFetch({ url: 'http://user:pass@example.test/' }), failsWith('bad_request', 'invalid_request'))
  await assert.rejects(egressFetch({ url: 'not a url' }), failsWith('bad_request', 'invalid_request'))
  await assert.rejects(egressFetch({ url: 'http://example.test/', headers: { 'x-evil': 'a\r\nInjected: yes' } }), failsWith('bad_request', 'invalid_request'))
  await assert.rejects(egressFetch({ url: 'http://example.test/', headers: [['bad name', 'x']] }), failsWith('bad_request', 'invalid_request'))
  await assert.rejects(egressFetch({ url: 'http://example.test/', body: 'x' }), failsWith('bad_request', 'invalid_request'))
  await assert.rejects(egressFetch({ url: 'http://example.test/', method: 'CONNECT' }), failsWith('bad_request', 'invalid_request'))
  await assert.rejects(egressFetch({ url: 'http://example.test/', body: 'a', bodyBase64: 'YQ==' }), failsWith('bad_request', 'invalid_request'))
  await assert.rejects(egressFetch({ url: 'http://example.test/', extra: true } as never), failsWith('bad_request', 'invalid_request'))
  assert.deepEqual(lookups, [])
  assert.deepEqual(connects, [])
})

test('allowedPorts replaces the bad-port list', async () => {
  const { lookups, options } = spies({ 'example.test': ['127.0.0.1'] })
  const egressFetch = createEgressFetch({ ...options, allowedPorts: [443] })
  await assert.rejects(egressFetch({ url: 'http://example.test/' }), denied('egress to port 80 is not allowed'))
  await assert.rejects(egressFetch({ url: 'https://example.test/' }), denied(/loopback/))
  assert.deepEqual(lookups, ['example.test'])
})
