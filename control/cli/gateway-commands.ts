/** `imprun gateway …`: gateways (tenants), their lifecycle, and gateway-level plugins. */
import type { Gateway } from '../domain/gateways.ts'
import { adminPath } from './admin-client.ts'
import type { AdminCommand, AdminCommandGroup, AdminInvocation } from './admin-command.ts'
import type { OptionSpecs } from './command-line.ts'
import { waitForGatewayPhase, type GatewayWaitOptions, type SettledPhase } from './gateway-phase-wait.ts'
import { mergePluginsOption, readPluginsArgument } from './json-argument.ts'
import { formatFields, formatPluginNames, formatTable, formatTime } from './table.ts'

const waitOptions: OptionSpecs = {
  wait: { type: 'boolean', description: 'Wait until the phase settles' },
  timeout: { type: 'string', value: 'SECONDS', description: 'How long --wait waits (default 60)' },
}

const list: AdminCommand = {
  name: 'list',
  summary: 'List gateways with their phase',
  async run(invocation) {
    const { gateways } = await invocation.client.get<{ gateways: Gateway[] }>('/admin/gateways')
    invocation.print({ gateways }, () =>
      gateways.length === 0
        ? 'no gateways; create one with `imprun gateway create <id>`'
        : formatTable(
            ['id', 'phase', 'state', 'pipeline', 'description'],
            gateways.map((gateway) => [gateway.id, gateway.phase, gateway.state, gateway.pipeline ? 'on' : 'off', gateway.description]),
          ),
    )
  },
}

const create: AdminCommand = {
  name: 'create',
  arguments: ['<id>'],
  summary: 'Create a gateway with dev, staging and prod environments',
  details: 'The id is a DNS-1123 label (a-z, 0-9, -). With --wait, returns once the gateway is Started.',
  options: {
    description: { type: 'string', value: 'TEXT', description: 'What the gateway is for' },
    pipeline: { type: 'boolean', negated: true, description: 'Turn the promotion order dev → staging → prod off (publish to any stage)' },
    ...waitOptions,
  },
  async run(invocation) {
    const [id] = invocation.arguments as [string]
    const body = {
      id,
      description: invocation.commandLine.string('description'),
      pipeline: invocation.commandLine.flag('pipeline'),
    }
    const wait = waitSettings(invocation)
    let gateway = await invocation.client.post<Gateway>('/admin/gateways', body)
    if (wait) {
      gateway = await waitForGatewayPhase(invocation.client, id, 'Started', wait)
      invocation.print(gateway, () => `gateway ${id} created and ${gateway.phase} (${stageList(gateway)})`)
      return
    }
    invocation.print(gateway, () => `gateway ${id} created, phase ${gateway.phase}; \`imprun gateway get ${id}\` shows when it is Started`)
  },
}

const get: AdminCommand = {
  name: 'get',
  arguments: ['<id>'],
  summary: 'Show a gateway: state, phase, pipeline, plugins, environments',
  async run(invocation) {
    const [id] = invocation.arguments as [string]
    const gateway = await invocation.client.get<Gateway>(adminPath`/admin/gateways/${id}`)
    invocation.print(gateway, () => describeGateway(gateway))
  },
}

function lifecycleCommand(name: 'start' | 'stop' | 'delete', target: SettledPhase, summary: string): AdminCommand {
  return {
    name,
    arguments: ['<id>'],
    summary,
    options: waitOptions,
    async run(invocation) {
      const [id] = invocation.arguments as [string]
      const path = adminPath`/admin/gateways/${id}`
      const wait = waitSettings(invocation)
      let gateway = name === 'delete' ? await invocation.client.delete<Gateway>(path) : await invocation.client.post<Gateway>(`${path}/${name}`)
      if (wait) {
        gateway = await waitForGatewayPhase(invocation.client, id, target, wait)
        invocation.print(gateway, () => `gateway ${id} is ${gateway.phase}`)
        return
      }
      invocation.print(gateway, () => `gateway ${id}: state ${gateway.state}, phase ${gateway.phase}`)
    },
  }
}

const plugins: AdminCommand = {
  name: 'plugins',
  arguments: ['<id>', '<json-or-@file>'],
  summary: 'Replace (or with --merge, change) the gateway-level plugin configs',
  details: 'APISIX plugin configs by name, inline or from a file: \'{"cors":{"allow_origins":"*"}}\' or @plugins.json. \'{}\' removes them all.',
  options: mergePluginsOption,
  async run(invocation) {
    const [id, argument] = invocation.arguments as [string, string]
    const plugins = readPluginsArgument(argument, invocation.usage)
    const gateway =
      invocation.commandLine.flag('merge') === true
        ? await invocation.client.patch<Gateway>(adminPath`/admin/gateways/${id}/plugins`, { plugins })
        : await invocation.client.patch<Gateway>(adminPath`/admin/gateways/${id}`, { plugins })
    invocation.print(gateway, () => `gateway ${id} plugins: ${formatPluginNames(gateway.plugins)}`)
  },
}

export const gatewayCommands: AdminCommandGroup = {
  name: 'gateway',
  summary: 'Gateways (tenants), each with dev, staging and prod environments',
  commands: [
    list,
    create,
    get,
    lifecycleCommand('start', 'Started', 'Start serving a stopped gateway'),
    lifecycleCommand('stop', 'Stopped', 'Stop serving; functions and data are kept'),
    lifecycleCommand('delete', 'Deleted', 'Delete a gateway with its functions, data and grants'),
    plugins,
  ],
}

export function describeGateway(gateway: Gateway): string[] {
  const fields: Array<[string, string]> = [
    ['gateway', gateway.id],
    ['description', gateway.description || '-'],
    ['state', gateway.state],
    ['phase', gateway.phase],
    ['pipeline', gateway.pipeline ? 'on (dev → staging → prod)' : 'off'],
    ['plugins', formatPluginNames(gateway.plugins)],
    ...gateway.environments.map((environment): [string, string] => [`env ${environment.stage}`, `plugins: ${formatPluginNames(environment.plugins)}`]),
  ]
  if (gateway.lastError) fields.push(['last error', `${gateway.lastError.code}: ${gateway.lastError.message} (attempt ${gateway.lastError.attempts})`])
  fields.push(['created', formatTime(gateway.createdAt)], ['updated', formatTime(gateway.updatedAt)])
  return formatFields(fields)
}

function stageList(gateway: Gateway): string {
  return gateway.environments.map((environment) => environment.stage).join(', ')
}

/** Read before the first request, so that a bad --timeout changes nothing on the server. */
function waitSettings(invocation: AdminInvocation): GatewayWaitOptions | null {
  const seconds = invocation.commandLine.integer('timeout', { min: 1, max: 86_400 }) ?? 60
  return invocation.commandLine.flag('wait') ? { timeoutMs: seconds * 1000 } : null
}
