/**
 * Grades a scenario by the platform's end state: admin REST reads and data-plane calls, checked
 * in order; the first failing check fails the scenario. Answers are retried for up to a second
 * (phases move and the runtime picks up changes asynchronously), except repeated calls.
 */
import type { Check, HttpCall } from './scenario.ts'
import { httpRequest, type AdminClient, type HttpAnswer } from './harness.ts'
import { mismatch, resolveValue, type References } from './values.ts'

export interface GradeResult {
  pass: boolean
  checks: number
  passed: number
  /** The first failing check and why. */
  failure?: { index: number; check: Check; reason: string }
}

const graderApplication = 'eval-grader'
const settleMs = 1000

export async function grade(admin: AdminClient, checks: Check[], references: References): Promise<GradeResult> {
  const keys = new Map<string, string>()
  let passed = 0
  for (const [index, raw] of checks.entries()) {
    let reason: string | null
    try {
      const check = resolveValue(raw, references) as Check
      reason = 'get' in check ? await checkGet(admin, check) : await checkCall(admin, check, keys, references)
    } catch (error) {
      reason = error instanceof Error ? error.message : String(error)
    }
    if (reason !== null) return { pass: false, checks: checks.length, passed, failure: { index, check: raw, reason } }
    passed++
  }
  return { pass: true, checks: checks.length, passed }
}

async function checkGet(admin: AdminClient, check: Extract<Check, { get: string }>): Promise<string | null> {
  // Phases move asynchronously (a deletion the agent did not wait for): allow them to settle.
  const deadline = Date.now() + settleMs
  for (;;) {
    const answer = await admin.request('GET', check.get)
    const problem =
      answer.status !== check.expectStatus
        ? `status ${answer.status}, expected ${check.expectStatus} (${JSON.stringify(answer.body)})`
        : check.expect === undefined
          ? null
          : mismatch(answer.body, check.expect)
    if (problem === null) return null
    if (Date.now() >= deadline) return `GET ${check.get}: ${problem}`
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

async function checkCall(admin: AdminClient, check: Extract<Check, { call: HttpCall }>, keys: Map<string, string>, references: References): Promise<string | null> {
  const headers: Record<string, string> = { ...check.call.headers }
  if (check.auth) headers.apikey = await graderKey(admin, check.auth.grant.gateway, check.auth.grant.stage, keys)
  const label = `${check.call.method} ${check.call.path}`
  const send = async (): Promise<HttpAnswer> => {
    let answer: HttpAnswer | undefined
    for (let count = 0; count < check.repeat; count++) answer = await httpRequest(`${admin.url}${check.call.path}`, check.call.method, check.call.body, headers)
    return answer!
  }
  const judge = (answer: HttpAnswer): string | null => {
    if (answer.status !== check.expectStatus) return `${label}: status ${answer.status}, expected ${check.expectStatus} (${JSON.stringify(answer.body)})`
    const problem = check.expectBody === undefined ? null : mismatch(answer.body, check.expectBody)
    return problem && `${label}: ${problem}`
  }
  // Repeated calls count against rate limits: those are judged once, not retried.
  const deadline = Date.now() + (check.repeat === 1 ? settleMs : 0)
  for (;;) {
    const answer = await send()
    const problem = judge(answer)
    if (problem === null) {
      if (check.save) references.checks[check.save] = answer.body
      return null
    }
    if (Date.now() >= deadline) return problem
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/** A key of the grader's own application for one environment, made on first use. */
async function graderKey(admin: AdminClient, gateway: string, stage: string, keys: Map<string, string>): Promise<string> {
  const cacheKey = `${gateway}/${stage}`
  const known = keys.get(cacheKey)
  if (known) return known
  const application = await admin.request('POST', '/admin/applications', { name: graderApplication })
  if (application.status !== 201 && application.status !== 409) throw new Error(`grader application: ${application.status} ${JSON.stringify(application.body)}`)
  const grant = await admin.request('POST', '/admin/grants', { application: graderApplication, gateway, stage })
  const apiKey = (grant.body as { apiKey?: unknown } | undefined)?.apiKey
  if (grant.status !== 201 || typeof apiKey !== 'string') throw new Error(`grader grant on ${gateway}/${stage}: ${grant.status} ${JSON.stringify(grant.body)}`)
  keys.set(cacheKey, apiKey)
  return apiKey
}
