/**
 * Environment variables and secrets, per gateway environment. Functions read them as `ctx.env`.
 * Every value is sealed with the SecretBox before it is stored. A plain variable's value may be
 * read back; a secret's never is: after `set` only its name, stage and timestamps are shown.
 */
import { z } from 'zod'
import { ImprunError, notFound } from '../errors.ts'
import type { Clock, Database, SecretBox, Stage, Store, StoredDocument } from '../ports.ts'
import { checkName, stageSchema } from './names.ts'
import type { GatewayService } from './gateways.ts'

export const variableNameSchema = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'a variable name is letters, digits and _, not starting with a digit')
  .describe('Variable name, e.g. API_BASE_URL (letters, digits, _)')

/** Largest value, bytes (UTF-8). */
export const maxVariableValueBytes = 32 * 1024
/** Variables per environment. */
export const maxVariablesPerEnvironment = 200

export interface VariableRecord extends StoredDocument {
  stage: Stage
  name: string
  secret: boolean
  sealed: string
  createdAt: string
  updatedAt: string
}

export interface Variable {
  name: string
  stage: Stage
  secret: boolean
  /** Present for plain variables only; a secret's value is never returned. */
  value?: string
  createdAt: string
  updatedAt: string
}

export interface VariableServiceOptions {
  store: Store
  clock: Clock
  secretBox: SecretBox
  gateways: GatewayService
}

export class VariableService {
  private readonly options: VariableServiceOptions

  constructor(options: VariableServiceOptions) {
    this.options = options
  }

  private collection(gatewayId: string, database?: Database) {
    return (database ?? this.options.store.gateway(gatewayId)).collection<VariableRecord>('variables')
  }

  async set(gatewayId: string, stageInput: string, nameInput: string, input: { value: string; secret?: boolean }): Promise<Variable> {
    await this.options.gateways.usable(gatewayId)
    const stage = checkName(stageSchema, stageInput, 'stage')
    const name = checkName(variableNameSchema, nameInput, 'variable name')
    if (typeof input.value !== 'string') throw new ImprunError('bad_request', 'a variable value is a string')
    if (Buffer.byteLength(input.value) > maxVariableValueBytes) {
      throw new ImprunError('bad_request', `a variable value is at most ${maxVariableValueBytes} bytes`, { details: { name } })
    }
    const now = new Date(this.options.clock.now()).toISOString()
    const id = variableId(stage, name)
    const record = await this.options.store.gateway(gatewayId).transaction(async (database) => {
      const variables = this.collection(gatewayId, database)
      const existing = await variables.findOne({ _id: id })
      if (!existing && (await variables.countDocuments({ stage })) >= maxVariablesPerEnvironment) {
        throw new ImprunError('bad_request', `an environment holds at most ${maxVariablesPerEnvironment} variables`)
      }
      const next: VariableRecord = {
        _id: id,
        stage,
        name,
        // A secret stays a secret: setting it again without `secret` does not reveal it later.
        secret: input.secret ?? existing?.secret ?? false,
        sealed: this.options.secretBox.seal(input.value),
        createdAt: existing?.createdAt ?? now,
        updatedAt: now,
      }
      const { _id, ...fields } = next
      await variables.replaceOne({ _id: id }, fields, { upsert: true })
      return next
    })
    return this.present(record)
  }

  async list(gatewayId: string, stageInput?: string): Promise<Variable[]> {
    await this.options.gateways.record(gatewayId)
    const filter = stageInput === undefined ? {} : { stage: checkName(stageSchema, stageInput, 'stage') }
    const records = await this.collection(gatewayId).find(filter, { sort: { stage: 1, name: 1 } })
    return records.map((record) => this.present(record))
  }

  async delete(gatewayId: string, stageInput: string, nameInput: string): Promise<void> {
    await this.options.gateways.usable(gatewayId)
    const stage = checkName(stageSchema, stageInput, 'stage')
    const name = checkName(variableNameSchema, nameInput, 'variable name')
    if ((await this.collection(gatewayId).deleteOne({ _id: variableId(stage, name) })) === 0) notFoundVariable(gatewayId, stage, name)
  }

  private present(record: VariableRecord): Variable {
    const variable: Variable = { name: record.name, stage: record.stage, secret: record.secret, createdAt: record.createdAt, updatedAt: record.updatedAt }
    if (!record.secret) variable.value = this.options.secretBox.open(record.sealed)
    return variable
  }
}

export function variableId(stage: Stage, name: string): string {
  return `${stage}:${name}`
}

/** Opens every variable of a set of records into the `ctx.env` object of one environment. */
export function openVariables(records: readonly VariableRecord[], secretBox: SecretBox): Record<string, string> {
  const env: Record<string, string> = {}
  for (const record of records) env[record.name] = secretBox.open(record.sealed)
  return env
}

function notFoundVariable(gatewayId: string, stage: Stage, name: string): never {
  throw notFound('variable', `${gatewayId}/${stage}/${name}`)
}
