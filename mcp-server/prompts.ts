/**
 * Prompts that teach an agent the platform's conventions: how to write a good function and how
 * to take an API from nothing to a key in a consumer's hands. Their text is the same guidance a
 * human reads in the README, written for a model that will call the management tools next.
 */
import { ErrorCode, McpError, type GetPromptResult, type Prompt } from '@modelcontextprotocol/sdk/types.js'
import { z } from 'zod'

export const prompts: Prompt[] = [
  {
    name: 'write_function',
    title: 'Write an imprun function',
    description: 'Guidance for writing, test-running and publishing one function: file shape, zod input with descriptions, ctx.imp.db, errors, the publishing flow.',
    arguments: [
      { name: 'purpose', description: 'What the function should do, e.g. "income tax for a year"', required: true },
      { name: 'name', description: 'Function name (path-like, e.g. calculateTax or user/me)', required: false },
      { name: 'gateway', description: 'Gateway to write it in', required: false },
    ],
  },
  {
    name: 'build_api',
    title: 'Build an API end to end',
    description: 'A plan for a whole API: gateway, functions, promotion to prod, protection, and a key for a consumer application.',
    arguments: [
      { name: 'gateway', description: 'Gateway id to create or use (DNS label, e.g. hometax)', required: true },
      { name: 'goal', description: 'What the API is for and which operations it needs', required: true },
    ],
  },
]

const writeFunctionArguments = z.object({ purpose: z.string().min(1), name: z.string().optional(), gateway: z.string().optional() })
const buildApiArguments = z.object({ gateway: z.string().min(1), goal: z.string().min(1) })

const functionGuide = `## Shape of a function (index.ts)

\`\`\`ts
import { z } from 'zod'

export const description = 'One sentence an agent reads to decide when to call this tool'

// Arguments: always a z.object. Describe every field: the descriptions become the tool's
// JSON Schema, which is all an LLM caller sees. Constrain (nonnegative, int, enum, max …).
export const input = z.object({
  income: z.number().nonnegative().describe('Gross income for the year'),
  deductions: z.number().nonnegative().describe('Total deductions for the year'),
})

// Optional: declare the result. It is checked, and becomes the tool's outputSchema.
export const output = z.object({ tax: z.number().describe('Tax due') })

export default async function (ctx: { input: z.infer<typeof input> } & Record<string, any>) {
  const { income, deductions } = ctx.input                 // already validated against input
  await ctx.imp.db().collection('calcs').insertOne({ income, deductions, at: new Date().toISOString() })
  ctx.log.info('computed tax for', income)                 // shows up in logs_list
  return { tax: Math.max(0, income - deductions) * 0.22 }  // JSON response, MCP structured result
}
\`\`\`

- \`ctx.input\`: the validated input. Invalid input never reaches your code: HTTP 400 / MCP invalid params.
- \`ctx.imp.db().collection(name)\`: this gateway's own document database (insertOne, insertMany, find, findOne, updateOne, deleteOne, countDocuments with MongoDB filters). No other tenant's data is reachable.
- \`ctx.env.NAME\`: environment variables and secrets of the environment (set with variable_set); never hard-code keys.
- \`ctx.fetch(url, init)\` / \`ctx.imp.fetch\`: outbound HTTP to public addresses only.
- \`ctx.imp.invoke(name, input)\`: call another function of the same environment.
- \`ctx.log.info|warn|error|debug(...)\`: log lines, kept with the invocation (an MCP caller sees them as they are written).
- \`ctx.progress(done, total?, message?)\`: progress of long work, sent to an MCP caller as progress notifications.
- Errors: \`ctx.fail(404, 'no such user')\` (or throw an Error with a numeric \`status\`) gives that 4xx/5xx over HTTP and an isError tool result over MCP; any other throw is a 500 with its message. Never let an expected case throw a 500.
- \`ctx.setStatus(201)\`, \`ctx.setHeader(name, value)\`, \`ctx.request\` (method, path, query, headers, body) for HTTP-specific behaviour.
- To answer an MCP caller with images, audio or resources, a function without an \`output\` schema may return exactly \`{ content: [ …MCP content blocks… ] }\`.
- Keep it one concern per function; split shared code into extra files (\`files\` of function_write) or other functions.

## Flow with the management tools

1. function_write (source) → 2. function_test with a realistic input, then an invalid one; read outcome and logs; fix and repeat →
3. function_publish (goes to dev) → function_call on dev, logs_list to see its log line →
4. function_promote dev → staging → prod (the pipeline enforces the order) → function_diff from "prod" to "draft" before the next change;
function_rollback if a release misbehaves.`

export function getPrompt(name: string, args: Record<string, string> | undefined): GetPromptResult {
  if (name === 'write_function') {
    const parsed = writeFunctionArguments.safeParse(args ?? {})
    if (!parsed.success) throw new McpError(ErrorCode.InvalidParams, `invalid arguments for prompt write_function: ${parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).join('; ')}`)
    const { purpose, name: functionName, gateway } = parsed.data
    const target = [functionName ? `named \`${functionName}\`` : 'with a short camelCase or path-like name', gateway ? `in gateway \`${gateway}\`` : ''].filter(Boolean).join(' ')
    return {
      description: `Write a function: ${purpose}`,
      messages: [
        {
          role: 'user',
          content: {
            type: 'text',
            text: `Write an imprun function ${target} that does this: ${purpose}\n\nFollow these conventions, then test-run it before publishing.\n\n${functionGuide}`,
          },
        },
      ],
    }
  }
  if (name === 'build_api') {
    const parsed = buildApiArguments.safeParse(args ?? {})
    if (!parsed.success) throw new McpError(ErrorCode.InvalidParams, `invalid arguments for prompt build_api: ${parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).join('; ')}`)
    const { gateway, goal } = parsed.data
    return {
      description: `Build the ${gateway} API`,
      messages: [
        {
          role: 'user',
          content: {
            type: 'text',
            text: [
              `Build an API on imprun in gateway \`${gateway}\`: ${goal}`,
              '',
              'Plan:',
              `1. gateway_get ${gateway}; if it does not exist, gateway_create it. gateway_wait until phase Started.`,
              '2. Decide the functions (one operation each). For each: function_write, function_test (valid and invalid input), function_publish.',
              '3. Check each on dev with function_call and logs_list; then function_promote dev → staging → prod.',
              '4. Protect prod: it requires grant keys by default (key-auth); add a rate limit with environment_set_plugins if callers are untrusted, e.g. {"limit-count": {"count": 100, "time_window": 60}} (merged: key-auth stays).',
              '5. application_create for each consumer and grant_create for prod: report the apiKey once, it cannot be read again.',
              `6. Tell the user the endpoints: HTTP POST /${gateway}/prod/{function} with Authorization: Bearer <key>, and the MCP endpoint /mcp/${gateway}/prod with the same key.`,
              '',
              functionGuide,
            ].join('\n'),
          },
        },
      ],
    }
  }
  throw new McpError(ErrorCode.InvalidParams, `unknown prompt '${name}'`)
}

/** Gateway-id arguments complete like the resource templates' {gateway}. */
export const promptArgumentsCompletedAsGateway = new Set(['gateway'])
