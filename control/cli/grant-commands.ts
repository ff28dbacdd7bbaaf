/** `imprun grant …`: an application's access to one gateway environment, with its API key. */
import type { Application, Grant, GrantWithKey } from '../domain/access.ts'
import { adminPath } from './admin-client.ts'
import type { AdminCommand, AdminCommandGroup } from './admin-command.ts'
import { formatTable, formatTime } from './table.ts'

const list: AdminCommand = {
  name: 'list',
  summary: 'List grants (keys are never shown again)',
  options: {
    app: { type: 'string', value: 'APP', description: 'Only grants of this application (name or id)' },
    gateway: { type: 'string', value: 'GATEWAY', description: 'Only grants for this gateway' },
  },
  async run(invocation) {
    const { grants } = await invocation.client.get<{ grants: Grant[] }>('/admin/grants', {
      application: invocation.commandLine.string('app'),
      gateway: invocation.commandLine.string('gateway'),
    })
    // Grants carry application ids; the table shows names, which needs the application list.
    const names = new Map<string, string>()
    if (!invocation.json && grants.length > 0) {
      const { applications } = await invocation.client.get<{ applications: Application[] }>('/admin/applications')
      for (const application of applications) names.set(application.id, application.name)
    }
    invocation.print({ grants }, () =>
      grants.length === 0
        ? 'no grants; create one with `imprun grant create <app> <gateway> <stage>`'
        : formatTable(
            ['id', 'application', 'environment', 'status', 'key', 'created'],
            grants.map((grant) => [
              grant.id,
              names.get(grant.applicationId) ?? grant.applicationId,
              `${grant.gatewayId}/${grant.stage}`,
              grant.status,
              `${grant.keyPreview}…`,
              formatTime(grant.createdAt),
            ]),
          ),
    )
  },
}

const create: AdminCommand = {
  name: 'create',
  arguments: ['<app>', '<gateway>', '<stage>'],
  summary: 'Give an application access to one gateway environment; prints its API key once',
  async run(invocation) {
    const [application, gateway, stage] = invocation.arguments as [string, string, string]
    const grant = await invocation.client.post<GrantWithKey>('/admin/grants', { application, gateway, stage })
    invocation.print(grant, () => [
      `granted ${application} access to ${grant.gatewayId}/${grant.stage} (grant ${grant.id})`,
      ...showKey(grant.apiKey),
    ])
  },
}

const revoke: AdminCommand = {
  name: 'revoke',
  arguments: ['<grant-id>'],
  summary: 'Revoke a grant; its key stops working at once',
  async run(invocation) {
    const [id] = invocation.arguments as [string]
    const grant = await invocation.client.post<Grant>(adminPath`/admin/grants/${id}/revoke`)
    invocation.print(grant, () => `revoked grant ${grant.id} (${grant.gatewayId}/${grant.stage}); its key no longer works`)
  },
}

const rotate: AdminCommand = {
  name: 'rotate',
  arguments: ['<grant-id>'],
  summary: 'Issue a new API key for a grant; prints it once',
  options: {
    'grace-seconds': { type: 'string', value: 'N', description: 'Keep the old key working for N seconds (default 0, at most 86400)' },
  },
  async run(invocation) {
    const [id] = invocation.arguments as [string]
    const graceSeconds = invocation.commandLine.integer('grace-seconds', { min: 0, max: 86_400 })
    const grant = await invocation.client.post<GrantWithKey>(adminPath`/admin/grants/${id}/rotate`, { graceSeconds })
    invocation.print(grant, () => [
      `rotated the key of grant ${grant.id} (${grant.gatewayId}/${grant.stage}); the old key ${graceSeconds ? `keeps working for ${graceSeconds} s` : 'no longer works'}`,
      ...showKey(grant.apiKey),
    ])
  },
}

export const grantCommands: AdminCommandGroup = {
  name: 'grant',
  summary: 'Grants: API keys for an application on one gateway environment',
  commands: [list, create, revoke, rotate],
}

function showKey(apiKey: string): string[] {
  return ['', 'API key (shown once — only its hash is stored; store it now):', `  ${apiKey}`]
}
