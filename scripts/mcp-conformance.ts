/**
 * Runs the MCP conformance suite (@modelcontextprotocol/conformance) and the Inspector CLI
 * against a real `imprun start` on a temp data directory and a free port. Exits non-zero when a
 * scenario fails.
 *
 * - Management endpoint /mcp: the protocol scenarios (initialize, ping, logging, completion,
 *   tools/resources/prompts listing, concurrent streams, DNS rebinding).
 * - Function endpoint /mcp/conformance/dev: the tools-call scenarios, against a gateway whose
 *   functions are the suite's fixture tools written as ordinary imprun functions (image, audio
 *   and resources through the `{ content: [...] }` return convention).
 *
 * The suite's client sends no credentials, so each endpoint is reached through a local proxy
 * that adds the admin token or the grant key and forwards everything else (Host and Origin
 * included, for the DNS-rebinding scenario) untouched.
 *
 * Not run, because nothing in imprun can satisfy them: sampling and elicitation scenarios (a
 * function cannot send requests to the client), the resources-* / prompts-get-* scenarios (they
 * need the reference server's fixture resources and prompts, test://static-text …), and
 * server-sse-polling (needs resumable streams with an event store).
 *
 * Usage: node scripts/mcp-conformance.ts [--verbose]
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer, request as httpRequest, type Server } from 'node:http'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const verbose = process.argv.includes('--verbose')
const conformanceBin = join(root, 'node_modules', '@modelcontextprotocol', 'conformance', 'dist', 'index.js')
const inspectorBin = join(root, 'node_modules', '@modelcontextprotocol', 'inspector-cli', 'build', 'index.js')

const managementScenarios = [
  'server-initialize',
  'ping',
  'logging-set-level',
  'completion-complete',
  'tools-list',
  'resources-list',
  'prompts-list',
  'server-sse-multiple-streams',
  'dns-rebinding-protection',
]
const functionScenarios = [
  'server-initialize',
  'tools-list',
  'tools-call-simple-text',
  'tools-call-image',
  'tools-call-audio',
  'tools-call-embedded-resource',
  'tools-call-mixed-content',
  'tools-call-with-logging',
  'tools-call-error',
  'tools-call-with-progress',
  'json-schema-2020-12',
  'dns-rebinding-protection',
]

// A 1×1 red PNG and a 1-sample WAV.
const png = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=='
const wav = 'UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAEAfAAABAAgAZGF0YQIAAACAgA=='

const fixtures: Record<string, string> = {
  test_simple_text: `export const description = 'Returns simple text'
export default async function () { return 'This is a simple text response for testing.' }`,
  test_image_content: `export const description = 'Returns an image'
export default async function () { return { content: [{ type: 'image', data: '${png}', mimeType: 'image/png' }] } }`,
  test_audio_content: `export const description = 'Returns audio'
export default async function () { return { content: [{ type: 'audio', data: '${wav}', mimeType: 'audio/wav' }] } }`,
  test_embedded_resource: `export const description = 'Returns an embedded resource'
export default async function () {
  return { content: [{ type: 'resource', resource: { uri: 'test://embedded-resource', mimeType: 'text/plain', text: 'This is an embedded resource content.' } }] }
}`,
  test_multiple_content_types: `export const description = 'Returns text, an image and a resource'
export default async function () {
  return { content: [
    { type: 'text', text: 'Multiple content types test:' },
    { type: 'image', data: '${png}', mimeType: 'image/png' },
    { type: 'resource', resource: { uri: 'test://mixed-content-resource', mimeType: 'application/json', text: JSON.stringify({ test: 'data', value: 123 }) } },
  ] }
}`,
  test_tool_with_logging: `export const description = 'Logs three lines while it runs'
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
export default async function (ctx) {
  ctx.log.info('Tool execution started')
  await sleep(50)
  ctx.log.info('Tool processing data')
  await sleep(50)
  ctx.log.info('Tool execution completed')
  return 'Tool with logging executed successfully'
}`,
  test_error_handling: `export const description = 'Always fails'
export default async function () { throw new Error('This tool intentionally returns an error for testing') }`,
  test_tool_with_progress: `export const description = 'Takes about 100 ms (progress comes from the platform while it runs)'
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
export default async function () { await sleep(60); await sleep(60); return 'Progress tool executed successfully' }`,
  json_schema_2020_12_tool: `import { z } from 'zod'
export const description = 'Tool with a JSON Schema 2020-12 input ($defs, additionalProperties)'
const address = z.object({ street: z.string(), city: z.string() }).meta({ id: 'address' })
export const input = z.object({ name: z.string().describe('Name'), address: address.describe('Postal address') }).strict()
export default async function (ctx) { return 'Received ' + ctx.input.name }`,
}

interface Running {
  child: ChildProcess
  url: string
  dataDirectory: string
}

async function startImprun(dataDirectory: string): Promise<Running> {
  const child = spawn(process.execPath, [join(root, 'bin', 'imprun.ts'), 'start', '--data-dir', dataDirectory, '--port', '0'], {
    cwd: dataDirectory,
    env: { ...process.env, IMPRUN_URL: '', IMPRUN_TOKEN: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  const deadline = Date.now() + 60_000
  for (;;) {
    const url = /imprun is running at (\S+)/.exec(stdout)?.[1]
    if (url && stdout.includes('Press Ctrl-C to stop.')) return { child, url, dataDirectory }
    if (child.exitCode !== null) throw new Error(`imprun start exited:\n${stdout}\n${stderr}`)
    if (Date.now() > deadline) throw new Error(`imprun start did not come up:\n${stdout}\n${stderr}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/** A loopback proxy to `target` that adds a credential and forwards everything else as is. */
async function credentialProxy(target: string, credential: string): Promise<{ server: Server; port: number }> {
  const upstream = new URL(target)
  const server = createServer((incoming, outgoing) => {
    const forwarded = httpRequest(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: incoming.method,
        path: incoming.url,
        headers: { ...incoming.headers, authorization: `Bearer ${credential}` },
      },
      (response) => {
        outgoing.writeHead(response.statusCode ?? 502, response.headers)
        response.pipe(outgoing)
      },
    )
    forwarded.on('error', () => {
      if (!outgoing.headersSent) outgoing.writeHead(502)
      outgoing.end()
    })
    incoming.pipe(forwarded)
    outgoing.on('close', () => forwarded.destroy())
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  return { server, port: typeof address === 'object' && address ? address.port : 0 }
}

async function admin(url: string, token: string, method: string, path: string, body?: unknown): Promise<any> {
  const response = await fetch(`${url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  const text = await response.text()
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`)
  return text ? JSON.parse(text) : null
}

function run(command: string, args: string[], cwd = root, timeoutMs = 60_000): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd, env: process.env })
    let output = ''
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()))
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()))
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code: code ?? 1, output })
    })
  })
}

async function main(): Promise<number> {
  const dataDirectory = await mkdtemp(join(tmpdir(), 'imprun-mcp-conformance-'))
  let imprun: Running | null = null
  const proxies: Server[] = []
  try {
    imprun = await startImprun(dataDirectory)
    const token = readFileSync(join(dataDirectory, 'admin-token'), 'utf8').trim()
    const { url } = imprun
    console.log(`imprun at ${url}`)

    await admin(url, token, 'POST', '/admin/gateways', { id: 'conformance', description: 'MCP conformance fixtures' })
    for (let attempt = 0; (await admin(url, token, 'GET', '/admin/gateways/conformance')).phase !== 'Started'; attempt++) {
      if (attempt > 300) throw new Error('gateway conformance did not start')
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    for (const [name, source] of Object.entries(fixtures)) {
      await admin(url, token, 'PUT', `/admin/gateways/conformance/functions/${name}`, { source })
      await admin(url, token, 'POST', `/admin/gateways/conformance/functions/${name}/publish`, {})
    }
    await admin(url, token, 'POST', '/admin/applications', { name: 'conformance' })
    const { apiKey } = await admin(url, token, 'POST', '/admin/grants', { application: 'conformance', gateway: 'conformance', stage: 'dev' })

    const management = await credentialProxy(url, token)
    const functions = await credentialProxy(url, apiKey)
    proxies.push(management.server, functions.server)
    const targets = [
      { label: 'management /mcp', url: `http://localhost:${management.port}/mcp`, scenarios: managementScenarios },
      { label: 'functions /mcp/conformance/dev', url: `http://localhost:${functions.port}/mcp/conformance/dev`, scenarios: functionScenarios },
    ]

    const failures: string[] = []
    for (const target of targets) {
      for (const scenario of target.scenarios) {
        const result = await run(process.execPath, [conformanceBin, 'server', '--url', target.url, '--scenario', scenario])
        const passed = result.code === 0
        console.log(`${passed ? 'PASS' : 'FAIL'}  ${target.label}  ${scenario}`)
        if (!passed || verbose) console.log(indent(result.output))
        if (!passed) failures.push(`${target.label} ${scenario}`)
      }
    }

    // The Inspector CLI, straight at the endpoints with their credentials.
    const inspect = async (label: string, args: string[], expect: RegExp) => {
      // inspector-cli 1.0.3 finds its package.json relative to the working directory.
      const result = await run(process.execPath, [inspectorBin, ...args], dirname(inspectorBin))
      const passed = result.code === 0 && expect.test(result.output)
      console.log(`${passed ? 'PASS' : 'FAIL'}  inspector  ${label}`)
      if (!passed || verbose) console.log(indent(result.output))
      if (!passed) failures.push(`inspector ${label}`)
    }
    await inspect('tools/list (management)', [`${url}/mcp`, '--transport', 'http', '--header', `Authorization: Bearer ${token}`, '--method', 'tools/list'], /"function_publish"/)
    await inspect('tools/list (functions)', [`${url}/mcp/conformance/dev`, '--transport', 'http', '--header', `Authorization: Bearer ${apiKey}`, '--method', 'tools/list'], /"test_simple_text"/)
    await inspect(
      'tools/call test_simple_text',
      [`${url}/mcp/conformance/dev`, '--transport', 'http', '--header', `Authorization: Bearer ${apiKey}`, '--method', 'tools/call', '--tool-name', 'test_simple_text'],
      /This is a simple text response for testing\./,
    )
    await inspect(
      'tools/call gateway_get',
      [`${url}/mcp`, '--transport', 'http', '--header', `Authorization: Bearer ${token}`, '--method', 'tools/call', '--tool-name', 'gateway_get', '--tool-arg', 'gateway=conformance'],
      /"phase": ?"Started"/,
    )
    await inspect('resources/templates/list', [`${url}/mcp`, '--transport', 'http', '--header', `Authorization: Bearer ${token}`, '--method', 'resources/templates/list'], /functions\/\{name\}\/source/)
    await inspect('prompts/list (over SSE)', [`${url}/mcp/sse`, '--transport', 'sse', '--header', `Authorization: Bearer ${token}`, '--method', 'prompts/list'], /"write_function"/)

    console.log(failures.length === 0 ? '\nall conformance checks passed' : `\n${failures.length} failed:\n${failures.map((failure) => `  ${failure}`).join('\n')}`)
    return failures.length === 0 ? 0 : 1
  } finally {
    for (const proxy of proxies) proxy.close()
    if (imprun) {
      imprun.child.kill('SIGTERM')
      await new Promise((resolve) => imprun!.child.once('close', resolve))
    }
    await rm(dataDirectory, { recursive: true, force: true })
  }
}

function indent(text: string): string {
  return text
    .trimEnd()
    .split('\n')
    .map((line) => `    ${line}`)
    .join('\n')
}

process.exitCode = await main()
