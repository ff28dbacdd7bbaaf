/**
 * A closed-loop HTTP load client, run as its own process so that the server under test keeps
 * its event loop (and, on a 2-core machine, a core) to itself. Prints one JSON line:
 * {"done": n, "failed": n, "seconds": s, "latencies": {"p50": ms, "p99": ms}}.
 * Usage: node bench/load-client.ts <url> <seconds> <concurrency> [headers-json] [method] [body]
 */
import { Agent, request } from 'node:http'

const [url, secondsText, concurrencyText, headersJson, method = 'GET', body] = process.argv.slice(2)
if (!url || !secondsText || !concurrencyText) throw new Error('usage: load-client <url> <seconds> <concurrency> [headers-json] [method] [body]')
const seconds = Number(secondsText)
const concurrency = Number(concurrencyText)
const headers: Record<string, string> = { ...(headersJson ? (JSON.parse(headersJson) as Record<string, string>) : {}), ...(body ? { 'content-type': 'application/json' } : {}) }
const agent = new Agent({ keepAlive: true, maxSockets: concurrency })

function once(): Promise<number> {
  return new Promise((resolve, reject) => {
    const outgoing = request(url!, { method, agent, headers }, (response) => {
      response.resume()
      response.on('end', () => resolve(response.statusCode ?? 0))
    })
    outgoing.on('error', reject)
    outgoing.end(body)
  })
}

// Warm-up: connections open, caches filled.
await Promise.all(Array.from({ length: concurrency }, () => once()))
const latencies: number[] = []
let done = 0
let failed = 0
const end = performance.now() + seconds * 1000
await Promise.all(
  Array.from({ length: concurrency }, async () => {
    while (performance.now() < end) {
      const started = performance.now()
      const status = await once()
      latencies.push(performance.now() - started)
      if (status >= 200 && status < 300) done++
      else failed++
    }
  }),
)
latencies.sort((a, b) => a - b)
const at = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? 0
agent.destroy()
process.stdout.write(`${JSON.stringify({ done, failed, seconds, latencies: { p50: at(0.5), p99: at(0.99) } })}\n`)
