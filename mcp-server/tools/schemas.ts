/**
 * Zod schemas shared by the management tools: the arguments that recur (gateway, function,
 * stage) and the shapes the control services return, as tool output schemas. Outputs are parsed
 * through these before they are sent, so a tool's structuredContent always matches the
 * outputSchema it advertises.
 */
import { z } from 'zod'
import { pluginConfigsSchema, pluginPatchSchema, type PluginConfigs, type PluginPatch } from '../../control/domain/plugins.ts'

export const stageArgument = z.enum(['dev', 'staging', 'prod'])
export const gatewayArgument = z.string().min(1).max(40).describe('Gateway id, e.g. hometax')
export const functionArgument = z.string().min(1).max(128).describe('Function name, path-like (e.g. calculateTax or user/me)')
export const pluginsArgument = pluginConfigsSchema

/** The arguments of the *_set_plugins tools: a merge patch by default, the whole set with `replace`. */
export const pluginChangeArguments = {
  plugins: pluginPatchSchema.describe('Plugin name → APISIX conf, or null to remove it, e.g. {"limit-count": {"count": 10, "time_window": 60}}'),
  replace: z.boolean().optional().describe('true: these plugins become the whole set, dropping any not named (default false: merge)'),
}

/** The whole set a `replace` call asks for: the named confs; a null just leaves that plugin out. */
export function pluginSetOf(patch: PluginPatch): PluginConfigs {
  const set: PluginConfigs = {}
  for (const [name, conf] of Object.entries(patch)) if (conf !== null) set[name] = conf
  return set
}

const timestamp = z.string().describe('ISO-8601 time')
const plugins = z.record(z.string(), z.unknown()).describe('APISIX plugin confs by plugin name')
const stage = stageArgument.describe('Environment: dev, staging or prod')

export const gatewayOutput = z.object({
  id: z.string(),
  description: z.string(),
  state: z.enum(['Running', 'Stopped', 'Deleted']).describe('Desired state'),
  phase: z
    .enum(['Creating', 'Created', 'Starting', 'Started', 'Stopping', 'Stopped', 'Deleting', 'Deleted'])
    .describe('Observed phase; Started means serving dev, staging and prod'),
  pipeline: z.boolean().describe('Promotion order dev → staging → prod enforced'),
  plugins,
  environments: z.array(z.object({ stage, plugins })),
  lastError: z.object({ code: z.string(), message: z.string(), at: z.string(), attempts: z.number() }).nullable(),
  createdAt: timestamp,
  updatedAt: timestamp,
})

export const deployedOutput = z
  .object({ dev: z.number().optional(), staging: z.number().optional(), prod: z.number().optional() })
  .describe('Version live on each stage')

export const functionSummaryOutput = z.object({
  name: z.string(),
  latestVersion: z.number().describe('Highest published version number (0: never published)'),
  deployed: deployedOutput,
  updatedAt: timestamp,
})

export const functionDetailOutput = functionSummaryOutput.extend({
  files: z.record(z.string(), z.string()).describe('Draft source files by path; index.ts is the entry'),
  plugins,
  createdAt: timestamp,
  draftChanged: z.boolean().describe('Whether the draft differs from the latest version'),
})

export const metadataOutput = z.object({
  description: z.string(),
  inputSchema: z.record(z.string(), z.unknown()).nullable(),
  outputSchema: z.record(z.string(), z.unknown()).nullable(),
})

export const versionSummaryOutput = z.object({
  number: z.number(),
  sourceHash: z.string(),
  message: z.string(),
  description: z.string(),
  createdAt: timestamp,
})

export const deploymentChangeOutput = z.object({
  function: z.string(),
  stage,
  action: z.enum(['publish', 'promote', 'rollback', 'undeploy']),
  fromVersion: z.number().nullable(),
  toVersion: z.number().nullable(),
  changed: z.boolean().describe('False when the stage already ran that version'),
  seq: z.number().nullable().describe('Position in the deployment history'),
})

export const historyEntryOutput = z.object({
  seq: z.number(),
  function: z.string(),
  stage,
  action: z.enum(['publish', 'promote', 'rollback', 'undeploy']),
  fromVersion: z.number().nullable(),
  toVersion: z.number().nullable(),
  sourceStage: stage.nullable(),
  at: timestamp,
})

export const logLineOutput = z.object({ level: z.enum(['debug', 'info', 'warn', 'error']), message: z.string(), at: timestamp })

export const outcomeOutput = z
  .object({
    ok: z.boolean(),
    status: z.number().describe('HTTP status the call maps to'),
    value: z.unknown().optional().describe('What the function returned (ok)'),
    code: z.string().optional().describe('Error code (not ok), e.g. invalid_input, function_error'),
    message: z.string().optional().describe('Error message (not ok)'),
    details: z.record(z.string(), z.unknown()).optional(),
  })
  .describe('ok with the returned value, or the failure the function produced')

export const invocationOutput = z.object({
  requestId: z.string(),
  version: z.number().describe('Version that ran (0 for a draft)'),
  durationMs: z.number(),
  outcome: outcomeOutput,
  logs: z.array(logLineOutput).describe('Lines the function logged with ctx.log'),
})

export const applicationOutput = z.object({ id: z.string(), name: z.string(), description: z.string(), createdAt: timestamp })

export const grantOutput = z.object({
  id: z.string(),
  applicationId: z.string(),
  gatewayId: z.string(),
  stage,
  status: z.enum(['active', 'revoked']),
  keyPreview: z.string().describe('Non-secret start of the key'),
  createdAt: timestamp,
  rotatedAt: timestamp.nullable(),
  revokedAt: timestamp.nullable(),
})

export const grantWithKeyOutput = grantOutput.extend({
  apiKey: z.string().describe('The API key. Shown only now: store it, it cannot be read again'),
})

export const variableOutput = z.object({
  name: z.string(),
  stage,
  secret: z.boolean(),
  value: z.string().optional().describe('Plain variables only; a secret value is never returned'),
  createdAt: timestamp,
  updatedAt: timestamp,
})

export const logEntryOutput = z.object({
  at: timestamp,
  requestId: z.string(),
  stage: z.string(),
  function: z.string(),
  version: z.number().nullable(),
  method: z.string().describe('HTTP method, or MCP / CHAT / DRAFT for other surfaces'),
  path: z.string(),
  status: z.number(),
  durationMs: z.number(),
  consumer: z.string().nullable().describe('Application id of the caller'),
  error: z.object({ code: z.string(), message: z.string() }).nullable(),
  lines: z.array(logLineOutput),
})
