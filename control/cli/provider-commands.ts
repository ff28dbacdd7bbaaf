/**
 * `imprun provider …`: the chat gateway's LLM providers, the model aliases clients name, and
 * token usage. Keys are best passed by environment variable (`--api-key-env`), which keeps them
 * out of shell history and process listings; the server stores them sealed and never shows them.
 */
import type { ModelAlias, Provider, UsageEntry } from '../domain/providers.ts'
import { adminPath } from './admin-client.ts'
import type { AdminCommand, AdminCommandGroup, AdminInvocation } from './admin-command.ts'
import { usageError } from './cli-error.ts'
import { formatTable, formatTime } from './table.ts'

function apiKeyOption(invocation: AdminInvocation): string | undefined {
  const direct = invocation.commandLine.string('api-key')
  const variable = invocation.commandLine.string('api-key-env')
  if (direct !== undefined && variable !== undefined) throw usageError('give --api-key or --api-key-env, not both', invocation.usage)
  if (variable === undefined) return direct
  const value = invocation.io.env[variable]
  if (!value) throw usageError(`environment variable ${variable} is not set`, invocation.usage)
  return value
}

const keyOptions = {
  'api-key': { type: 'string', value: 'KEY', description: 'Provider API key (prefer --api-key-env)' },
  'api-key-env': { type: 'string', value: 'VAR', description: 'Read the API key from this environment variable' },
  'timeout-ms': { type: 'string', value: 'MS', description: 'Per upstream request until the answer starts (default 60000)' },
} as const

const list: AdminCommand = {
  name: 'list',
  summary: 'List LLM providers',
  async run(invocation) {
    const { providers } = await invocation.client.get<{ providers: Provider[] }>('/admin/providers')
    invocation.print({ providers }, () =>
      providers.length === 0
        ? 'no providers; add one with `imprun provider add <id> <openai|anthropic|ollama>`'
        : formatTable(
            ['id', 'kind', 'base url', 'key', 'timeout'],
            providers.map((provider) => [provider.id, provider.kind, provider.baseUrl, provider.apiKeySet ? (provider.apiKeyPreview ?? 'set') : '-', `${provider.timeoutMs} ms`]),
          ),
    )
  },
}

const add: AdminCommand = {
  name: 'add',
  arguments: ['<id>', '<kind>'],
  summary: 'Add a provider: kind openai, anthropic or ollama',
  details: [
    'Examples:',
    '  OPENAI_API_KEY=sk-… imprun provider add openai openai --api-key-env OPENAI_API_KEY',
    '  imprun provider add anthropic anthropic --api-key-env ANTHROPIC_API_KEY',
    '  imprun provider add local ollama --base-url http://127.0.0.1:11434',
    '  imprun provider add groq openai --base-url https://api.groq.com/openai/v1 --api-key-env GROQ_API_KEY',
  ].join('\n'),
  options: { 'base-url': { type: 'string', value: 'URL', description: "Provider API base URL (default: the vendor's)" }, ...keyOptions },
  async run(invocation) {
    const [id, kind] = invocation.arguments as [string, string]
    const provider = await invocation.client.post<Provider>('/admin/providers', {
      id,
      kind,
      baseUrl: invocation.commandLine.string('base-url'),
      apiKey: apiKeyOption(invocation),
      timeoutMs: invocation.commandLine.integer('timeout-ms', { min: 100, max: 600_000 }),
    })
    invocation.print(provider, () => `added provider ${provider.id} (${provider.kind}, ${provider.baseUrl})${provider.apiKeySet ? ', key stored sealed' : ''}`)
  },
}

const update: AdminCommand = {
  name: 'update',
  arguments: ['<id>'],
  summary: "Change a provider's base URL, key or timeout",
  options: { 'base-url': { type: 'string', value: 'URL', description: 'New base URL' }, ...keyOptions, 'remove-key': { type: 'boolean', description: 'Remove the stored key' } },
  async run(invocation) {
    const [id] = invocation.arguments as [string]
    const apiKey = invocation.commandLine.flag('remove-key') ? null : apiKeyOption(invocation)
    const provider = await invocation.client.patch<Provider>(adminPath`/admin/providers/${id}`, {
      baseUrl: invocation.commandLine.string('base-url'),
      apiKey,
      timeoutMs: invocation.commandLine.integer('timeout-ms', { min: 100, max: 600_000 }),
    })
    invocation.print(provider, () => `updated provider ${provider.id}`)
  },
}

const remove: AdminCommand = {
  name: 'remove',
  arguments: ['<id>'],
  summary: 'Remove a provider (no model alias may use it)',
  async run(invocation) {
    const [id] = invocation.arguments as [string]
    await invocation.client.delete(adminPath`/admin/providers/${id}`)
    invocation.print({ removed: id }, () => `removed provider ${id}`)
  },
}

const models: AdminCommand = {
  name: 'models',
  summary: 'List model aliases (the names clients put in `model`)',
  async run(invocation) {
    const { models: aliases } = await invocation.client.get<{ models: ModelAlias[] }>('/admin/models')
    invocation.print({ models: aliases }, () =>
      aliases.length === 0
        ? 'no models; add one with `imprun provider model-set <alias> <provider> <model>`'
        : formatTable(
            ['alias', 'provider', 'model', 'fallbacks', 'updated'],
            aliases.map((alias) => [alias.alias, alias.provider, alias.model, alias.fallbacks.join(', ') || '-', formatTime(alias.updatedAt)]),
          ),
    )
  },
}

const modelSet: AdminCommand = {
  name: 'model-set',
  arguments: ['<alias>', '<provider>', '<model>'],
  summary: 'Create or replace a model alias',
  details: ['Example:', '  imprun provider model-set fast openai gpt-4o-mini --fallback claude-haiku,local-llama'].join('\n'),
  options: { fallback: { type: 'string', value: 'ALIASES', description: 'Comma-separated aliases to try, in order, on 429/5xx/timeouts' } },
  async run(invocation) {
    const [alias, provider, model] = invocation.arguments as [string, string, string]
    const fallbacks = invocation.commandLine.string('fallback')?.split(',').map((name) => name.trim()).filter((name) => name.length > 0)
    const saved = await invocation.client.put<ModelAlias>(adminPath`/admin/models/${alias}`, { provider, model, fallbacks })
    invocation.print(saved, () => `model ${saved.alias} → ${saved.provider}/${saved.model}${saved.fallbacks.length > 0 ? `, falling back to ${saved.fallbacks.join(', ')}` : ''}`)
  },
}

const modelRemove: AdminCommand = {
  name: 'model-remove',
  arguments: ['<alias>'],
  summary: 'Remove a model alias',
  async run(invocation) {
    const [alias] = invocation.arguments as [string]
    await invocation.client.delete(adminPath`/admin/models/${alias}`)
    invocation.print({ removed: alias }, () => `removed model ${alias}`)
  },
}

const usage: AdminCommand = {
  name: 'usage',
  summary: 'Token usage per application, environment and model',
  options: {
    app: { type: 'string', value: 'APP', description: 'Only this application (name or id)' },
    from: { type: 'string', value: 'YYYY-MM-DD', description: 'First day, inclusive' },
    to: { type: 'string', value: 'YYYY-MM-DD', description: 'Last day, inclusive' },
  },
  async run(invocation) {
    const result = await invocation.client.get<{ entries: UsageEntry[]; totals: { requests: number; inputTokens: number; outputTokens: number } }>('/admin/usage', {
      application: invocation.commandLine.string('app'),
      from: invocation.commandLine.string('from'),
      to: invocation.commandLine.string('to'),
    })
    invocation.print(result, () =>
      result.entries.length === 0
        ? 'no usage recorded'
        : [
            ...formatTable(
              ['application', 'environment', 'model', 'served by', 'requests', 'input tokens', 'output tokens'],
              result.entries.map((entry) => [entry.application, `${entry.gatewayId}/${entry.stage}`, entry.alias, `${entry.provider}/${entry.model}`, String(entry.requests), String(entry.inputTokens), String(entry.outputTokens)]),
            ),
            `total: ${result.totals.requests} requests, ${result.totals.inputTokens} input and ${result.totals.outputTokens} output tokens`,
          ],
    )
  },
}

export const providerCommands: AdminCommandGroup = {
  name: 'provider',
  summary: 'Chat gateway: LLM providers, model aliases and token usage',
  commands: [list, add, update, remove, models, modelSet, modelRemove, usage],
}
