/**
 * Gateways and their environments: create, list, get (with phase), wait for a phase, change
 * settings and plugins at gateway and environment level, start, stop, delete.
 */
import { z } from 'zod'
import { isImprunError } from '../../control/errors.ts'
import { gatewayIdSchema } from '../../control/domain/names.ts'
import { restingPhase, type GatewayPhase } from '../../control/domain/gateways.ts'
import type { McpServices } from '../mcp-services.ts'
import { defineTool, effects, type AnyToolDefinition } from '../tool-definition.ts'
import { gatewayArgument, gatewayOutput, metadataOutput, pluginChangeArguments, pluginSetOf, pluginsArgument, stageArgument } from './schemas.ts'

const phases = ['Creating', 'Created', 'Starting', 'Started', 'Stopping', 'Stopped', 'Deleting', 'Deleted'] as const

export function gatewayTools(services: McpServices): AnyToolDefinition[] {
  const { gateways, functions } = services.control
  return [
    defineTool({
      name: 'gateway_create',
      title: 'Create gateway',
      description:
        'Create an API gateway (a tenant) with three environments: dev, staging and prod. Its phase then moves Creating → Created → Starting → Started on its own; call gateway_wait before publishing. Fails with already_exists if the id is taken. prod starts protected by key-auth (grant keys only).',
      input: z
        .object({
          id: gatewayIdSchema.describe('Gateway id: DNS-1123 label (a-z, 0-9, -), 1-40 characters; it becomes the first URL segment'),
          description: z.string().max(500).optional().describe('What the gateway is for'),
          pipeline: z.boolean().optional().describe('Enforce promotion order dev → staging → prod (default true)'),
          plugins: pluginsArgument.optional().describe('Gateway-level APISIX plugin confs, e.g. {"limit-count": {"count": 100, "time_window": 60}}'),
        })
        .strict(),
      output: gatewayOutput,
      annotations: effects.additiveWrite,
      handler: (input) => gateways.create(input),
    }),
    defineTool({
      name: 'gateway_list',
      title: 'List gateways',
      description: 'List all gateways with their desired state, observed phase, pipeline setting and plugins.',
      input: z.object({}).strict(),
      output: z.object({ gateways: z.array(gatewayOutput) }),
      annotations: effects.read,
      handler: async () => ({ gateways: await gateways.list() }),
    }),
    defineTool({
      name: 'gateway_get',
      title: 'Get gateway',
      description:
        'Get one gateway: state (desired) and phase (observed: Creating, Created, Starting, Started, Stopping, Stopped, Deleting), the last reconcile error if any, and the plugins of the gateway and of each environment.',
      input: z.object({ gateway: gatewayArgument }).strict(),
      output: gatewayOutput,
      annotations: effects.read,
      handler: (input) => gateways.get(input.gateway),
    }),
    defineTool({
      name: 'gateway_wait',
      title: 'Wait for gateway phase',
      description:
        'Wait until a gateway reaches a phase (default: the resting phase of its state: Started after create or start, Stopped after stop, Deleted after delete). Deleted means gone: gateway is then null. Returns whether the phase was reached within the timeout; sends progress notifications while waiting.',
      input: z
        .object({
          gateway: gatewayArgument,
          phase: z.enum(phases).optional().describe('Phase to wait for (default: the resting phase of its state)'),
          timeoutSeconds: z.number().min(0).max(300).optional().describe('Give up after this many seconds (default 30)'),
        })
        .strict(),
      output: z.object({
        reached: z.boolean().describe('False when the timeout passed first'),
        gateway: gatewayOutput.nullable().describe('The gateway as last seen; null once it is deleted'),
      }),
      annotations: effects.read,
      handler: async (input, context) => {
        const deadline = Date.now() + (input.timeoutSeconds ?? 30) * 1000
        let polls = 0
        let target: GatewayPhase | undefined = input.phase
        for (;;) {
          let gateway
          try {
            gateway = await gateways.get(input.gateway)
          } catch (error) {
            // Gone: reached when waiting for Deleted, or by default for a gateway seen (or kept
            // as a tombstone) in state Deleted. An id that never existed stays not_found.
            if (!isImprunError(error, 'not_found')) throw error
            if (target === 'Deleted' || (target === undefined && (await gateways.isDeleted(input.gateway)))) return { reached: true, gateway: null }
            throw error
          }
          target = input.phase ?? restingPhase[gateway.state]
          if (gateway.phase === target) return { reached: true, gateway }
          if (Date.now() >= deadline || context.signal.aborted) return { reached: false, gateway }
          context.progress.report(++polls, undefined, `phase ${gateway.phase}, waiting for ${target}`)
          await sleep(Math.min(200, 20 * polls), context.signal)
        }
      },
    }),
    defineTool({
      name: 'gateway_update',
      title: 'Update gateway',
      description:
        'Change a gateway\'s description, promotion pipeline or gateway-level plugins (below environment and function plugins). Plugins merge: each named plugin\'s conf is replaced, null removes it, others are kept; replace: true sets the whole set instead.',
      input: z
        .object({
          gateway: gatewayArgument,
          description: z.string().max(500).optional().describe('New description'),
          pipeline: z.boolean().optional().describe('Enforce promotion order dev → staging → prod'),
          plugins: pluginChangeArguments.plugins.optional(),
          replace: pluginChangeArguments.replace,
        })
        .strict(),
      output: gatewayOutput,
      annotations: effects.destructive,
      handler: ({ gateway, plugins, replace, ...changes }) =>
        gateways.update(gateway, { ...changes, ...(plugins === undefined ? {} : replace === true ? { plugins: pluginSetOf(plugins) } : { pluginPatch: plugins }) }),
    }),
    defineTool({
      name: 'environment_set_plugins',
      title: 'Set environment plugins',
      description:
        'Change the plugins of one environment (e.g. a limit-count rate limit on prod, key-auth to require grant keys); they apply to all its functions, above gateway and below function plugins. Merges: each named plugin\'s conf is replaced, null removes it, others (e.g. prod\'s key-auth) are kept; replace: true sets the whole set instead.',
      input: z
        .object({
          gateway: gatewayArgument,
          stage: stageArgument.describe('Environment whose plugins to change'),
          ...pluginChangeArguments,
        })
        .strict(),
      output: z.object({ stage: stageArgument, plugins: z.record(z.string(), z.unknown()), updatedAt: z.string() }),
      annotations: effects.destructive,
      handler: async (input) => {
        const environment =
          input.replace === true
            ? await gateways.setEnvironmentPlugins(input.gateway, input.stage, pluginSetOf(input.plugins))
            : await gateways.patchEnvironmentPlugins(input.gateway, input.stage, input.plugins)
        return { stage: environment.stage, plugins: environment.plugins, updatedAt: environment.updatedAt }
      },
    }),
    defineTool({
      name: 'environment_list_functions',
      title: 'List live functions',
      description:
        'List the functions live on one environment with the version serving and the metadata stored at publish (description, input and output JSON Schema): what that environment\'s MCP function endpoint and HTTP routes expose.',
      input: z.object({ gateway: gatewayArgument, stage: stageArgument.describe('Environment to list') }).strict(),
      output: z.object({
        functions: z.array(z.object({ name: z.string(), version: z.number(), metadata: metadataOutput, plugins: z.record(z.string(), z.unknown()) })),
      }),
      annotations: effects.read,
      handler: async (input) => {
        await gateways.record(input.gateway)
        const live = await functions.live(input.gateway, input.stage)
        return { functions: live.map(({ name, version, metadata, plugins }) => ({ name, version, metadata, plugins })) }
      },
    }),
    defineTool({
      name: 'gateway_start',
      title: 'Start gateway',
      description: 'Start serving a stopped gateway (state Running). The phase moves to Started asynchronously; use gateway_wait.',
      input: z.object({ gateway: gatewayArgument }).strict(),
      output: gatewayOutput,
      annotations: effects.idempotentWrite,
      handler: (input) => gateways.start(input.gateway),
    }),
    defineTool({
      name: 'gateway_stop',
      title: 'Stop gateway',
      description:
        'Stop serving every environment of a gateway (state Stopped); calls answer 503 until it is started again. Keeps functions, versions, data and grants.',
      input: z.object({ gateway: gatewayArgument }).strict(),
      output: gatewayOutput,
      annotations: { ...effects.idempotentWrite, destructiveHint: true },
      handler: (input) => gateways.stop(input.gateway),
    }),
    defineTool({
      name: 'gateway_delete',
      title: 'Delete gateway',
      description:
        'Delete a gateway and everything in it: environments, functions, versions, deployment history, its database, variables and grants. Irreversible. The id can be reused once the phase is Deleted.',
      input: z.object({ gateway: gatewayArgument }).strict(),
      output: gatewayOutput,
      annotations: effects.destructive,
      handler: (input) => gateways.delete(input.gateway),
    }),
  ]
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve()
    const timer = setTimeout(done, ms)
    signal.addEventListener('abort', done, { once: true })
    function done() {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
  })
}
