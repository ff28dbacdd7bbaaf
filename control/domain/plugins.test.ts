import { test } from 'node:test'
import assert from 'node:assert/strict'
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { isImprunError, type ImprunError } from '../errors.ts'
import {
  baseCorsConf,
  effectivePlugins,
  isPluginDisabled,
  mergePluginConfigs,
  pluginConfigsSchema,
  pluginContractsDir,
  shippedSchemasDir,
  supportedPlugins,
  validatePluginConfigs,
  type PluginConfigs,
} from './plugins.ts'

/** The project's contracts folder, beside the repository (present in development and CI). */
const contractsPlugins = resolve(import.meta.dirname, '..', '..', '..', 'shared', 'contracts', 'apisix-admin', 'plugins')

function validationError(plugins: unknown): ImprunError {
  try {
    validatePluginConfigs(plugins)
  } catch (error) {
    assert.ok(isImprunError(error, 'invalid_plugin_config'), `expected invalid_plugin_config, got ${String(error)}`)
    return error
  }
  assert.fail(`expected ${JSON.stringify(plugins)} to be rejected`)
}

/** A copy of the contracts folder in a fresh temp directory; removed after the test. */
function copyContracts(t: { after: (fn: () => void) => void }): string {
  const directory = mkdtempSync(join(tmpdir(), 'imprun-contracts-'))
  t.after(() => rmSync(directory, { recursive: true, force: true }))
  cpSync(join(pluginContractsDir(), 'apisix-admin', 'plugins'), join(directory, 'apisix-admin', 'plugins'), { recursive: true })
  return directory
}

test('supportedPlugins lists the six plugins with a description each', () => {
  assert.deepEqual(
    supportedPlugins.map((plugin) => plugin.name).sort(),
    ['cors', 'ip-restriction', 'key-auth', 'limit-count', 'limit-req', 'proxy-rewrite'],
  )
  for (const plugin of supportedPlugins) assert.ok(plugin.description.length > 20, plugin.name)
})

test('limit-count gets APISIX defaults filled and no redis fields', () => {
  const input = { 'limit-count': { count: 10, time_window: 60 } }
  const result = validatePluginConfigs(input)
  assert.deepEqual(result, {
    'limit-count': {
      count: 10,
      time_window: 60,
      policy: 'local',
      key: 'remote_addr',
      key_type: 'var',
      rejected_code: 503,
      window_type: 'fixed',
      show_limit_quota_header: true,
      allow_degradation: false,
      sync_interval: -1,
    },
  })
  assert.deepEqual(input, { 'limit-count': { count: 10, time_window: 60 } }, 'the input is not mutated')
})

test('limit-count keeps given values and accepts rules instead of count/time_window', () => {
  const result = validatePluginConfigs({
    'limit-count': { count: 5, time_window: 1, key: 'http_x_user', rejected_code: 429, rejected_msg: 'slow down' },
  })
  assert.equal(result['limit-count']?.rejected_code, 429)
  assert.equal(result['limit-count']?.key, 'http_x_user')
  assert.equal(result['limit-count']?.rejected_msg, 'slow down')

  const rules = validatePluginConfigs({ 'limit-count': { rules: [{ count: 10, time_window: 60, key: '$remote_addr' }] } })
  assert.deepEqual(rules['limit-count']?.rules, [{ count: 10, time_window: 60, key: '$remote_addr' }])
})

test('key-auth defaults: header and query "apikey", credentials passed on', () => {
  assert.deepEqual(validatePluginConfigs({ 'key-auth': {} }), {
    'key-auth': { header: 'apikey', query: 'apikey', hide_credentials: false, realm: 'key' },
  })
  const custom = validatePluginConfigs({ 'key-auth': { header: 'x-api-key', hide_credentials: true } })
  assert.deepEqual(custom['key-auth'], { header: 'x-api-key', query: 'apikey', hide_credentials: true, realm: 'key' })
})

test('cors, ip-restriction, limit-req and proxy-rewrite accept valid confs', () => {
  const result = validatePluginConfigs({
    cors: { allow_origins: 'https://a.example,https://b.example', allow_credential: true, allow_methods: 'GET,POST' },
    'ip-restriction': { whitelist: ['10.0.0.0/8', '192.168.1.10', '::1', '2001:db8::/32'] },
    'limit-req': { rate: 5, burst: 10, key: 'remote_addr' },
    'proxy-rewrite': { uri: '/v2/items', headers: { set: { 'X-From': 'gateway' } } },
  })
  assert.deepEqual(result.cors, {
    allow_origins: 'https://a.example,https://b.example',
    allow_credential: true,
    allow_methods: 'GET,POST',
    allow_headers: '*',
    max_age: 5,
  })
  assert.deepEqual(result['ip-restriction'], {
    whitelist: ['10.0.0.0/8', '192.168.1.10', '::1', '2001:db8::/32'],
    message: 'Your IP address is not allowed',
    response_code: 403,
  })
  assert.deepEqual(result['limit-req'], {
    rate: 5,
    burst: 10,
    key: 'remote_addr',
    key_type: 'var',
    nodelay: false,
    policy: 'local',
    rejected_code: 503,
    allow_degradation: false,
  })
  assert.equal(result['proxy-rewrite']?.uri, '/v2/items')
  assert.equal(result['proxy-rewrite']?.use_real_request_uri_unsafe, false)
})

test('an empty object is valid and stays empty', () => {
  assert.deepEqual(validatePluginConfigs({}), {})
})

const invalidCases: Array<{ what: string; plugins: Record<string, unknown>; plugin: string; path: string; text?: string }> = [
  { what: 'limit-count count -1', plugins: { 'limit-count': { count: -1, time_window: 60 } }, plugin: 'limit-count', path: '/count', text: 'must be > 0' },
  { what: 'limit-count count "ten"', plugins: { 'limit-count': { count: 'ten', time_window: 60 } }, plugin: 'limit-count', path: '/count' },
  { what: 'limit-count count "0"', plugins: { 'limit-count': { count: '0', time_window: 60 } }, plugin: 'limit-count', path: '/count' },
  { what: 'limit-count count true', plugins: { 'limit-count': { count: true, time_window: 60 } }, plugin: 'limit-count', path: '/count' },
  { what: 'limit-count without time_window', plugins: { 'limit-count': { count: 10 } }, plugin: 'limit-count', path: '', text: "'time_window'" },
  { what: 'limit-count rejected_code 100', plugins: { 'limit-count': { count: 1, time_window: 1, rejected_code: 100 } }, plugin: 'limit-count', path: '/rejected_code' },
  { what: 'limit-count unknown key_type', plugins: { 'limit-count': { count: 1, time_window: 1, key_type: 'header' } }, plugin: 'limit-count', path: '/key_type' },
  { what: 'limit-req without key', plugins: { 'limit-req': { rate: 1, burst: 1 } }, plugin: 'limit-req', path: '', text: "'key'" },
  { what: 'limit-req rate 0', plugins: { 'limit-req': { rate: 0, burst: 1, key: 'remote_addr' } }, plugin: 'limit-req', path: '/rate' },
  { what: 'ip-restriction "not-an-ip"', plugins: { 'ip-restriction': { whitelist: ['10.0.0.1', 'not-an-ip'] } }, plugin: 'ip-restriction', path: '/whitelist/1' },
  { what: 'ip-restriction CIDR /33', plugins: { 'ip-restriction': { blacklist: ['10.0.0.0/33'] } }, plugin: 'ip-restriction', path: '/blacklist/0' },
  { what: 'ip-restriction with neither list', plugins: { 'ip-restriction': {} }, plugin: 'ip-restriction', path: '' },
  { what: 'ip-restriction with both lists', plugins: { 'ip-restriction': { whitelist: ['10.0.0.1'], blacklist: ['10.0.0.2'] } }, plugin: 'ip-restriction', path: '' },
  { what: 'cors allow_origins as an array', plugins: { cors: { allow_origins: ['*'] } }, plugin: 'cors', path: '/allow_origins', text: 'must be string' },
  { what: 'cors allow_origins without scheme', plugins: { cors: { allow_origins: 'a.example' } }, plugin: 'cors', path: '/allow_origins' },
  { what: 'cors max_age 1.5', plugins: { cors: { max_age: 1.5 } }, plugin: 'cors', path: '/max_age' },
  { what: 'key-auth header as a number', plugins: { 'key-auth': { header: 5 } }, plugin: 'key-auth', path: '/header' },
  { what: 'proxy-rewrite uri without /', plugins: { 'proxy-rewrite': { uri: 'items' } }, plugin: 'proxy-rewrite', path: '/uri' },
  { what: 'proxy-rewrite unknown method', plugins: { 'proxy-rewrite': { method: 'FETCH' } }, plugin: 'proxy-rewrite', path: '/method' },
]

for (const { what, plugins, plugin, path, text } of invalidCases) {
  test(`rejects ${what} with the plugin and path in the message`, () => {
    const error = validationError(plugins)
    assert.equal(error.status, 400)
    assert.ok(error.message.startsWith(`plugins.${plugin}${path}: `), error.message)
    if (text !== undefined) assert.ok(error.message.includes(text), error.message)
    assert.equal(error.details?.plugin, plugin)
    const errors = error.details?.errors as Array<{ path: string; message: string }>
    assert.ok(errors.length > 0)
    assert.ok(errors.some((entry) => entry.path === path && entry.message.length > 0))
  })
}

test('rejects an unknown plugin, naming it and listing the supported ones', () => {
  const error = validationError({ cors: {}, foo: { bar: 1 } })
  assert.match(error.message, /plugins\.foo: unknown plugin 'foo'/)
  for (const plugin of supportedPlugins) assert.ok(error.message.includes(plugin.name))
  assert.equal(error.details?.plugin, 'foo')
  assert.deepEqual(error.details?.supported, supportedPlugins.map((plugin) => plugin.name))
})

test('rejects APISIX plugins left out of the platform', () => {
  assert.match(validationError({ 'jwt-auth': {} }).message, /unknown plugin 'jwt-auth'/)
  assert.match(validationError({ 'traffic-split': {} }).message, /unknown plugin 'traffic-split'/)
  assert.match(validationError(JSON.parse('{"__proto__": {}}')).message, /unknown plugin '__proto__'/)
})

test('rejects plugins that are not an object of objects', () => {
  for (const plugins of [null, [], 'cors', 3, undefined]) validationError(plugins)
  const error = validationError({ cors: 'yes' })
  assert.equal(error.message, 'plugins.cors: must be an object')
  validationError({ cors: [] })
  validationError({ cors: null })
})

test('_meta: disable accepted on a full conf, unknown or ill-typed fields rejected', () => {
  const disabled = validatePluginConfigs({ 'limit-count': { count: 1, time_window: 1, _meta: { disable: true } } })
  assert.deepEqual(disabled['limit-count']?._meta, { disable: true })
  assert.equal(disabled['limit-count']?.policy, 'local')

  const priority = validatePluginConfigs({ cors: { _meta: { priority: 10, error_response: 'nope' } } })
  assert.deepEqual(priority.cors?._meta, { priority: 10, error_response: 'nope' })

  assert.match(validationError({ cors: { _meta: { disabled: true } } }).message, /^plugins\.cors\/_meta: has unknown property 'disabled'/)
  assert.match(validationError({ cors: { _meta: { disable: 'yes' } } }).message, /^plugins\.cors\/_meta\/disable: must be boolean/)
  assert.match(validationError({ cors: { _meta: 'off' } }).message, /^plugins\.cors\/_meta: must be object/)
})

test('a bare {_meta: {disable: true}} marker is valid without the plugin\'s required fields', () => {
  const result = validatePluginConfigs({
    'limit-count': { _meta: { disable: true } },
    'ip-restriction': { _meta: { disable: true } },
  })
  assert.deepEqual(result, { 'limit-count': { _meta: { disable: true } }, 'ip-restriction': { _meta: { disable: true } } })
  // Not disabled, or disabled with other fields: the whole schema applies.
  validationError({ 'limit-count': { _meta: { disable: false } } })
  validationError({ 'limit-count': { count: 1, _meta: { disable: true } } })
  validationError({ 'limit-count': { _meta: { disable: true, pre_function: 'return' } } })
})

test('platform rules: no Lua, no Redis hosts, no shared groups or consumers', () => {
  const cases: Array<[Record<string, unknown>, string]> = [
    [{ cors: { _meta: { pre_function: 'return function() end' } } }, 'plugins.cors/_meta/pre_function: '],
    [{ cors: { _meta: { filter: [['arg_a', '==', '1']] } } }, 'plugins.cors/_meta/filter: '],
    [{ 'limit-count': { count: 1, time_window: 1, policy: 'redis', redis_host: 'redis.internal' } }, 'plugins.limit-count/policy: '],
    [{ 'limit-req': { rate: 1, burst: 1, key: 'remote_addr', policy: 'redis-cluster', redis_cluster_nodes: ['a:1'], redis_cluster_name: 'x' } }, 'plugins.limit-req/policy: '],
    [{ 'limit-count': { count: 1, time_window: 1, group: 'shared' } }, 'plugins.limit-count/group: '],
    [{ 'key-auth': { anonymous_consumer: 'someone' } }, 'plugins.key-auth/anonymous_consumer: '],
    [{ 'limit-count': { rules: [{ count: 'many', time_window: 60, key: '$remote_addr' }] } }, 'plugins.limit-count/rules/0/count: '],
  ]
  for (const [plugins, prefix] of cases) {
    const error = validationError(plugins)
    assert.ok(error.message.startsWith(prefix), `${prefix} ← ${error.message}`)
  }
  // A redis policy without redis_host fails APISIX's own schema first.
  assert.match(validationError({ 'limit-count': { count: 1, time_window: 1, policy: 'redis' } }).message, /redis_host/)
})

test('limit-count string values: digits or a $variable', () => {
  const result = validatePluginConfigs({ 'limit-count': { count: '100', time_window: '$http_x_window' } })
  assert.equal(result['limit-count']?.count, '100')
  assert.equal(result['limit-count']?.time_window, '$http_x_window')
})

test('the validated confs are copies: mutating the result leaves the input alone', () => {
  const input = { 'ip-restriction': { whitelist: ['10.0.0.1'] } }
  const result = validatePluginConfigs(input)
  ;(result['ip-restriction']?.whitelist as string[]).push('10.0.0.2')
  assert.deepEqual(input, { 'ip-restriction': { whitelist: ['10.0.0.1'] } })
  assert.deepEqual(validatePluginConfigs(input)['ip-restriction']?.whitelist, ['10.0.0.1'])
})

test('mergePluginConfigs: a later layer replaces the whole conf of a plugin it names', () => {
  const merged = mergePluginConfigs([
    { cors: { allow_origins: '*', max_age: 5 }, 'key-auth': { header: 'apikey' } },
    { cors: { allow_origins: 'https://a.example' } },
    { 'limit-count': { count: 1, time_window: 1 } },
  ])
  assert.deepEqual(merged, {
    cors: { allow_origins: 'https://a.example' },
    'key-auth': { header: 'apikey' },
    'limit-count': { count: 1, time_window: 1 },
  })
  assert.deepEqual(mergePluginConfigs([]), {})
})

test('mergePluginConfigs: _meta.disable removes an inherited plugin; a later layer may add it back', () => {
  const gateway = { 'key-auth': { header: 'apikey' }, cors: { allow_origins: '*' } }
  const environment = { 'key-auth': { _meta: { disable: true } } }
  assert.deepEqual(mergePluginConfigs([gateway, environment]), { cors: { allow_origins: '*' } })
  // Disabled with a full conf removes it too.
  assert.deepEqual(mergePluginConfigs([gateway, { cors: { allow_origins: '*', _meta: { disable: true } } }]), {
    'key-auth': { header: 'apikey' },
  })
  const again = mergePluginConfigs([gateway, environment, { 'key-auth': { header: 'x-key' } }])
  assert.deepEqual(again['key-auth'], { header: 'x-key' })
  // Disabling a plugin nobody set is a no-op.
  assert.deepEqual(mergePluginConfigs([{}, { 'limit-req': { _meta: { disable: true } } }]), {})
})

test('mergePluginConfigs returns deep copies', () => {
  const gateway: PluginConfigs = { 'ip-restriction': { whitelist: ['10.0.0.1'] } }
  const merged = mergePluginConfigs([gateway])
  ;(merged['ip-restriction']?.whitelist as string[]).push('10.0.0.2')
  merged.cors = { allow_origins: '*' }
  assert.deepEqual(gateway, { 'ip-restriction': { whitelist: ['10.0.0.1'] } })
})

test('isPluginDisabled reads _meta.disable === true only', () => {
  assert.equal(isPluginDisabled({ _meta: { disable: true } }), true)
  assert.equal(isPluginDisabled({ _meta: { disable: false } }), false)
  assert.equal(isPluginDisabled({ _meta: { disable: 'true' } }), false)
  assert.equal(isPluginDisabled({ disable: true }), false)
  assert.equal(isPluginDisabled(null), false)
})

test('baseCorsConf is APISIX\'s cors defaults', () => {
  assert.deepEqual(baseCorsConf(), {
    allow_origins: '*',
    allow_methods: '*',
    allow_headers: '*',
    allow_credential: false,
    max_age: 5,
  })
})

test('effectivePlugins: base cors < gateway < environment < function, per plugin name', () => {
  const gateway = validatePluginConfigs({
    'key-auth': {},
    'limit-count': { count: 1000, time_window: 3600 },
    cors: { allow_origins: 'https://app.example' },
  })
  const environment = validatePluginConfigs({
    'limit-count': { count: 100, time_window: 60, rejected_code: 429 },
    'ip-restriction': { whitelist: ['10.0.0.0/8'] },
  })
  const fn = validatePluginConfigs({
    'limit-count': { count: 5, time_window: 1 },
    'proxy-rewrite': { headers: { set: { 'X-Fn': 'yes' } } },
  })

  assert.deepEqual(effectivePlugins({}), { cors: baseCorsConf() })

  const result = effectivePlugins({ gateway, environment, function: fn })
  assert.deepEqual(Object.keys(result).sort(), ['cors', 'ip-restriction', 'key-auth', 'limit-count', 'proxy-rewrite'])
  assert.deepEqual(result.cors, gateway.cors, 'gateway cors replaces the base')
  assert.deepEqual(result['key-auth'], gateway['key-auth'])
  assert.deepEqual(result['ip-restriction'], environment['ip-restriction'])
  assert.deepEqual(result['limit-count'], fn['limit-count'], 'function limit-count replaces the environment one')
  assert.equal(result['limit-count']?.rejected_code, 503, 'no field-level merge: the environment 429 is not inherited')
  assert.deepEqual(result['proxy-rewrite'], fn['proxy-rewrite'])

  const withoutFunction = effectivePlugins({ gateway, environment })
  assert.deepEqual(withoutFunction['limit-count'], environment['limit-count'])
})

test('effectivePlugins: any layer can switch off an inherited plugin, including the base cors', () => {
  const gateway = validatePluginConfigs({ 'key-auth': {} })
  const environment = validatePluginConfigs({ 'key-auth': { _meta: { disable: true } } })
  const fn = validatePluginConfigs({ cors: { _meta: { disable: true } } })
  assert.deepEqual(effectivePlugins({ gateway, environment }), { cors: baseCorsConf() })
  assert.deepEqual(effectivePlugins({ gateway, function: fn }), { 'key-auth': gateway['key-auth'] })
  assert.deepEqual(effectivePlugins({ gateway, environment, function: fn }), {})
})

test('effectivePlugins returns deep copies of the layers', () => {
  const gateway = validatePluginConfigs({ 'ip-restriction': { whitelist: ['10.0.0.1'] } })
  const snapshot = structuredClone(gateway)
  const result = effectivePlugins({ gateway })
  ;(result['ip-restriction']?.whitelist as string[]).push('10.0.0.2')
  if (result.cors) result.cors.max_age = 600
  assert.deepEqual(gateway, snapshot)
  assert.equal(baseCorsConf().max_age, 5)
})

test('pluginConfigsSchema accepts plugin-name → object maps only', () => {
  assert.ok(pluginConfigsSchema.safeParse({ cors: {}, 'limit-count': { count: 1 } }).success)
  assert.ok(!pluginConfigsSchema.safeParse({ cors: 'on' }).success)
  assert.ok(!pluginConfigsSchema.safeParse([]).success)
})

test('schemas are read from contractsDir / IMPRUN_CONTRACTS_DIR', (t) => {
  const directory = copyContracts(t)
  const corsFile = join(directory, 'apisix-admin', 'plugins', 'cors.json')
  const cors = JSON.parse(readFileSync(corsFile, 'utf8'))
  cors.properties.max_age.default = 99
  writeFileSync(corsFile, JSON.stringify(cors))

  assert.equal(baseCorsConf({ contractsDir: directory }).max_age, 99)

  const previous = process.env.IMPRUN_CONTRACTS_DIR
  process.env.IMPRUN_CONTRACTS_DIR = directory
  try {
    assert.equal(pluginContractsDir(), directory)
    assert.equal(validatePluginConfigs({ cors: {} }).cors?.max_age, 99)
  } finally {
    if (previous === undefined) delete process.env.IMPRUN_CONTRACTS_DIR
    else process.env.IMPRUN_CONTRACTS_DIR = previous
  }
  assert.equal(validatePluginConfigs({ cors: {} }).cors?.max_age, 5)
})

test('each schema file is compiled once', (t) => {
  const directory = copyContracts(t)
  assert.equal(validatePluginConfigs({ 'limit-req': { rate: 1, burst: 1, key: 'remote_addr' } }, { contractsDir: directory })['limit-req']?.policy, 'local')
  rmSync(join(directory, 'apisix-admin', 'plugins', 'limit-req.json'))
  // Still validates (and still rejects) from the compiled schema.
  assert.equal(validatePluginConfigs({ 'limit-req': { rate: 2, burst: 1, key: 'remote_addr' } }, { contractsDir: directory })['limit-req']?.rate, 2)
  assert.throws(() => validatePluginConfigs({ 'limit-req': { rate: 2 } }, { contractsDir: directory }), (error) => isImprunError(error, 'invalid_plugin_config'))
})

test('a missing schema file is an internal error naming the path and IMPRUN_CONTRACTS_DIR', (t) => {
  const directory = mkdtempSync(join(tmpdir(), 'imprun-no-contracts-'))
  t.after(() => rmSync(directory, { recursive: true, force: true }))
  const expected = join(directory, 'apisix-admin', 'plugins', 'cors.json')
  for (const run of [() => validatePluginConfigs({ cors: {} }, { contractsDir: directory }), () => effectivePlugins({}, { contractsDir: directory })]) {
    assert.throws(run, (error) => {
      assert.ok(isImprunError(error, 'internal'))
      assert.equal(error.status, 500)
      assert.ok(error.message.includes(expected), error.message)
      assert.ok(error.message.includes('IMPRUN_CONTRACTS_DIR'), error.message)
      return true
    })
  }
  // No schema is needed to reject an unknown plugin name, but a known one is never waved through.
  assert.throws(() => validatePluginConfigs({ 'key-auth': {} }, { contractsDir: directory }), (error) => isImprunError(error, 'internal'))
})

test('the shipped APISIX schemas are identical to the contracts folder', { skip: !existsSync(contractsPlugins) && 'no ../shared/contracts here' }, () => {
  for (const plugin of supportedPlugins) {
    const shipped = readFileSync(join(shippedSchemasDir, 'apisix-admin', 'plugins', `${plugin.name}.json`), 'utf8')
    const published = readFileSync(join(contractsPlugins, `${plugin.name}.json`), 'utf8')
    assert.equal(shipped, published, `${plugin.name}.json differs from the contracts folder`)
  }
})
