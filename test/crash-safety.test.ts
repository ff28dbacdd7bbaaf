/**
 * Crash safety of the whole platform: `imprun start` as a real process takes a stream of
 * publishes, promotes, grants and imp.db() writes and is killed with SIGKILL at a random moment,
 * three times over. After each restart every acknowledged operation is there, nothing half-applied
 * is visible (versions, deployments, history agree), the reconciler finishes what was in flight,
 * and the runtime serves exactly the live versions.
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { startImprunServer, type ImprunServer } from './support/imprun-process.ts'

interface Acknowledged {
  publishes: Array<{ n: number; version: number }>
  promotions: number
  grants: string[]
  rows: number[]
  gateways: string[]
}

const versionSource = (n: number) => `export const description = 'version ${n}'\nexport default () => ({ v: ${n} })`
const appendSource = `export default async (ctx: any) => { await ctx.imp.db().collection('rows').insertOne({ n: ctx.input.n }); return { ok: true } }`
const listSource = `export default async (ctx: any) => (await ctx.imp.db().collection('rows').find({}, { sort: { n: 1 }, skip: Number(ctx.input.skip ?? 0), limit: 1000 })).map((row: any) => row.n)`

test('SIGKILL during publishes, promotes, grants and db writes loses nothing acknowledged', { timeout: 240_000 }, async () => {
  const directory = await mkdtemp(join(tmpdir(), 'imprun-crash-'))
  const acknowledged: Acknowledged = { publishes: [], promotions: 0, grants: [], rows: [], gateways: ['crash'] }
  let server: ImprunServer | null = null
  let counter = 0
  try {
    for (let round = 0; round < 3; round++) {
      server = await startImprunServer(directory)
      const token = readFileSync(join(directory, 'admin-token'), 'utf8').trim()
      const url = server.url
      const admin = adminClient(url, token)
      const waitStarted = async (id: string) => {
        for (let i = 0; i < 600; i++) {
          if ((await admin('GET', `/admin/gateways/${id}`)).body?.phase === 'Started') return
          await new Promise((resolve) => setTimeout(resolve, 25))
        }
        throw new Error(`${id} did not reach Started after restart ${round}`)
      }

      if (round === 0) {
        assert.equal((await admin('POST', '/admin/gateways', { id: 'crash', pipeline: false })).status, 201)
        await waitStarted('crash')
        for (const [name, source] of [['append', appendSource], ['rows', listSource]] as const) {
          await admin('PUT', `/admin/gateways/crash/functions/${name}`, { source })
          assert.equal((await admin('POST', `/admin/gateways/crash/functions/${name}/publish`, {})).status, 200)
        }
      } else {
        await verify(url, admin, acknowledged)
      }

      // The stream: runs until the kill cuts it; only answered requests count as acknowledged.
      let stopped = false
      const writer = (async () => {
        while (!stopped) {
          const n = ++counter
          try {
            const response = await fetch(`${url}/crash/dev/append`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ n }) })
            if (response.status === 200) acknowledged.rows.push(n)
          } catch {
            return
          }
        }
      })()
      const operator = (async () => {
        while (!stopped) {
          const n = ++counter
          try {
            await admin('PUT', '/admin/gateways/crash/functions/f', { source: versionSource(n) })
            const published = await admin('POST', '/admin/gateways/crash/functions/f/publish', {})
            if (published.status === 200) acknowledged.publishes.push({ n, version: published.body.version.number })
            if (n % 3 === 0 && (await admin('POST', '/admin/gateways/crash/functions/f/promote', { from: 'dev' })).status === 200) acknowledged.promotions++
            if (n % 4 === 0) {
              const application = await admin('POST', '/admin/applications', { name: `app-${n}` })
              if (application.status === 201) {
                const grant = await admin('POST', '/admin/grants', { application: `app-${n}`, gateway: 'crash', stage: 'dev' })
                if (grant.status === 201) acknowledged.grants.push(grant.body.id)
              }
            }
            if (n % 7 === 0) {
              const created = await admin('POST', '/admin/gateways', { id: `side-${n}` })
              if (created.status === 201) acknowledged.gateways.push(`side-${n}`)
            }
          } catch {
            return
          }
        }
      })()
      await new Promise((resolve) => setTimeout(resolve, 400 + Math.random() * 1200))
      await server.kill()
      stopped = true
      await Promise.all([writer, operator])
      server = null
    }
    // A last restart: everything acknowledged in the last round is there too.
    server = await startImprunServer(directory)
    const token = readFileSync(join(directory, 'admin-token'), 'utf8').trim()
    const url = server.url
    await verify(url, adminClient(url, token), acknowledged)
    assert.ok(acknowledged.publishes.length >= 3, `publishes acknowledged: ${acknowledged.publishes.length}`)
    assert.ok(acknowledged.rows.length >= 10, `rows acknowledged: ${acknowledged.rows.length}`)
    await server.stop()
    server = null
  } finally {
    await server?.kill()
    await rm(directory, { recursive: true, force: true })
  }
})

type Admin = (method: string, path: string, body?: unknown) => Promise<{ status: number; body: any }>

function adminClient(url: string, token: string): Admin {
  return async (method, path, body) => {
    const response = await fetch(`${url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    })
    return { status: response.status, body: (await response.json().catch(() => null)) as any }
  }
}

async function verify(url: string, admin: Admin, acknowledged: Acknowledged): Promise<void> {
  // The reconciler finishes what was in flight: every acknowledged gateway reaches Started.
  for (const id of acknowledged.gateways) {
    let phase = ''
    for (let i = 0; i < 600 && phase !== 'Started'; i++) {
      phase = (await admin('GET', `/admin/gateways/${id}`)).body?.phase
      if (phase !== 'Started') await new Promise((resolve) => setTimeout(resolve, 25))
    }
    assert.equal(phase, 'Started', `gateway ${id}`)
  }
  // Every acknowledged publish is a version with exactly its source.
  const versions = (await admin('GET', '/admin/gateways/crash/functions/f/versions')).body?.versions ?? []
  const byNumber = new Map<number, { number: number }>(versions.map((version: { number: number }) => [version.number, version]))
  for (const { n, version } of acknowledged.publishes) {
    assert.ok(byNumber.has(version), `version ${version} (publish ${n}) survived`)
    const stored = await admin('GET', `/admin/gateways/crash/functions/f/versions/${version}`)
    assert.equal(stored.body.files['index.ts'], versionSource(n), `version ${version} holds publish ${n}`)
  }
  // Versions are numbered without gaps; deployments point at existing versions and agree with
  // the newest history entry of their stage; history is a strict total order.
  const numbers = [...byNumber.keys()].sort((a, b) => a - b)
  numbers.forEach((number, index) => assert.equal(number, index + 1, 'versions without gaps'))
  const detail = (await admin('GET', '/admin/gateways/crash/functions/f')).body as { latestVersion: number; deployed: Record<string, number | undefined> }
  assert.equal(detail.latestVersion, numbers.at(-1) ?? 0, 'the function record agrees with its versions')
  const history = (await admin('GET', '/admin/gateways/crash/history?function=f&limit=1000')).body.history as Array<{ seq: number; stage: string; toVersion: number | null }>
  for (let i = 1; i < history.length; i++) assert.ok(history[i - 1]!.seq > history[i]!.seq, 'history strictly ordered')
  for (const stage of ['dev', 'staging']) {
    const live: number | undefined = detail.deployed[stage]
    const newest = history.find((entry) => entry.stage === stage)
    if (live === undefined) {
      assert.ok(!newest || newest.toVersion === null, `${stage}: no deployment, no live history`)
      continue
    }
    assert.ok(byNumber.has(live), `${stage} points at an existing version`)
    assert.equal(newest?.toVersion, live, `${stage}: the newest history entry is the live version`)
    // The runtime serves exactly that version.
    const source = (await admin('GET', `/admin/gateways/crash/functions/f/versions/${live}`)).body.files['index.ts'] as string
    const expected = Number(/v: (\d+)/.exec(source)![1])
    const served = await fetch(`${url}/crash/${stage}/f`).then((response) => response.json() as Promise<{ v: number }>)
    assert.equal(served.v, expected, `${stage} serves version ${live}: ${JSON.stringify(served)}`)
  }
  const promotedCount = history.filter((entry) => entry.stage === 'staging').length
  assert.ok(promotedCount >= Math.min(acknowledged.promotions, 1), 'acknowledged promotions are in the history')
  // Grants and database rows.
  for (const id of acknowledged.grants) assert.equal((await admin('GET', `/admin/grants/${id}`)).status, 200, `grant ${id}`)
  const rows: number[] = []
  for (;;) {
    const page = (await fetch(`${url}/crash/dev/rows?skip=${rows.length}`).then((response) => response.json())) as number[]
    assert.ok(Array.isArray(page), `rows: ${JSON.stringify(page)}`)
    rows.push(...page)
    if (page.length < 1000) break
  }
  const stored = new Set(rows)
  const missing = acknowledged.rows.filter((n) => !stored.has(n))
  assert.deepEqual(missing, [], 'every acknowledged imp.db() write is there')
  assert.equal(stored.size, rows.length, 'no row written twice')
}
