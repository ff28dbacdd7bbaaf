/** `imprun env …`: one environment (stage) of a gateway: its plugins and live functions. */
import type { LiveFunction } from '../domain/functions.ts'
import type { PluginConfigs } from '../domain/plugins.ts'
import { adminPath } from './admin-client.ts'
import type { AdminCommand, AdminCommandGroup } from './admin-command.ts'
import { usageError } from './cli-error.ts'
import { mergePluginsOption, sendPlugins } from './json-argument.ts'
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
  summary: 'Replace (or with --merge, change) the environment-level plugin configs',
  details: [
    'APISIX plugin configs by name, inline or from a file, e.g.',
    '  imprun env plugins hometax prod \'{"limit-count":{"count":100,"time_window":60}}\'',
    '  imprun env plugins hometax prod @prod-plugins.json',
    '  imprun env plugins hometax prod \'{"key-auth":null}\' --merge',
    "'{}' removes them all.",
  ].join('\n'),
  options: mergePluginsOption,
  async run(invocation) {
    const [gateway, stage, argument] = invocation.arguments as [string, string, string]
    const environment = await sendPlugins<EnvironmentView>(invocation, adminPath`/admin/gateways/${gateway}/environments/${stage}/plugins`, argument)
    invocation.print(environment, () => `${gateway}/${environment.stage} plugins: ${formatPluginNames(environment.plugins)}`)
  },
}

interface VariableView {
  name: string
  stage: string
  secret: boolean
  value?: string
  updatedAt: string
}

const vars: AdminCommand = {
  name: 'vars',
  arguments: ['<gateway>', '<stage>'],
  summary: "List an environment's variables (secrets by name only)",
  async run(invocation) {
    const [gateway, stage] = invocation.arguments as [string, string]
    const { variables } = await invocation.client.get<{ variables: VariableView[] }>(adminPath`/admin/gateways/${gateway}/environments/${stage}/variables`)
    invocation.print({ variables }, () =>
      variables.length === 0
        ? `no variables on ${gateway}/${stage}`
        : formatTable(
            ['name', 'value', 'updated'],
            variables.map((variable) => [variable.name, variable.secret ? '(secret)' : (variable.value ?? ''), formatTime(variable.updatedAt)]),
          ),
    )
  },
}

const set: AdminCommand = {
  name: 'set',
  arguments: ['<gateway>', '<stage>', '<NAME=value>'],
  summary: 'Set a variable or secret; functions read it as ctx.env.NAME',
  details: [
    'Examples:',
    '  imprun env set hometax prod TAX_RATE=0.22',
    '  imprun env set hometax prod PARTNER_API_KEY --secret     (reads the value from IMPRUN_VALUE, so it stays out of shell history)',
    'A secret is never shown again; setting it again keeps it secret.',
  ].join('\n'),
  options: {
    secret: { type: 'boolean', description: 'Store as a secret (value never shown again)' },
  },
  async run(invocation) {
    const [gateway, stage, assignment] = invocation.arguments as [string, string, string]
    const equals = assignment.indexOf('=')
    const name = equals < 0 ? assignment : assignment.slice(0, equals)
    const value = equals < 0 ? invocation.io.env.IMPRUN_VALUE : assignment.slice(equals + 1)
    if (value === undefined) throw usageError(`give the value as ${name}=value, or in the IMPRUN_VALUE environment variable`, invocation.usage)
    const secret = invocation.commandLine.flag('secret') === true ? true : undefined
    const variable = await invocation.client.put<VariableView>(adminPath`/admin/gateways/${gateway}/environments/${stage}/variables/${name}`, { value, secret })
    invocation.print(variable, () => `set ${variable.secret ? 'secret' : 'variable'} ${variable.name} on ${gateway}/${variable.stage}`)
  },
}

const unset: AdminCommand = {
  name: 'unset',
  arguments: ['<gateway>', '<stage>', '<NAME>'],
  summary: 'Remove a variable or secret',
  async run(invocation) {
    const [gateway, stage, name] = invocation.arguments as [string, string, string]
    await invocation.client.delete(adminPath`/admin/gateways/${gateway}/environments/${stage}/variables/${name}`)
    invocation.print({ removed: name }, () => `removed ${name} from ${gateway}/${stage}`)
  },
}

export const envCommands: AdminCommandGroup = {
  name: 'env',
  summary: 'Environments (dev, staging, prod) of a gateway: plugins, live functions, variables and secrets',
  commands: [get, functions, plugins, vars, set, unset],
}
