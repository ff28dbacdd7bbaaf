/** `imprun env …`: one environment (stage) of a gateway: its plugins and live functions. */
import type { LiveFunction } from '../domain/functions.ts'
import type { PluginConfigs } from '../domain/plugins.ts'
import { adminPath } from './admin-client.ts'
import type { AdminCommand, AdminCommandGroup } from './admin-command.ts'
import { readPluginsArgument } from './json-argument.ts'
import { formatFields, formatPluginNames, formatTable, formatTime, formatVersion } from './table.ts'

interface EnvironmentView {
  stage: string
  plugins: PluginConfigs
  updatedAt: string
}

const get: AdminCommand = {
  name: 'get',
  arguments: ['<gateway>', '<stage>'],
  summary: 'Show an environment and its plugins',
  async run(invocation) {
    const [gateway, stage] = invocation.arguments as [string, string]
    const environment = await invocation.client.get<EnvironmentView>(adminPath`/admin/gateways/${gateway}/environments/${stage}`)
    invocation.print(environment, () =>
      formatFields([
        ['environment', `${gateway}/${environment.stage}`],
        ['plugins', formatPluginNames(environment.plugins)],
        ['updated', formatTime(environment.updatedAt)],
      ]),
    )
  },
}

const functions: AdminCommand = {
  name: 'functions',
  arguments: ['<gateway>', '<stage>'],
  summary: 'List the functions live on an environment',
  async run(invocation) {
    const [gateway, stage] = invocation.arguments as [string, string]
    const { functions: live } = await invocation.client.get<{ functions: LiveFunction[] }>(adminPath`/admin/gateways/${gateway}/environments/${stage}/functions`)
    invocation.print({ functions: live }, () =>
      live.length === 0
        ? `nothing is live on ${gateway}/${stage}`
        : formatTable(
            ['name', 'version', 'plugins', 'description'],
            live.map((item) => [item.name, formatVersion(item.version), formatPluginNames(item.plugins), item.metadata.description]),
          ),
    )
  },
}

const plugins: AdminCommand = {
  name: 'plugins',
  arguments: ['<gateway>', '<stage>', '<json-or-@file>'],
  summary: 'Replace the environment-level plugin configs',
  details: [
    'APISIX plugin configs by name, inline or from a file, e.g.',
    '  imprun env plugins hometax prod \'{"limit-count":{"count":100,"time_window":60}}\'',
    '  imprun env plugins hometax prod @prod-plugins.json',
    "'{}' removes them all.",
  ].join('\n'),
  async run(invocation) {
    const [gateway, stage, argument] = invocation.arguments as [string, string, string]
    const environment = await invocation.client.put<EnvironmentView>(adminPath`/admin/gateways/${gateway}/environments/${stage}/plugins`, {
      plugins: readPluginsArgument(argument, invocation.usage),
    })
    invocation.print(environment, () => `${gateway}/${environment.stage} plugins: ${formatPluginNames(environment.plugins)}`)
  },
}

export const envCommands: AdminCommandGroup = {
  name: 'env',
  summary: 'Environments (dev, staging, prod) of a gateway: plugins, live functions',
  commands: [get, functions, plugins],
}
