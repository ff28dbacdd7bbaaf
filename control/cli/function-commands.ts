/** `imprun function …`: drafts, versions, and which version is live on which stage. */
import type { DeploymentChange, FunctionDetail, FunctionSummary, HistoryRecord, VersionSummary } from '../domain/functions.ts'
import type { Stage } from '../ports.ts'
import { adminPath } from './admin-client.ts'
import type { AdminCommand, AdminCommandGroup, AdminInvocation } from './admin-command.ts'
import { CliError, usageError } from './cli-error.ts'
import { readFunctionFiles } from './function-files.ts'
import { mergePluginsOption, readJsonArgument, sendPlugins } from './json-argument.ts'
import { formatFields, formatPluginNames, formatTable, formatTime, formatVersion } from './table.ts'

const stages: readonly Stage[] = ['dev', 'staging', 'prod']

const list: AdminCommand = {
  name: 'list',
  arguments: ['<gateway>'],
  summary: 'List functions with the version live on each stage',
  async run(invocation) {
    const [gateway] = invocation.arguments as [string]
    const { functions } = await invocation.client.get<{ functions: FunctionSummary[] }>(adminPath`/admin/gateways/${gateway}/functions`)
    invocation.print({ functions }, () =>
      functions.length === 0
        ? `no functions on ${gateway}; add one with \`imprun function write ${gateway} <name> <file>\``
        : formatTable(
            ['name', 'latest', ...stages, 'updated'],
            functions.map((summary) => [
              summary.name,
              formatVersion(summary.latestVersion || null),
              ...stages.map((stage) => formatVersion(summary.deployed[stage])),
              formatTime(summary.updatedAt),
            ]),
          ),
    )
  },
}

const write: AdminCommand = {
  name: 'write',
  arguments: ['<gateway>', '<name>', '<file-or-dir>'],
  summary: 'Create or replace a function draft from a .ts file or a directory',
  details: [
    'A .ts file becomes the entry index.ts. A directory sends every .ts and .json file under it',
    '(not node_modules or hidden folders) by relative path; it must contain index.ts.',
    'Names are path-like (e.g. user/me). Publish the draft to make it live.',
  ].join('\n'),
  async run(invocation) {
    const [gateway, name, path] = invocation.arguments as [string, string, string]
    const files = readFunctionFiles(path)
    const detail = await invocation.client.put<FunctionDetail>(adminPath`/admin/gateways/${gateway}/functions/${name}`, { files })
    invocation.print(detail, () => {
      const count = Object.keys(files).length
      const written = `wrote ${name} on ${gateway} (${count} file${count === 1 ? '' : 's'})`
      return detail.draftChanged
        ? `${written}; publish it with \`imprun function publish ${gateway} ${name}\``
        : `${written}; the draft is the same as ${formatVersion(detail.latestVersion)}`
    })
  },
}

const get: AdminCommand = {
  name: 'get',
  arguments: ['<gateway>', '<name>'],
  summary: 'Show a function: versions live per stage, draft state, files',
  options: {
    source: { type: 'boolean', description: "Print the draft's index.ts instead" },
  },
  async run(invocation) {
    const [gateway, name] = invocation.arguments as [string, string]
    const detail = await invocation.client.get<FunctionDetail>(adminPath`/admin/gateways/${gateway}/functions/${name}`)
    if (invocation.commandLine.flag('source') && !invocation.json) {
      invocation.io.stdout.write(detail.files['index.ts'] ?? '')
      return
    }
    invocation.print(detail, () => {
      const draft = detail.latestVersion === 0 ? 'never published' : detail.draftChanged ? `changed since ${formatVersion(detail.latestVersion)}` : `same as ${formatVersion(detail.latestVersion)}`
      return formatFields([
        ['function', detail.name],
        ['latest', formatVersion(detail.latestVersion || null)],
        ...stages.map((stage): [string, string] => [stage, formatVersion(detail.deployed[stage])]),
        ['draft', draft],
        ['plugins', formatPluginNames(detail.plugins)],
        ['files', Object.entries(detail.files).map(([file, text]) => `${file} (${Buffer.byteLength(text)} B)`).join(', ')],
        ['updated', formatTime(detail.updatedAt)],
      ])
    })
  },
}

const publish: AdminCommand = {
  name: 'publish',
  arguments: ['<gateway>', '<name>'],
  summary: 'Compile the draft and make it live (on dev by default)',
  details: 'Identical source reuses the latest version. With the promotion pipeline on, only dev can be published to.',
  options: {
    stage: { type: 'string', value: 'STAGE', description: 'dev, staging or prod (default dev)' },
    message: { type: 'string', value: 'TEXT', description: 'Release note stored with a new version' },
  },
  async run(invocation) {
    const [gateway, name] = invocation.arguments as [string, string]
    const body = { stage: invocation.commandLine.string('stage'), message: invocation.commandLine.string('message') }
    const result = await invocation.client.post<DeploymentChange & { version: VersionSummary; created: boolean }>(
      adminPath`/admin/gateways/${gateway}/functions/${name}/publish`,
      body,
    )
    invocation.print(result, () => {
      const version = result.created ? `${formatVersion(result.version.number)} (new)` : formatVersion(result.version.number)
      return result.changed
        ? `published ${name} ${version} to ${result.stage}${was(result)}`
        : `${result.stage} already runs ${name} ${version}`
    })
  },
}

const promote: AdminCommand = {
  name: 'promote',
  arguments: ['<gateway>', '<name>'],
  summary: 'Deploy the exact version live on one stage to the next',
  options: {
    from: { type: 'string', value: 'STAGE', description: 'Stage to copy from (required)' },
    to: { type: 'string', value: 'STAGE', description: 'Target stage (default: the next one)' },
  },
  async run(invocation) {
    const [gateway, name] = invocation.arguments as [string, string]
    const from = requiredOption(invocation, 'from')
    const change = await invocation.client.post<DeploymentChange>(adminPath`/admin/gateways/${gateway}/functions/${name}/promote`, {
      from,
      to: invocation.commandLine.string('to'),
    })
    invocation.print(change, () =>
      change.changed
        ? `promoted ${name} ${formatVersion(change.toVersion)} from ${from} to ${change.stage}${was(change)}`
        : `${change.stage} already runs ${name} ${formatVersion(change.toVersion)}`,
    )
  },
}

const rollback: AdminCommand = {
  name: 'rollback',
  arguments: ['<gateway>', '<name>'],
  summary: 'Point a stage at another version (default: the one live before)',
  options: {
    stage: { type: 'string', value: 'STAGE', description: 'Stage to roll back (required)' },
    version: { type: 'string', value: 'N', description: 'Version to go to (default: the previous one on that stage)' },
  },
  async run(invocation) {
    const [gateway, name] = invocation.arguments as [string, string]
    const stage = requiredOption(invocation, 'stage')
    const change = await invocation.client.post<DeploymentChange>(adminPath`/admin/gateways/${gateway}/functions/${name}/rollback`, {
      stage,
      version: invocation.commandLine.integer('version', { min: 1 }),
    })
    invocation.print(change, () =>
      change.changed
        ? `${stage} now runs ${name} ${formatVersion(change.toVersion)}${was(change)}`
        : `${stage} already runs ${name} ${formatVersion(change.toVersion)}`,
    )
  },
}

const undeploy: AdminCommand = {
  name: 'undeploy',
  arguments: ['<gateway>', '<name>'],
  summary: 'Stop serving a function on one stage (versions are kept)',
  options: {
    stage: { type: 'string', value: 'STAGE', description: 'Stage to remove it from (required)' },
  },
  async run(invocation) {
    const [gateway, name] = invocation.arguments as [string, string]
    const stage = requiredOption(invocation, 'stage')
    const change = await invocation.client.post<DeploymentChange>(adminPath`/admin/gateways/${gateway}/functions/${name}/undeploy`, { stage })
    invocation.print(change, () => (change.changed ? `undeployed ${name} from ${stage}${was(change)}` : `${name} was not deployed on ${stage}`))
  },
}

const versions: AdminCommand = {
  name: 'versions',
  arguments: ['<gateway>', '<name>'],
  summary: 'List the immutable versions of a function, newest first',
  async run(invocation) {
    const [gateway, name] = invocation.arguments as [string, string]
    const path = adminPath`/admin/gateways/${gateway}/functions/${name}`
    const { versions: list } = await invocation.client.get<{ versions: VersionSummary[] }>(`${path}/versions`)
    // Which stages run which version is for the table only; --json gives the response as is.
    const deployed = invocation.json ? {} : (await invocation.client.get<FunctionDetail>(path)).deployed
    invocation.print({ versions: list }, () =>
      list.length === 0
        ? `${name} has no versions yet; publish it with \`imprun function publish ${gateway} ${name}\``
        : formatTable(
            ['version', 'live on', 'created', 'source', 'description', 'message'],
            list.map((version) => [
              formatVersion(version.number),
              stages.filter((stage) => deployed[stage] === version.number).join(',') || '-',
              formatTime(version.createdAt),
              version.sourceHash.slice(0, 12),
              version.description,
              version.message,
            ]),
          ),
    )
  },
}

const history: AdminCommand = {
  name: 'history',
  arguments: ['<gateway>'],
  summary: 'Deployment history of a gateway, newest first',
  options: {
    function: { type: 'string', value: 'NAME', description: 'Only this function' },
    stage: { type: 'string', value: 'STAGE', description: 'Only this stage' },
    limit: { type: 'string', value: 'N', description: 'At most N entries (default 100)' },
  },
  async run(invocation) {
    const [gateway] = invocation.arguments as [string]
    const { history: entries } = await invocation.client.get<{ history: HistoryRecord[] }>(adminPath`/admin/gateways/${gateway}/history`, {
      function: invocation.commandLine.string('function'),
      stage: invocation.commandLine.string('stage'),
      limit: invocation.commandLine.integer('limit', { min: 1, max: 1000 }),
    })
    invocation.print({ history: entries }, () =>
      entries.length === 0
        ? `no deployments on ${gateway} yet`
        : formatTable(
            ['#', 'at', 'function', 'stage', 'action', 'version'],
            entries.map((entry) => [
              String(entry.seq),
              formatTime(entry.at),
              entry.function,
              entry.stage,
              entry.sourceStage ? `${entry.action} from ${entry.sourceStage}` : entry.action,
              `${formatVersion(entry.fromVersion)} → ${formatVersion(entry.toVersion)}`,
            ]),
          ),
    )
  },
}

const remove: AdminCommand = {
  name: 'delete',
  arguments: ['<gateway>', '<name>'],
  summary: 'Delete a function with all its versions; it stops serving everywhere',
  async run(invocation) {
    const [gateway, name] = invocation.arguments as [string, string]
    const result = await invocation.client.delete<{ undeployed: DeploymentChange[] }>(adminPath`/admin/gateways/${gateway}/functions/${name}`)
    invocation.print(result, () => {
      const stagesLeft = result.undeployed.filter((change) => change.changed).map((change) => change.stage)
      return `deleted ${name} from ${gateway}${stagesLeft.length > 0 ? ` (undeployed from ${stagesLeft.join(', ')})` : ''}`
    })
  },
}

const plugins: AdminCommand = {
  name: 'plugins',
  arguments: ['<gateway>', '<name>', '<json-or-@file>'],
  summary: 'Replace (or with --merge, change) the function-level plugin configs',
  details: 'APISIX plugin configs by name, inline or from a file (@plugins.json). \'{}\' removes them all.',
  options: mergePluginsOption,
  async run(invocation) {
    const [gateway, name, argument] = invocation.arguments as [string, string, string]
    const detail = await sendPlugins<FunctionDetail>(invocation, adminPath`/admin/gateways/${gateway}/functions/${name}/plugins`, argument)
    invocation.print(detail, () => `${name} plugins: ${formatPluginNames(detail.plugins)}`)
  },
}

interface TestRunView {
  requestId: string
  durationMs: number
  outcome: { ok: true; status: number; value: unknown } | { ok: false; status: number; code: string; message: string; details?: Record<string, unknown> }
  logs: Array<{ level: string; message: string }>
}

const test: AdminCommand = {
  name: 'test',
  arguments: ['<gateway>', '<name>', '[input-json-or-@file]'],
  summary: 'Compile the draft and run it once with an input, without publishing',
  details: "Example:\n  imprun function test hometax calculateTax '{\"income\":50000000,\"deductions\":10000000}'",
  options: {
    stage: { type: 'string', value: 'STAGE', description: "Whose variables and secrets the run sees (default dev)" },
  },
  async run(invocation) {
    const [gateway, name, argument] = invocation.arguments as [string, string, string | undefined]
    const input = argument === undefined ? {} : readJsonArgument(argument, 'the input', invocation.usage)
    const result = await invocation.client.post<TestRunView>(adminPath`/admin/gateways/${gateway}/functions/${name}/test`, {
      input,
      stage: invocation.commandLine.string('stage'),
    })
    invocation.print(result, () => {
      const lines = result.logs.map((line) => `${line.level.padEnd(5)} ${line.message}`)
      const { outcome } = result
      if (outcome.ok) lines.push(`${outcome.status} in ${result.durationMs}ms`, JSON.stringify(outcome.value, null, 2) ?? '')
      return lines
    })
    // A failed run prints its logs, then fails the command with the function's error.
    if (!result.outcome.ok) throw new CliError(result.outcome.code, `${result.outcome.message} (status ${result.outcome.status})`, { details: result.outcome.details })
  },
}

export const functionCommands: AdminCommandGroup = {
  name: 'function',
  summary: 'Functions: write a draft, publish, promote dev → staging → prod, roll back',
  commands: [list, write, get, test, publish, promote, rollback, undeploy, versions, history, remove, plugins],
}

function requiredOption(invocation: AdminInvocation, name: string): string {
  const value = invocation.commandLine.string(name)
  if (value === undefined) throw usageError(`--${name} is required`, invocation.usage)
  return value
}

function was(change: DeploymentChange): string {
  return change.fromVersion === null ? '' : ` (was ${formatVersion(change.fromVersion)})`
}
