import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, test } from 'node:test'
import { parse } from 'yaml'
import { createApisixStandaloneSync } from './apisix-standalone-sync.ts'
import { sampleEdgeState } from './testing/sample-edge-state.ts'

describe('APISIX standalone apisix.yaml sync', () => {
  let folder: string
  beforeEach(() => {
    folder = mkdtempSync(join(tmpdir(), 'imprun-standalone-'))
  })
  afterEach(() => rmSync(folder, { recursive: true, force: true }))

  test('keeps hand-written entries and other gateways, replaces one gateway, removes it, always ends with #END', async () => {
    const file = join(folder, 'apisix.yaml')
    writeFileSync(file, 'routes:\n  - id: hand-written\n    uri: /hello\n    upstream_id: u1\nupstreams:\n  - id: u1\n    nodes:\n      "127.0.0.1:1980": 1\n    type: roundrobin\n#END\n')
    const edge = createApisixStandaloneSync({ file })
    await Promise.all([edge.sync(sampleEdgeState('hometax', { consumers: 2 })), edge.sync(sampleEdgeState('other', { consumers: 1 }))])
    await edge.sync(sampleEdgeState('hometax', { consumers: 1 }))
    let document = parse(readFileSync(file, 'utf8')) as { routes: Array<{ id: string }>; consumers: unknown[]; upstreams: unknown[] }
    assert.equal(document.routes.length, 1 + 4 + 4)
    assert.equal(document.consumers.length, 2)
    assert.deepEqual((await edge.listGateways()).sort(), ['hometax', 'other'])
    await edge.remove('hometax')
    const text = readFileSync(file, 'utf8')
    assert.match(text, /#END\n$/)
    document = parse(text) as typeof document
    assert.deepEqual(document.routes.map((route) => route.id).sort(), ['hand-written', 'imp.other.base', 'imp.other.dev', 'imp.other.prod', 'imp.other.staging'])
    assert.equal(document.upstreams.length, 1 + 3)
  })
})
