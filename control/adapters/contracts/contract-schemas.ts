/**
 * Checks generated objects against the published schemas in the shared contracts folder
 * (`../shared/contracts` beside the repository): Kubernetes 1.34 OpenAPI v3 for built-in kinds,
 * the APISIX Ingress Controller CRDs' openAPIV3Schema, and the APISIX Admin API / standalone
 * schemas with each plugin conf checked against its plugin schema. Used by tests; a clean clone
 * without the folder gets `null` from `contractsDirectory()` and the tests skip.
 *
 * Each check returns a list of readable problems (empty = valid). Beyond the schemas it also
 * checks what the apiserver / APISIX check in code and the schemas cannot say: object names,
 * label syntax, selector ↔ template labels, list-map uniqueness, ports.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { Ajv, type ValidateFunction } from 'ajv'
import addFormatsModule from 'ajv-formats'

const addFormats = addFormatsModule.default

/** The contracts folder as the tests find it: `<repo>/../shared/contracts`. */
export const defaultContractsDirectory = resolve(import.meta.dirname, '..', '..', '..', '..', 'shared', 'contracts')

/** The contracts folder, or null when it is absent (a clean clone elsewhere). */
export function contractsDirectory(directory = defaultContractsDirectory): string | null {
  return existsSync(join(directory, 'README.md')) ? directory : null
}

/** The skip message tests use when the folder is absent. */
export const contractsSkipMessage = `the shared contracts folder is absent (${defaultContractsDirectory}); schema checks need it`

type JsonObject = Record<string, unknown>

export interface ContractSchemas {
  /** A Kubernetes built-in object (Namespace, Deployment, …, ClusterRole) against the 1.34 schemas. */
  kubernetes(manifest: object): string[]
  /** An APISIX Ingress Controller custom resource against its CRD (with the apiserver's defaults). */
  apisixCrd(resource: object): string[]
  /** An Admin API object (`route`, `upstream`, `plugin_config`, `consumer`) with its plugin confs. */
  apisixAdmin(kind: 'route' | 'upstream' | 'plugin_config' | 'consumer', object: object): string[]
  /** A plugin conf (route level, or consumer level for auth plugins). */
  apisixPlugin(name: string, conf: unknown, level?: 'route' | 'consumer'): string[]
  /** A standalone `apisix.yaml` document (already parsed), plugins included. */
  apisixStandalone(document: object): string[]
}

export function loadContractSchemas(directory: string): ContractSchemas {
  const kubernetesDirectory = join(directory, 'kubernetes')
  const kinds = JSON.parse(readFileSync(join(kubernetesDirectory, 'kinds.json'), 'utf8')) as Record<string, { file: string; schema: string }>
  const kube = new Ajv({ allErrors: true, strict: false, formats: { 'int-or-string': true } })
  addFormats(kube)
  for (const file of readdirSync(join(kubernetesDirectory, 'openapi-v3'))) {
    const document = JSON.parse(readFileSync(join(kubernetesDirectory, 'openapi-v3', file), 'utf8')) as JsonObject
    kube.addSchema({ components: document.components }, file)
  }
  // RBAC is not among the contract files: a ClusterRole / Binding is checked structurally below.

  const crd = new Ajv({
    allErrors: true,
    strict: false,
    useDefaults: true,
    keywords: [
      'x-kubernetes-int-or-string', 'x-kubernetes-list-map-keys', 'x-kubernetes-list-type', 'x-kubernetes-map-type',
      'x-kubernetes-preserve-unknown-fields', 'x-kubernetes-validations',
    ],
    formats: { int32: true, int64: true },
  })
  addFormats(crd)
  const crdValidators = new Map<string, ValidateFunction>()
  const crdValidator = (kind: string): ValidateFunction | null => {
    const cached = crdValidators.get(kind)
    if (cached) return cached
    const file = join(directory, 'apisix-crds', 'openapi-v2', `${kind}.v2.json`)
    if (!existsSync(file)) return null
    const validate = crd.compile(JSON.parse(readFileSync(file, 'utf8')) as JsonObject)
    crdValidators.set(kind, validate)
    return validate
  }

  const adminDirectory = join(directory, 'apisix-admin')
  const fill = new Ajv({ strict: false, allErrors: true, useDefaults: true })
  const check = new Ajv({ strict: false, allErrors: true })
  addFormats(fill)
  addFormats(check)
  const objectSchemas: Record<string, JsonObject> = {}
  for (const name of ['route', 'upstream', 'plugin_config', 'consumer', 'credential']) {
    objectSchemas[name] = JSON.parse(readFileSync(join(adminDirectory, `${name}.json`), 'utf8')) as JsonObject
    check.addSchema(objectSchemas[name]!, `${name}.json`)
  }
  const standalone = check.compile(JSON.parse(readFileSync(join(adminDirectory, 'standalone-config.schema.json'), 'utf8')) as JsonObject)
  const pluginValidators = new Map<string, { fill: ValidateFunction; check: ValidateFunction } | null>()
  const pluginValidator = (file: string) => {
    if (pluginValidators.has(file)) return pluginValidators.get(file)!
    const path = join(adminDirectory, 'plugins', file)
    if (!existsSync(path)) {
      pluginValidators.set(file, null)
      return null
    }
    const schema = JSON.parse(readFileSync(path, 'utf8')) as JsonObject
    const properties = (schema.properties ?? {}) as JsonObject
    // Defaults of the top level first (APISIX fills `policy: "local"` before `if policy = redis`).
    const validators = { fill: fill.compile({ allOf: [{ properties }, schema] }), check: check.compile(schema) }
    pluginValidators.set(file, validators)
    return validators
  }

  const apisixPlugin = (name: string, conf: unknown, level: 'route' | 'consumer' = 'route'): string[] => {
    const validators = pluginValidator(level === 'consumer' ? `${name}.consumer.json` : `${name}.json`)
    if (!validators) return [`plugins.${name}: no published schema for plugin '${name}' (${level} level)`]
    const filled = structuredClone(conf)
    validators.fill(filled)
    return validators.check(filled) ? [] : (validators.check.errors ?? []).map((error) => `plugins.${name}${error.instancePath} ${error.message ?? error.keyword}`)
  }

  const pluginsOf = (object: JsonObject, level: 'route' | 'consumer'): string[] => {
    const plugins = object.plugins
    if (plugins === undefined) return []
    if (!isObject(plugins)) return ['plugins must be an object']
    return Object.entries(plugins).flatMap(([name, conf]) => apisixPlugin(name, conf, level))
  }

  const apisixAdmin = (kind: 'route' | 'upstream' | 'plugin_config' | 'consumer', object: object): string[] => {
    const validate = check.getSchema(`${kind}.json`)!
    const value = JSON.parse(JSON.stringify(object)) as JsonObject
    const problems = validate(value) ? [] : (validate.errors ?? []).map((error) => `${kind}${error.instancePath} ${error.message ?? error.keyword}`)
    return [...problems, ...pluginsOf(value, kind === 'consumer' ? 'consumer' : 'route')]
  }

  return {
    kubernetes(manifest) {
      const value = JSON.parse(JSON.stringify(manifest)) as JsonObject
      const key = `${String(value.apiVersion)}/${String(value.kind)}`
      const problems = [...kubernetesRules(value)]
      if (key.startsWith('rbac.authorization.k8s.io/v1/')) return [...problems, ...rbacRules(value)]
      const entry = kinds[key]
      if (!entry) return [`no schema for ${key}`]
      const validate = kube.getSchema(`${entry.file.split('/')[1]}#/components/schemas/${entry.schema}`)
      if (!validate) return [`schema ${entry.schema} not found`]
      if (!validate(value)) problems.push(...(validate.errors ?? []).map((error) => `${key}${error.instancePath} ${error.message ?? error.keyword}`))
      return problems
    },
    apisixCrd(resource) {
      const value = JSON.parse(JSON.stringify(resource)) as JsonObject
      const problems: string[] = []
      if (value.apiVersion !== 'apisix.apache.org/v2') problems.push(`apiVersion must be apisix.apache.org/v2, not ${String(value.apiVersion)}`)
      const validate = crdValidator(String(value.kind))
      if (!validate) return [...problems, `no CRD for kind ${String(value.kind)}`]
      const metadata = isObject(value.metadata) ? value.metadata : {}
      problems.push(...nameProblems('metadata.name', metadata.name, 'subdomain'), ...nameProblems('metadata.namespace', metadata.namespace, 'label'))
      problems.push(...labelProblems(metadata.labels))
      const kind = String(value.kind)
      if (!validate(value)) problems.push(...(validate.errors ?? []).map((error) => `${kind}${error.instancePath} ${error.message ?? error.keyword}`))
      const spec = isObject(value.spec) ? value.spec : {}
      if (kind === 'ApisixRoute' && Array.isArray(spec.http)) {
        const names = spec.http.map((item) => (isObject(item) ? item.name : undefined))
        if (new Set(names).size !== names.length) problems.push('spec.http[].name must be unique (list-map key)')
      }
      if (kind === 'ApisixPluginConfig' && Array.isArray(spec.plugins)) {
        for (const plugin of spec.plugins) if (isObject(plugin)) problems.push(...apisixPlugin(String(plugin.name), plugin.config ?? {}))
      }
      return problems
    },
    apisixAdmin,
    apisixPlugin,
    apisixStandalone(document) {
      const value = JSON.parse(JSON.stringify(document)) as JsonObject
      const problems = standalone(value) ? [] : (standalone.errors ?? []).map((error) => `apisix.yaml${error.instancePath} ${error.message ?? error.keyword}`)
      for (const key of ['routes', 'plugin_configs'] as const) {
        for (const item of asArray(value[key])) if (isObject(item)) problems.push(...pluginsOf(item, 'route'))
      }
      for (const item of asArray(value.consumers)) if (isObject(item)) problems.push(...pluginsOf(item, 'consumer'))
      return problems
    },
  }
}

// ---------------------------------------------------------------------------------------------
// What the apiserver checks in Go (kubernetes/README.md "What schema validation cannot catch")
// ---------------------------------------------------------------------------------------------

const dns1123Label = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/
const dns1123Subdomain = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/
const dns1035Label = /^[a-z]([-a-z0-9]*[a-z0-9])?$/
const labelName = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/
const labelValue = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/
const ianaServiceName = /^(?=.*[a-z])[a-z0-9]([a-z0-9]|-(?!-))*[a-z0-9]?$/
const cluster = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding'])

function nameProblems(path: string, name: unknown, rule: 'label' | 'subdomain' | 'dns1035'): string[] {
  if (typeof name !== 'string') return [`${path} is required`]
  const [pattern, max] = rule === 'label' ? [dns1123Label, 63] : rule === 'dns1035' ? [dns1035Label, 63] : [dns1123Subdomain, 253]
  return pattern.test(name) && name.length <= max ? [] : [`${path} '${name}' is not a valid DNS-1123 ${rule === 'dns1035' ? 'DNS-1035 label' : rule}`]
}

function labelProblems(labels: unknown, path = 'metadata.labels'): string[] {
  if (labels === undefined) return []
  if (!isObject(labels)) return [`${path} must be an object`]
  const problems: string[] = []
  for (const [key, value] of Object.entries(labels)) {
    const slash = key.lastIndexOf('/')
    const prefix = slash >= 0 ? key.slice(0, slash) : null
    const name = slash >= 0 ? key.slice(slash + 1) : key
    if (prefix !== null && (!dns1123Subdomain.test(prefix) || prefix.length > 253)) problems.push(`${path}: bad key prefix '${prefix}'`)
    if (!labelName.test(name) || name.length > 63) problems.push(`${path}: bad key '${key}'`)
    if (typeof value !== 'string' || !labelValue.test(value) || value.length > 63) problems.push(`${path}: bad value for '${key}'`)
  }
  return problems
}

function kubernetesRules(manifest: JsonObject): string[] {
  const problems: string[] = []
  const metadata = isObject(manifest.metadata) ? manifest.metadata : {}
  const kind = String(manifest.kind)
  problems.push(...nameProblems('metadata.name', metadata.name, kind === 'Namespace' ? 'label' : kind === 'Service' ? 'dns1035' : 'subdomain'))
  if (cluster.has(kind)) {
    if (metadata.namespace !== undefined) problems.push(`${kind} is cluster-scoped: no metadata.namespace`)
  } else {
    problems.push(...nameProblems('metadata.namespace', metadata.namespace, 'label'))
  }
  problems.push(...labelProblems(metadata.labels))
  const spec = isObject(manifest.spec) ? manifest.spec : {}
  if (kind === 'Deployment') {
    const selector = isObject(spec.selector) && isObject(spec.selector.matchLabels) ? spec.selector.matchLabels : {}
    const template = isObject(spec.template) ? spec.template : {}
    const templateLabels = isObject(template.metadata) && isObject(template.metadata.labels) ? template.metadata.labels : {}
    if (Object.keys(selector).length === 0) problems.push('spec.selector must not be empty')
    for (const [key, value] of Object.entries(selector)) if (templateLabels[key] !== value) problems.push(`spec.selector ${key}=${String(value)} does not match the template labels`)
    problems.push(...labelProblems(selector, 'spec.selector.matchLabels'), ...labelProblems(templateLabels, 'spec.template.metadata.labels'))
    const podSpec = isObject(template.spec) ? template.spec : {}
    const containers = asArray(podSpec.containers).filter(isObject)
    const names = containers.map((container) => container.name)
    if (new Set(names).size !== names.length) problems.push('container names must be unique')
    for (const container of containers) {
      problems.push(...nameProblems('container name', container.name, 'label'))
      if (typeof container.image !== 'string' || container.image === '') problems.push(`container ${String(container.name)}: image is required`)
      const env = asArray(container.env).filter(isObject).map((entry) => entry.name)
      if (new Set(env).size !== env.length) problems.push(`container ${String(container.name)}: env names must be unique`)
      for (const port of asArray(container.ports).filter(isObject)) {
        problems.push(...portProblems(`container ${String(container.name)} port`, port.containerPort))
        if (port.name !== undefined && (typeof port.name !== 'string' || port.name.length > 15 || !ianaServiceName.test(port.name))) problems.push(`container port name '${String(port.name)}' is not an IANA_SVC_NAME`)
      }
    }
    if (podSpec.restartPolicy !== undefined && podSpec.restartPolicy !== 'Always') problems.push('restartPolicy must be Always')
  }
  if (kind === 'Service') {
    const ports = asArray(spec.ports).filter(isObject)
    for (const port of ports) {
      problems.push(...portProblems('service port', port.port))
      if (ports.length > 1 && typeof port.name !== 'string') problems.push('service ports need names when there is more than one')
      if (typeof port.targetPort === 'number') problems.push(...portProblems('targetPort', port.targetPort))
    }
    problems.push(...labelProblems(spec.selector, 'spec.selector'))
  }
  if (kind === 'HorizontalPodAutoscaler') {
    const min = typeof spec.minReplicas === 'number' ? spec.minReplicas : 1
    if (min < 1 || (typeof spec.maxReplicas === 'number' && min > spec.maxReplicas)) problems.push('HPA needs 1 <= minReplicas <= maxReplicas')
    for (const metric of asArray(spec.metrics).filter(isObject)) {
      if (metric.type === 'Resource') {
        const target = isObject(metric.resource) && isObject(metric.resource.target) ? metric.resource.target : {}
        if (target.type === 'Utilization' && !(typeof target.averageUtilization === 'number' && target.averageUtilization > 0)) problems.push('Utilization target needs averageUtilization > 0')
      }
    }
  }
  if (kind === 'NetworkPolicy') {
    for (const type of asArray(spec.policyTypes)) if (type !== 'Ingress' && type !== 'Egress') problems.push(`policyTypes: bad value ${String(type)}`)
  }
  if (kind === 'LimitRange') {
    for (const limit of asArray(spec.limits).filter(isObject)) if (!['Pod', 'Container', 'PersistentVolumeClaim'].includes(String(limit.type))) problems.push(`LimitRange type ${String(limit.type)}`)
  }
  if (kind === 'Secret' || kind === 'ConfigMap') {
    for (const key of [...Object.keys(isObject(manifest.data) ? manifest.data : {}), ...Object.keys(isObject(manifest.stringData) ? manifest.stringData : {})]) {
      if (!/^[-._a-zA-Z0-9]+$/.test(key) || key.length > 253) problems.push(`data key '${key}' is invalid`)
    }
  }
  return problems
}

const rbacVerbs = new Set(['get', 'list', 'watch', 'create', 'update', 'patch', 'delete', 'deletecollection', '*'])

/** ClusterRole / ClusterRoleBinding: the RBAC schema is not among the contract files. */
function rbacRules(manifest: JsonObject): string[] {
  const problems: string[] = []
  if (manifest.kind === 'ClusterRole' || manifest.kind === 'Role') {
    for (const rule of asArray(manifest.rules)) {
      if (!isObject(rule)) {
        problems.push('rules[] must be objects')
        continue
      }
      if (!Array.isArray(rule.verbs) || rule.verbs.length === 0) problems.push('rules[].verbs is required')
      for (const verb of asArray(rule.verbs)) if (!rbacVerbs.has(String(verb))) problems.push(`unknown verb ${String(verb)}`)
      if (!Array.isArray(rule.apiGroups) || !Array.isArray(rule.resources)) problems.push('rules[] need apiGroups and resources')
    }
  } else if (manifest.kind === 'ClusterRoleBinding' || manifest.kind === 'RoleBinding') {
    const roleRef = isObject(manifest.roleRef) ? manifest.roleRef : {}
    if (roleRef.apiGroup !== 'rbac.authorization.k8s.io' || typeof roleRef.kind !== 'string' || typeof roleRef.name !== 'string') problems.push('roleRef needs apiGroup, kind and name')
    for (const subject of asArray(manifest.subjects)) if (!isObject(subject) || typeof subject.kind !== 'string' || typeof subject.name !== 'string') problems.push('subjects[] need kind and name')
  } else {
    problems.push(`unknown RBAC kind ${String(manifest.kind)}`)
  }
  return problems
}

function portProblems(path: string, port: unknown): string[] {
  return typeof port === 'number' && Number.isInteger(port) && port >= 1 && port <= 65_535 ? [] : [`${path} ${String(port)} is not in 1-65535`]
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function asArray(value: unknown): unknown[] {
  return Array.isArray(value) ? value : []
}
