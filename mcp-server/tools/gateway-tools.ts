/**
 * Gateways and their environments: create, list, get (with phase), wait for a phase, change
 * settings and plugins at gateway and environment level, start, stop, delete.
 */
import { z } from 'zod'
import { gatewayIdSchema } from '../../control/domain/names.ts'
import { restingPhase, type GatewayPhase } from '../../control/domain/gateways.ts'
import type { McpServices } from '../mcp-services.ts'
import { defineTool, effects, type AnyToolDefinition } from '../tool-definition.ts'
import { gatewayArgument, gatewayOutput, metadataOutput, pluginsArgument, stageArgument } from './schemas.ts'

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
        'Wait until a gateway reaches a phase (default: the resting phase of its state, e.g. Started after create or start, Stopped after stop). Returns the gateway and whether the phase was reached within the timeout; sends progress notifications while waiting.',
      input: z
        .object({
          gateway: gatewayArgument,
          phase: z.enum(phases).optional().describe('Phase to wait for (default: Started when running, Stopped when stopped)'),
          timeoutSeconds: z.number().min(0).max(300).optional().describe('Give up after this many seconds (default 30)'),
        })
        .strict(),
      output: z.object({ reached: z.boolean().describe('False when the timeout passed first'), gateway: gatewayOutput }),
      annotations: effects.read,
      handler: async (input, context) => {
        const deadline = Date.now() + (input.timeoutSeconds ?? 30) * 1000
        let polls = 0
        for (;;) {
          const gateway = await gateways.get(input.gateway)
          const target: GatewayPhase = input.phase ?? restingPhase[gateway.state]
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
        'Change a gateway\'s description, promotion pipeline or gateway-level plugins. Given plugins replace all gateway-level plugins (merge order: base CORS < gateway < environment < function).',
      input: z
        .object({
          gateway: gatewayArgument,
          description: z.string().max(500).optional().describe('New description'),
          pipeline: z.boolean().optional().describe('Enforce promotion order dev → staging → prod'),
          plugins: pluginsArgument.optional().describe('Replaces the gateway-level APISIX plugin confs'),
        })
        .strict(),
      output: gatewayOutput,
      annotations: effects.destructive,
      handler: ({ gateway, ...changes }) => gateways.update(gateway, changes),
    }),
    defineTool({
      name: 'environment_set_plugins',
      title: 'Set environment plugins',
      description:
        'Replace the plugins of one environment (e.g. a limit-count rate limit on prod only, or key-auth to require grant keys). They apply to every function of that environment, above gateway plugins and below function plugins.',
      input: z
        .object({
          gateway: gatewayArgument,
          stage: stageArgument.describe('Environment whose plugins to replace'),
          plugins: pluginsArgument.describe('APISIX plugin confs, e.g. {"key-auth": {}, "limit-count": {"count": 10, "time_window": 60}}'),
        })
        .strict(),
      output: z.object({ stage: stageArgument, plugins: z.record(z.string(), z.unknown()), updatedAt: z.string() }),
      annotations: effects.destructive,
      handler: async (input) => {
        const environment = await gateways.setEnvironmentPlugins(input.gateway, input.stage, input.plugins)
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
