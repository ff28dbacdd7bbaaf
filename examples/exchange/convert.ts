import { z } from 'zod'

export const description =
  'Converts an amount between currencies at the latest rate from the rates service (RATES_URL), authenticating with the RATES_API_KEY secret.'

export const input = z.object({
  amount: z.coerce.number().nonnegative().describe('Amount to convert'),
  from: z.string().regex(/^[A-Z]{3}$/).describe('ISO 4217 code of the currency held, e.g. KRW'),
  to: z.string().regex(/^[A-Z]{3}$/).describe('ISO 4217 code of the currency wanted, e.g. USD'),
})

export const output = z.object({
  amount: z.number(),
  from: z.string(),
  to: z.string(),
  rate: z.number().describe('Units of `to` per unit of `from`'),
  converted: z.number(),
  asOf: z.string().describe('When the rate was published'),
})

const ratesSchema = z.object({ base: z.string(), date: z.string(), rates: z.record(z.string(), z.number().positive()) })

interface Context {
  input: z.infer<typeof input>
  env: Record<string, string | undefined>
  fail(status: number, message: string): never
  log: { info(...values: unknown[]): void; warn(...values: unknown[]): void }
}

export default async function (ctx: Context) {
  const { amount, from, to } = ctx.input
  const base = ctx.env.RATES_URL
  if (!base) return ctx.fail(500, 'RATES_URL is not set on this environment')
  const url = `${base.replace(/\/+$/, '')}/latest?base=${from}`
  const response = await fetch(url, { headers: { authorization: `Bearer ${ctx.env.RATES_API_KEY ?? ''}`, accept: 'application/json' } })
  if (response.status === 404) return ctx.fail(400, `unknown currency ${from}`)
  if (!response.ok) {
    ctx.log.warn(`rates service answered ${response.status}`)
    return ctx.fail(502, `the rates service answered ${response.status}`)
  }
  const parsed = ratesSchema.safeParse(await response.json())
  if (!parsed.success) return ctx.fail(502, 'the rates service sent an unexpected answer')
  const rate = parsed.data.rates[to]
  if (rate === undefined) return ctx.fail(400, `no rate from ${from} to ${to}`)
  ctx.log.info(`${from}→${to} at ${rate} (${parsed.data.date})`)
  return { amount, from, to, rate, converted: Math.round(amount * rate * 100) / 100, asOf: parsed.data.date }
}
