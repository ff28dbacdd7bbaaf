/**
 * Gateway plugins: the APISIX plugins a gateway, an environment or a function may configure,
 * validated against APISIX's own plugin schemas, and merged into the set one route runs.
 *
 * Confs are APISIX plugin confs, same names and fields. Validation reads the published schemas
 * from `<contracts>/apisix-admin/plugins/<name>.json` at first use (see `pluginContractsDir`) and
 * runs them the way APISIX does: its validator fills `default`s while validating, and some schemas
 * (limit-count, limit-req: `if policy = redis then required redis_host`) only hold once
 * `policy: "local"` is filled in. So one pass fills defaults on a clone, a second checks the
 * filled clone; the filled conf is what callers store.
 */
import { existsSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv'
import addFormatsModule from 'ajv-formats'
import { z } from 'zod'
import { ImprunError } from '../errors.ts'

// ajv-formats is CommonJS: Node hands over `module.exports` (the plugin, which also carries
// `.default`); TypeScript under nodenext types the default import as the module. `.default` is
// the plugin in both views.
const addFormats = addFormatsModule.default

export const pluginConfSchema = z
  .record(z.string(), z.unknown())
  .describe('One APISIX plugin conf (the fields of that plugin\'s schema)')

export const pluginConfigsSchema = z
  .record(z.string(), pluginConfSchema)
  .describe('APISIX plugin confs by plugin name, e.g. {"limit-count": {"count": 100, "time_window": 60}}')

export const pluginPatchSchema = z
  .record(z.string(), pluginConfSchema.nullable())
  .describe('Plugin name → new conf (replaces that plugin\'s conf whole) or null (removes it); plugins not named are kept')

/** One plugin conf, as APISIX takes it. */
export type PluginConf = z.infer<typeof pluginConfSchema>
/** Plugin name → conf. */
export type PluginConfigs = z.infer<typeof pluginConfigsSchema>
/** A merge patch of plugin confs: name → conf that replaces that plugin's conf, or null to remove it. */
export type PluginPatch = z.infer<typeof pluginPatchSchema>

/**
 * The plugins a user may configure, in APISIX execution order (plugin priority, highest first).
 * Left out on purpose: `jwt-auth` (its schema is fine, but a route conf is useless without jwt
 * credentials on consumers, which the platform does not manage) and `traffic-split` (its confs
 * name upstream nodes, i.e. let a tenant send gateway traffic to any host).
 */
export const supportedPlugins = [
  {
    name: 'cors',
    description: 'CORS response headers: allow_origins, allow_methods, allow_headers, expose_headers, max_age, allow_credential. On by default with "*".',
  },
  {
    name: 'ip-restriction',
    description: 'Allow (whitelist) or deny (blacklist) client IPv4/IPv6 addresses and CIDR ranges; response_code 403 or 404.',
  },
  {
    name: 'key-auth',
    description: 'Require an application API key, read from the request header `header` (default "apikey") or query parameter `query` (default "apikey"); hide_credentials strips it before the function.',
  },
  {
    name: 'proxy-rewrite',
    description: 'Rewrite the request sent to the function: uri, regex_uri, method, host, headers (set/add/remove).',
  },
  {
    name: 'limit-count',
    description: 'Quota of `count` requests per `time_window` seconds (fixed or sliding window), per `key` (default remote_addr); counters are local to each gateway node.',
  },
  {
    name: 'limit-req',
    description: 'Leaky-bucket rate limit: `rate` requests per second plus `burst`, per `key` (required, e.g. remote_addr); local counters.',
  },
] as const satisfies ReadonlyArray<{ name: string; description: string }>

export type SupportedPluginName = (typeof supportedPlugins)[number]['name']

const supportedNames: ReadonlySet<string> = new Set(supportedPlugins.map((plugin) => plugin.name))

export function isSupportedPlugin(name: string): name is SupportedPluginName {
  return supportedNames.has(name)
}

export interface PluginSchemaOptions {
  /**
   * The contracts folder (the one holding `apisix-admin/plugins/`). Default: the environment
   * variable `IMPRUN_CONTRACTS_DIR`, else the copies shipped in `apisix-schemas/` beside this file.
   */
  contractsDir?: string
}

/** The schemas shipped with imprun (copies of the contracts folder's, kept equal by a test). */
export const shippedSchemasDir = resolve(import.meta.dirname, 'apisix-schemas')

/** Where the APISIX schemas are read from; read anew on each call, so the environment can change. */
export function pluginContractsDir(options: PluginSchemaOptions = {}): string {
  const fromEnvironment = process.env.IMPRUN_CONTRACTS_DIR
  if (options.contractsDir !== undefined) return resolve(options.contractsDir)
  if (fromEnvironment !== undefined && fromEnvironment !== '') return resolve(fromEnvironment)
  return shippedSchemasDir
}

/** APISIX skips a plugin whose conf has `_meta.disable: true` (apisix/plugin.lua `check_disable`). */
export function isPluginDisabled(conf: unknown): boolean {
  if (!isPlainObject(conf)) return false
  const meta = conf._meta
  return isPlainObject(meta) && meta.disable === true
}

/**
 * Checks plugin confs and returns them with the schema defaults filled in (deep copies).
 * Throws `invalid_plugin_config` naming the plugin and the field; `internal` when the schema
 * files cannot be read (validation is never skipped).
 *
 * A conf that is only `{_meta: {disable: true}}` is a disable marker: it switches off a plugin
 * inherited from an outer layer (see `mergePluginConfigs`) and is returned as given. Any other
 * conf, disabled or not, must satisfy the plugin's schema.
 */
export function validatePluginConfigs(plugins: unknown, options: PluginSchemaOptions = {}): PluginConfigs {
  return validateEntries(plugins, options, false) as PluginConfigs
}

/**
 * Checks a plugin patch: each conf as `validatePluginConfigs` does (defaults filled), each name,
 * also one mapped to null, must be a supported plugin. Same `invalid_plugin_config` errors.
 */
export function validatePluginPatch(patch: unknown, options: PluginSchemaOptions = {}): PluginPatch {
  return validateEntries(patch, options, true)
}

/** Both of the above: `removals` allows null (remove that plugin) in place of a conf. */
function validateEntries(plugins: unknown, options: PluginSchemaOptions, removals: boolean): PluginPatch {
  if (!isPlainObject(plugins)) {
    throw new ImprunError('invalid_plugin_config', `plugins must be an object mapping plugin names to their confs${removals ? ' or null' : ''}`, {
      details: { errors: [{ path: '', message: 'must be an object' }] },
    })
  }
  const result: PluginPatch = {}
  for (const [name, conf] of Object.entries(plugins)) {
    if (removals && conf === null) {
      checkPluginName(name)
      result[name] = null
    } else {
      result[name] = validatePluginConf(name, conf, options)
    }
  }
  return result
}

/**
 * The store update that applies a validated patch to the plugin map at `field`: one `$set` /
 * `$unset` per plugin on its dotted path, so a single atomic write that leaves the plugins not
 * named alone (two patches of different plugins never lose each other's change). Supported
 * plugin names hold no dots or `$`, which is what makes the dotted paths safe.
 */
export function pluginPatchUpdate(field: string, patch: PluginPatch, set: Record<string, unknown> = {}): Record<string, Record<string, unknown>> {
  const setFields: Record<string, unknown> = { ...set }
  const unsetFields: Record<string, ''> = {}
  for (const [name, conf] of Object.entries(patch)) {
    checkPluginName(name)
    if (conf === null) unsetFields[`${field}.${name}`] = ''
    else setFields[`${field}.${name}`] = conf
  }
  const update: Record<string, Record<string, unknown>> = {}
  // MongoDB before 5.0 rejects an empty operator document.
  if (Object.keys(setFields).length > 0) update.$set = setFields
  if (Object.keys(unsetFields).length > 0) update.$unset = unsetFields
  return update
}

function checkPluginName(name: string): asserts name is SupportedPluginName {
  if (isSupportedPlugin(name)) return
  const supported = supportedPlugins.map((plugin) => plugin.name)
  throw new ImprunError(
    'invalid_plugin_config',
    `plugins.${name}: unknown plugin '${name}'; supported plugins: ${supported.join(', ')}`,
    { details: { plugin: name, supported, errors: [{ path: '', message: 'unknown plugin' }] } },
  )
}

function validatePluginConf(name: string, conf: unknown, options: PluginSchemaOptions): PluginConf {
  checkPluginName(name)
  if (!isPlainObject(conf)) throw confError(name, [{ path: '', message: 'must be an object' }])
  let filled: PluginConf
  try {
    filled = structuredClone(conf)
  } catch (error) {
    throw new ImprunError('invalid_plugin_config', `plugins.${name}: must be plain JSON data`, {
      details: { plugin: name, errors: [{ path: '', message: 'must be plain JSON data' }] },
      cause: error,
    })
  }

  const validators = pluginValidators(name, options)
  if (isDisableMarker(filled)) {
    if (!validators.disableMarker(filled)) throw confError(name, ajvIssues(validators.disableMarker.errors))
    const restricted = metaIssues(filled)
    if (restricted.length > 0) throw confError(name, restricted)
    return filled
  }
  validators.fillDefaults(filled)
  if (!validators.check(filled)) throw confError(name, ajvIssues(validators.check.errors))
  const restricted = platformIssues(name, filled)
  if (restricted.length > 0) throw confError(name, restricted)
  return filled
}

/**
 * Layers plugin confs, later layers winning: a plugin named in a later layer REPLACES the earlier
 * conf as a whole, as APISIX does between service/plugin_config and route (apisix/plugin.lua
 * `merge_service_route`: `new_conf.value.plugins[name] = conf`; plugin_config.lua `merge` keeps
 * the route's conf for a name both have). A conf with `_meta.disable: true` removes the plugin,
 * which is what APISIX's filter does with it at request time. Returns deep copies.
 */
export function mergePluginConfigs(layers: readonly PluginConfigs[]): PluginConfigs {
  const merged: PluginConfigs = {}
  for (const layer of layers) {
    for (const [name, conf] of Object.entries(layer)) {
      if (name === '__proto__') continue // never a plugin; assigning it would swap the prototype
      if (isPluginDisabled(conf)) delete merged[name]
      else merged[name] = structuredClone(conf)
    }
  }
  return merged
}

/** The CORS conf every route starts from: APISIX's cors defaults (the schema defaults of `{}`). */
export function baseCorsConf(options: PluginSchemaOptions = {}): PluginConf {
  const base = validatePluginConfigs({ cors: {} }, options).cors
  if (base === undefined) throw new ImprunError('internal', 'base cors conf was not produced')
  return base
}

export interface PluginLayers {
  gateway?: PluginConfigs
  environment?: PluginConfigs
  function?: PluginConfigs
}

/**
 * The plugins one function's route runs: base CORS < gateway < environment < function.
 * The layers are expected to be validated already (as stored); nothing here re-validates them.
 */
export function effectivePlugins(layers: PluginLayers, options: PluginSchemaOptions = {}): PluginConfigs {
  return mergePluginConfigs([
    { cors: baseCorsConf(options) },
    layers.gateway ?? {},
    layers.environment ?? {},
    layers.function ?? {},
  ])
}

// ---------------------------------------------------------------------------------------------
// Schema loading and compilation (once per schema file)
// ---------------------------------------------------------------------------------------------

interface PluginValidators {
  /** Pass 1: fills defaults in place; its verdict is ignored. */
  fillDefaults: ValidateFunction
  /** Pass 2: checks the filled conf. */
  check: ValidateFunction
  /** Checks a bare `{_meta: …}` disable marker against the schema's `_meta`. */
  disableMarker: ValidateFunction
}

let compilers: { fill: Ajv; check: Ajv } | undefined
const validatorsBySchemaFile = new Map<string, PluginValidators>()

function getCompilers(): { fill: Ajv; check: Ajv } {
  if (compilers === undefined) {
    // strict: false because the files carry APISIX's non-standard `encrypt_fields` annotation.
    const fill = new Ajv({ strict: false, allErrors: true, useDefaults: true })
    const check = new Ajv({ strict: false, allErrors: true })
    addFormats(fill)
    addFormats(check)
    compilers = { fill, check }
  }
  return compilers
}

function pluginValidators(name: SupportedPluginName, options: PluginSchemaOptions): PluginValidators {
  const contractsDir = pluginContractsDir(options)
  const file = join(contractsDir, 'apisix-admin', 'plugins', `${name}.json`)
  const cached = validatorsBySchemaFile.get(file)
  if (cached !== undefined) return cached

  const schema = readSchema(name, file)
  const properties = isPlainObject(schema.properties) ? schema.properties : {}
  // A schema without `_meta` allows none: `false` rejects the key (the files do not set
  // additionalProperties: false, so the schema itself would let it through).
  const metaSchema = properties._meta ?? false
  const { fill, check } = getCompilers()
  try {
    const validators: PluginValidators = {
      // Top-level defaults first, then the whole schema: ajv evaluates `if` before it fills the
      // `properties` defaults of the same schema, so limit-count's `if policy = redis` would match
      // an absent policy and fill the redis_* defaults; APISIX fills `policy: "local"` first.
      fillDefaults: fill.compile({ allOf: [{ properties }, schema] }),
      check: check.compile(metaSchema === false ? { allOf: [schema, { properties: { _meta: false } }] } : schema),
      disableMarker: check.compile({
        type: 'object',
        properties: { _meta: metaSchema },
        required: ['_meta'],
        additionalProperties: false,
      }),
    }
    validatorsBySchemaFile.set(file, validators)
    return validators
  } catch (error) {
    throw new ImprunError('internal', `the APISIX schema ${file} for plugin '${name}' does not compile: ${errorMessage(error)}`, {
      details: { plugin: name, file },
      cause: error,
    })
  }
}

function readSchema(name: string, file: string): Record<string, unknown> {
  if (!existsSync(file)) {
    throw new ImprunError(
      'internal',
      `the APISIX schema for plugin '${name}' was not found at ${file}; ` +
        'set IMPRUN_CONTRACTS_DIR to the contracts folder (the one holding apisix-admin/plugins/)',
      { details: { plugin: name, file } },
    )
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'))
  } catch (error) {
    throw new ImprunError('internal', `the APISIX schema ${file} for plugin '${name}' cannot be read: ${errorMessage(error)}`, {
      details: { plugin: name, file },
      cause: error,
    })
  }
  if (!isPlainObject(parsed)) {
    throw new ImprunError('internal', `the APISIX schema ${file} for plugin '${name}' is not a JSON object`, {
      details: { plugin: name, file },
    })
  }
  return parsed
}

// ---------------------------------------------------------------------------------------------
// Platform rules beyond the APISIX schemas
// ---------------------------------------------------------------------------------------------

interface ConfIssue {
  path: string
  message: string
}

/**
 * Confs APISIX accepts but a shared, multi-tenant gateway must not: they run code in the
 * gateway, reach hosts the tenant picks, or share state across tenants. Plus the one string
 * form of limit-count values that can only ever fail at request time.
 */
function platformIssues(name: SupportedPluginName, conf: PluginConf): ConfIssue[] {
  const issues = metaIssues(conf)
  if ((name === 'limit-count' || name === 'limit-req') && conf.policy !== 'local') {
    issues.push({ path: '/policy', message: `must be "local": other policies make the gateway connect to a Redis host named in the conf` })
  }
  if (name === 'limit-count') {
    if (conf.group !== undefined) {
      issues.push({ path: '/group', message: 'is not allowed: a group shares counters and conf with every route of the gateway using that name' })
    }
    issues.push(...limitValueIssues('/count', conf.count), ...limitValueIssues('/time_window', conf.time_window))
    if (Array.isArray(conf.rules)) {
      conf.rules.forEach((rule: unknown, index) => {
        if (!isPlainObject(rule)) return
        issues.push(
          ...limitValueIssues(`/rules/${index}/count`, rule.count),
          ...limitValueIssues(`/rules/${index}/time_window`, rule.time_window),
        )
      })
    }
  }
  if (name === 'key-auth' && conf.anonymous_consumer !== undefined) {
    issues.push({ path: '/anonymous_consumer', message: 'is not allowed: it names a gateway-wide consumer; leave key-auth off for anonymous access' })
  }
  return issues
}

function metaIssues(conf: PluginConf): ConfIssue[] {
  const meta = conf._meta
  if (!isPlainObject(meta)) return []
  const issues: ConfIssue[] = []
  if (meta.pre_function !== undefined) {
    issues.push({ path: '/_meta/pre_function', message: 'is not allowed: it runs Lua code inside the shared gateway' })
  }
  if (meta.filter !== undefined) {
    issues.push({ path: '/_meta/filter', message: 'is not supported: the gateway compiles it and a bad expression would be rejected only there' })
  }
  return issues
}

/**
 * limit-count takes a string count/time_window and resolves `$variables` in it per request, then
 * needs a positive integer (apisix/plugins/limit-count/init.lua `resolve_var`). A string with no
 * variable in it must therefore already be one, or every request fails with 500.
 */
function limitValueIssues(path: string, value: unknown): ConfIssue[] {
  if (typeof value !== 'string' || value.includes('$')) return []
  if (/^[0-9]+$/.test(value) && Number(value) > 0) return []
  return [{ path, message: 'must be a positive integer, or a string with a $variable that resolves to one' }]
}

// ---------------------------------------------------------------------------------------------
// Errors and small helpers
// ---------------------------------------------------------------------------------------------

const pathsInMessage = 3
const issuesInDetails = 20

function confError(plugin: string, issues: ConfIssue[]): ImprunError {
  // The message names the first issue of the first few paths; composite keywords (oneOf, anyOf)
  // report every branch, and the full list is in `details.errors`.
  const firstByPath = new Map<string, string>()
  for (const issue of issues) if (!firstByPath.has(issue.path)) firstByPath.set(issue.path, issue.message)
  const shown = [...firstByPath].slice(0, pathsInMessage).map(([path, message]) => `plugins.${plugin}${path}: ${clip(message)}`)
  const hidden = issues.length - shown.length
  const more = hidden > 0 ? ` (${hidden} more in details.errors)` : ''
  return new ImprunError('invalid_plugin_config', shown.join('; ') + more, {
    details: { plugin, errors: issues.slice(0, issuesInDetails) },
  })
}

function ajvIssues(errors: ErrorObject[] | null | undefined): ConfIssue[] {
  return (errors ?? []).map((error) => {
    const additional = error.keyword === 'additionalProperties' ? error.params.additionalProperty : undefined
    if (typeof additional === 'string') return { path: error.instancePath, message: `has unknown property '${additional}'` }
    if (error.keyword === 'false schema') return { path: error.instancePath, message: 'is not allowed' }
    return { path: error.instancePath, message: error.message ?? error.keyword }
  })
}

function clip(text: string): string {
  return text.length > 160 ? `${text.slice(0, 157)}...` : text
}

function isDisableMarker(conf: PluginConf): boolean {
  const keys = Object.keys(conf)
  return keys.length === 1 && keys[0] === '_meta' && isPluginDisabled(conf)
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
