/** Small HTTP helpers for tests that drive a running platform over loopback. */
export interface HttpResult {
  status: number
  // Tests read arbitrary response fields; the assertions check them.
  body: any
  headers: Headers
}

export function platformClient(url: () => string, token: string) {
  async function call(path: string, init: RequestInit = {}): Promise<HttpResult> {
    const response = await fetch(`${url()}${path}`, init)
    const text = await response.text()
    let body: unknown = text
    try {
      body = text ? JSON.parse(text) : null
    } catch {}
    return { status: response.status, body, headers: response.headers }
  }
  function admin(method: string, path: string, body?: unknown): Promise<HttpResult> {
    return call(path, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    })
  }
  async function waitForPhase(gatewayId: string, phase: string): Promise<void> {
    await until(() => admin('GET', `/admin/gateways/${gatewayId}`), (response) => response.body?.phase === phase, `${gatewayId} ${phase}`)
  }
  return { call, admin, waitForPhase }
}

export function jsonRequest(method: string, body: unknown, headers: Record<string, string> = {}): RequestInit {
  return { method, headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) }
}

export async function until<T>(probe: () => Promise<T>, ok: (value: T) => boolean, what: string, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await probe()
    if (ok(value)) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}
