/** `imprun app …`: applications, the consumers that get API keys through grants. */
import type { Application } from '../domain/access.ts'
import { adminPath } from './admin-client.ts'
import type { AdminCommand, AdminCommandGroup } from './admin-command.ts'
import { formatFields, formatTable, formatTime } from './table.ts'

const list: AdminCommand = {
  name: 'list',
  summary: 'List applications',
  async run(invocation) {
    const { applications } = await invocation.client.get<{ applications: Application[] }>('/admin/applications')
    invocation.print({ applications }, () =>
      applications.length === 0
        ? 'no applications; create one with `imprun app create <name>`'
        : formatTable(
            ['name', 'id', 'created', 'description'],
            applications.map((application) => [application.name, application.id, formatTime(application.createdAt), application.description]),
          ),
    )
  },
}

const create: AdminCommand = {
  name: 'create',
  arguments: ['<name>'],
  summary: 'Create an application (an API consumer)',
  options: {
    description: { type: 'string', value: 'TEXT', description: 'What the application is' },
  },
  async run(invocation) {
    const [name] = invocation.arguments as [string]
    const application = await invocation.client.post<Application>('/admin/applications', { name, description: invocation.commandLine.string('description') })
    invocation.print(application, () => `created application ${application.name} (${application.id}); grant it a stage with \`imprun grant create ${application.name} <gateway> <stage>\``)
  },
}

const get: AdminCommand = {
  name: 'get',
  arguments: ['<name-or-id>'],
  summary: 'Show an application',
  async run(invocation) {
    const [name] = invocation.arguments as [string]
    const application = await invocation.client.get<Application>(adminPath`/admin/applications/${name}`)
    invocation.print(application, () =>
      formatFields([
        ['application', application.name],
        ['id', application.id],
        ['description', application.description || '-'],
        ['created', formatTime(application.createdAt)],
      ]),
    )
  },
}

const remove: AdminCommand = {
  name: 'delete',
  arguments: ['<name-or-id>'],
  summary: 'Delete an application and all its grants; its keys stop working',
  async run(invocation) {
    const [name] = invocation.arguments as [string]
    await invocation.client.delete<unknown>(adminPath`/admin/applications/${name}`)
    invocation.print({ deleted: name }, () => `deleted application ${name} and its grants`)
  },
}

export const appCommands: AdminCommandGroup = {
  name: 'app',
  summary: 'Applications: the consumers of your APIs',
  commands: [list, create, get, remove],
}
