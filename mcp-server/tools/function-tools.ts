/**
 * Functions and their deployments: write a draft, read, list, test-run the draft, publish,
 * promote, roll back, undeploy, delete, versions, history, diff, plugins, and calling a live
 * function as the administrator.
 */
import { z } from 'zod'
import { ImprunError } from '../../control/errors.ts'
import type { SourceFiles, Stage } from '../../control/ports.ts'
import type { DeploymentChange } from '../../control/domain/functions.ts'
import type { FunctionCatalog } from '../../runtime/function-catalog.ts'
import type { McpServices } from '../mcp-services.ts'
import { defineTool, effects, type AnyToolDefinition } from '../tool-definition.ts'
import { unifiedDiff } from '../unified-diff.ts'
import {
  deploymentChangeOutput,
  functionArgument,
  functionDetailOutput,
  functionSummaryOutput,
  gatewayArgument,
  historyEntryOutput,
  invocationOutput,
  metadataOutput,
  pluginChangeArguments,
  pluginSetOf,
  pluginsArgument,
  stageArgument,
  versionSummaryOutput,
} from './schemas.ts'

const functionTarget = { gateway: gatewayArgument, name: functionArgument }

const revisionArgument = z
  .union([z.number().int().positive(), z.enum(['draft', 'dev', 'staging', 'prod'])])
  .describe('A version number, "draft" for the current draft, or a stage (dev, staging, prod) for the version live there')

export function functionTools(services: McpServices): AnyToolDefinition[] {
  const { functions } = services.control
  const { catalog } = services

  const filesOf = async (gateway: string, name: string, revision: number | 'draft' | Stage): Promise<{ label: string; files: SourceFiles }> => {
    if (typeof revision === 'number') return { label: `v${revision}`, files: (await functions.version(gateway, name, revision)).files }
    const detail = await functions.get(gateway, name)
    if (revision === 'draft') return { label: 'draft', files: detail.files }
    const number = detail.deployed[revision]
    if (number === undefined) throw new ImprunError('invalid_state', `function '${name}' is not deployed on ${revision}`, { details: { stage: revision } })
    return { label: `v${number}`, files: (await functions.version(gateway, name, number)).files }
  }

  return [
    defineTool({
      name: 'function_write',
      title: 'Write function draft',
      description: [
        'Create or replace the draft of a function. Nothing is served until function_publish.',
        'Shape of index.ts: `import { z } from \'zod\'; export const description = \'…\'; export const input = z.object({ … .describe(\'…\') }); export const output = z.object({ … }) /* optional */; export default async function (ctx) { return { … } }`.',
        'ctx.input is validated against `input`; ctx.imp.db().collection(name) is the gateway\'s own document database (insertOne, find, updateOne …); ctx.env holds environment variables; ctx.log.info(…) writes log lines; throw or ctx.fail(status, message) for a 4xx/5xx.',
        'Give `source` for a one-file function, or `files` (index.ts is the entry) for several.',
      ].join(' '),
      input: z
        .object({
          ...functionTarget,
          source: z.string().optional().describe('TypeScript source of index.ts (shorthand for files)'),
          files: z.record(z.string(), z.string()).optional().describe('Source files by relative path; index.ts is the entry'),
          plugins: pluginsArgument.optional().describe('Function-level APISIX plugin confs (replace the existing ones)'),
        })
        .strict()
        .refine((input) => (input.source === undefined) !== (input.files === undefined), { message: 'give exactly one of source or files' }),
      output: functionDetailOutput,
      annotations: effects.idempotentWrite,
      handler: (input) => functions.write(input.gateway, input.name, { files: input.files ?? { 'index.ts': input.source! }, plugins: input.plugins }),
    }),
    defineTool({
      name: 'function_get',
      title: 'Read function',
      description: 'Read a function: its draft source files, plugins, latest version, the version deployed on each stage, and whether the draft changed since the latest version.',
      input: z.object(functionTarget).strict(),
      output: functionDetailOutput,
      annotations: effects.read,
      handler: (input) => functions.get(input.gateway, input.name),
    }),
    defineTool({
      name: 'function_list',
      title: 'List functions',
      description: 'List the functions of a gateway (drafts and published) with their latest version and the version deployed on each stage.',
      input: z.object({ gateway: gatewayArgument }).strict(),
      output: z.object({ functions: z.array(functionSummaryOutput) }),
      annotations: effects.read,
      handler: async (input) => ({ functions: await functions.list(input.gateway) }),
    }),
    defineTool({
      name: 'function_test',
      title: 'Test-run draft',
      description:
        'Compile the current draft and run it once with an input, without publishing anything: returns the outcome (ok with the value, or the error the function produced, e.g. invalid_input), its log lines and the metadata publishing would store. Compile errors fail with compile_failed and diagnostics. Sends progress notifications.',
      input: z
        .object({
          ...functionTarget,
          input: z.record(z.string(), z.unknown()).optional().describe('Input object for the function, validated against its `input` schema (default {})'),
          stage: stageArgument.optional().describe('Whose environment variables the run sees (default dev)'),
        })
        .strict(),
      output: invocationOutput.extend({ metadata: metadataOutput }),
      annotations: effects.runsCode,
      handler: async (input, context) => {
        context.progress.report(0, 2, 'compiling the draft')
        const compiled = await functions.compileDraft(input.gateway, input.name)
        context.progress.report(1, 2, 'running')
        const run = catalog.runDraft({
          gatewayId: input.gateway,
          stage: input.stage ?? 'dev',
          name: input.name,
          code: compiled.code,
          input: input.input ?? {},
          signal: context.signal,
          observer: context.observe(input.name),
        })
        const result = await context.progress.during(run, 'running')
        context.progress.report(2, 2, 'done')
        return { ...result, durationMs: round(result.durationMs), metadata: compiled.metadata }
      },
    }),
    defineTool({
      name: 'function_publish',
      title: 'Publish function',
      description:
        'Compile the draft, store it as a new immutable version (identical source reuses the latest version) and deploy it to a stage, dev by default; returns once the runtime serves the new version (milliseconds). With the gateway\'s pipeline on, only dev can be published to: reach staging and prod with function_promote. Compile errors fail with compile_failed and change nothing. Sends progress notifications.',
      input: z
        .object({
          ...functionTarget,
          stage: stageArgument.optional().describe('Stage to publish to (default dev)'),
          message: z.string().max(500).optional().describe('Release note stored with a new version'),
        })
        .strict(),
      output: deploymentChangeOutput.extend({ version: versionSummaryOutput, created: z.boolean().describe('Whether a new version was created') }),
      annotations: effects.idempotentWrite,
      handler: async (input, context) => {
        context.progress.report(0, 1, 'compiling and deploying')
        const published = await context.progress.during(functions.publish(input.gateway, input.name, { stage: input.stage, message: input.message }), 'publishing')
        await untilLive(catalog, published, input.gateway, context.signal)
        context.progress.report(1, 1, `v${published.version.number} live on ${published.stage}`)
        return published
      },
    }),
    defineTool({
      name: 'function_promote',
      title: 'Promote function',
      description:
        'Deploy exactly the version live on one stage to the next (dev → staging → prod). Without the pipeline, `to` may name any stage. A stage already running that version is left as is (changed: false).',
      input: z
        .object({
          ...functionTarget,
          from: stageArgument.describe('Stage whose live version to promote'),
          to: stageArgument.optional().describe('Target stage (default: the next one)'),
        })
        .strict(),
      output: deploymentChangeOutput,
      annotations: effects.idempotentWrite,
      handler: async (input, context) => {
        const change = await functions.promote(input.gateway, input.name, { from: input.from, to: input.to })
        await untilLive(catalog, change, input.gateway, context.signal)
        return change
      },
    }),
    defineTool({
      name: 'function_rollback',
      title: 'Roll back function',
      description:
        'Point a stage at another existing version: the given one, or by default the version that was live there before the current one. Recorded in the deployment history like any deployment; roll forward by naming the newer version.',
      input: z
        .object({
          ...functionTarget,
          stage: stageArgument.describe('Stage to roll back'),
          version: z.number().int().positive().optional().describe('Version to go to (default: the one live before the current)'),
        })
        .strict(),
      output: deploymentChangeOutput,
      annotations: { ...effects.destructive, idempotentHint: false },
      handler: async (input, context) => {
        const change = await functions.rollback(input.gateway, input.name, { stage: input.stage, version: input.version })
        await untilLive(catalog, change, input.gateway, context.signal)
        return change
      },
    }),
    defineTool({
      name: 'function_undeploy',
      title: 'Undeploy function',
      description: 'Stop serving a function on one stage (its route and tool disappear there). Versions and the draft are kept.',
      input: z.object({ ...functionTarget, stage: stageArgument.describe('Stage to stop serving it on') }).strict(),
      output: deploymentChangeOutput,
      annotations: effects.destructive,
      handler: async (input, context) => {
        const change = await functions.undeploy(input.gateway, input.name, input.stage)
        await untilLive(catalog, change, input.gateway, context.signal)
        return change
      },
    }),
    defineTool({
      name: 'function_delete',
      title: 'Delete function',
      description: 'Delete a function with its draft, all versions and all deployments (recorded as undeploys). Irreversible.',
      input: z.object(functionTarget).strict(),
      output: z.object({ undeployed: z.array(deploymentChangeOutput) }),
      annotations: effects.destructive,
      handler: async (input) => ({ undeployed: await functions.delete(input.gateway, input.name) }),
    }),
    defineTool({
      name: 'function_set_plugins',
      title: 'Set function plugins',
      description:
        'Change the plugins of one function (on every stage it is deployed to); they override environment and gateway plugins of the same name. Merges: each named plugin\'s conf is replaced, null removes it, others are kept; replace: true sets the whole set instead.',
      input: z.object({ ...functionTarget, ...pluginChangeArguments }).strict(),
      output: functionDetailOutput,
      annotations: effects.destructive,
      handler: (input) =>
        input.replace === true
          ? functions.setPlugins(input.gateway, input.name, pluginSetOf(input.plugins))
          : functions.patchPlugins(input.gateway, input.name, input.plugins),
    }),
    defineTool({
      name: 'function_versions',
      title: 'List function versions',
      description: 'List the immutable versions of a function, newest first, with release notes and descriptions.',
      input: z.object(functionTarget).strict(),
      output: z.object({ versions: z.array(versionSummaryOutput) }),
      annotations: effects.read,
      handler: async (input) => ({ versions: await functions.versions(input.gateway, input.name) }),
    }),
    defineTool({
      name: 'function_history',
      title: 'Deployment history',
      description: 'Deployment history of a gateway, newest first: every publish, promote, rollback and undeploy with the versions before and after. Filter by function and stage.',
      input: z
        .object({
          gateway: gatewayArgument,
          function: functionArgument.optional().describe('Only this function'),
          stage: stageArgument.optional().describe('Only this stage'),
          limit: z.number().int().min(1).max(1000).optional().describe('At most this many entries (default 100)'),
        })
        .strict(),
      output: z.object({ history: z.array(historyEntryOutput) }),
      annotations: effects.read,
      handler: async ({ gateway, ...query }) => ({ history: await functions.history(gateway, query) }),
    }),
    defineTool({
      name: 'function_diff',
      title: 'Diff function versions',
      description:
        'Unified text diff (diff -u) of the source files of two revisions of a function. A revision is a version number, "draft", or a stage for the version live there; e.g. from "prod" to "draft" shows what publishing and promoting would change.',
      input: z
        .object({
          ...functionTarget,
          from: revisionArgument.describe('Older side: version number, "draft", or stage (dev, staging, prod)'),
          to: revisionArgument.optional().describe('Newer side (default "draft")'),
        })
        .strict(),
      output: z.object({
        from: z.string().describe('Label of the older side, e.g. v3'),
        to: z.string().describe('Label of the newer side'),
        identical: z.boolean(),
        diff: z.string().describe('Unified diff; empty when identical'),
      }),
      annotations: effects.read,
      handler: async (input) => {
        const before = await filesOf(input.gateway, input.name, input.from)
        const after = await filesOf(input.gateway, input.name, input.to ?? 'draft')
        const diff = unifiedDiff(before.files, after.files, { before: before.label, after: after.label })
        return { from: before.label, to: after.label, identical: diff === '', diff }
      },
    }),
    defineTool({
      name: 'function_call',
      title: 'Call live function',
      description:
        'Call a function live on an environment as the administrator (no grant key needed), through the same sandbox, limits and invocation log as HTTP and MCP callers. Returns the outcome (ok with the value, or the error the function produced) and its log lines. Sends progress notifications while it runs.',
      input: z
        .object({
          ...functionTarget,
          stage: stageArgument.describe('Environment whose live version to call'),
          input: z.record(z.string(), z.unknown()).optional().describe('Input object, validated against the function\'s `input` schema (default {})'),
        })
        .strict(),
      output: invocationOutput,
      annotations: effects.runsCode,
      handler: async (input, context) => {
        const call = catalog.call({ gatewayId: input.gateway, stage: input.stage, name: input.name, input: input.input ?? {}, source: 'mcp', consumer: null, signal: context.signal, observer: context.observe(input.name) })
        const result = await context.progress.during(call, `calling ${input.name}`)
        return { ...result, durationMs: round(result.durationMs) }
      },
    }),
  ]
}

/**
 * Waits (briefly) until the runtime serves what a deployment change asked for, so that an agent
 * calling the function right after publish, promote or rollback gets the new version. The
 * change feed usually delivers within milliseconds; after `timeoutMs` the change stands anyway.
 */
async function untilLive(catalog: FunctionCatalog, change: DeploymentChange, gatewayId: string, signal: AbortSignal, timeoutMs = 2000): Promise<boolean> {
  const serving = async () => {
    const live = (await catalog.list(gatewayId, change.stage)).find((entry) => entry.name === change.function)
    return (live?.version ?? null) === change.toVersion
  }
  if (await serving()) return true
  return new Promise<boolean>((resolve) => {
    let settled = false
    const finish = (value: boolean) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      unsubscribe()
      signal.removeEventListener('abort', abort)
      resolve(value)
    }
    const abort = () => finish(false)
    const timer = setTimeout(() => finish(false), timeoutMs)
    const unsubscribe = catalog.onChange((event) => {
      if (event.gatewayId === gatewayId && event.stage === change.stage) void serving().then((yes) => yes && finish(true), () => {})
    })
    signal.addEventListener('abort', abort, { once: true })
    // A change that landed between the first look and the subscription.
    void serving().then((yes) => yes && finish(true), () => {})
  })
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100
}
