import { z } from 'zod'

export const description = 'Income tax for a year: 22% of income after deductions'

export const input = z.object({
  income: z.number().nonnegative().describe('Gross income for the year'),
  deductions: z.number().nonnegative().describe('Total deductions for the year'),
})

export const output = z.object({ tax: z.number().describe('Tax due') })

export default async function (ctx: { input: z.infer<typeof input> }) {
  const { income, deductions } = ctx.input
  return { tax: Math.max(0, income - deductions) * 0.22 }
}
