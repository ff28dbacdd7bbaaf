import { z } from 'zod'

export const description =
  'A to-do list kept in the gateway database. GET lists items (filter by done, newest first) or returns one by id; POST adds one; PATCH changes title or done; DELETE removes one.'

export const input = z.object({
  id: z.string().min(1).max(64).optional().describe('Item id (GET one, PATCH, DELETE)'),
  title: z.string().trim().min(1).max(200).optional().describe('Item text (POST, PATCH)'),
  done: z
    .union([z.boolean(), z.enum(['true', 'false']).transform((text) => text === 'true')])
    .optional()
    .describe('Completed? (PATCH; on GET a filter)'),
  limit: z.coerce.number().int().min(1).max(100).default(20).describe('Most items to list (GET)'),
})

interface Todo {
  _id: string
  title: string
  done: boolean
  createdAt: string
  updatedAt: string
}

/** The part of `ctx.imp.db()` this function uses (MongoDB's collection API and results). */
interface TodoCollection {
  find(filter: object, options: { sort: Record<string, 1 | -1>; limit: number }): Promise<Todo[]>
  findOne(filter: object): Promise<Todo | null>
  countDocuments(filter: object): Promise<number>
  insertOne(document: Omit<Todo, '_id'>): Promise<{ insertedId: string }>
  findOneAndUpdate(filter: object, update: object): Promise<Todo | null>
  deleteOne(filter: object): Promise<{ deletedCount: number }>
}

interface Context {
  input: z.infer<typeof input>
  request: { method: string }
  setStatus(status: number): void
  fail(status: number, message: string): never
  imp: { db(): { collection(name: 'todos'): TodoCollection } }
}

export default async function (ctx: Context) {
  const todos = ctx.imp.db().collection('todos')
  const { id, title, done, limit } = ctx.input
  switch (ctx.request.method) {
    case 'GET': {
      if (id) return (await todos.findOne({ _id: id })) ?? ctx.fail(404, `no to-do '${id}'`)
      const filter = done === undefined ? {} : { done }
      const items = await todos.find(filter, { sort: { createdAt: -1 }, limit })
      return { items, total: await todos.countDocuments(filter) }
    }
    case 'POST': {
      if (!title) return ctx.fail(400, 'a new to-do needs a title')
      const now = new Date().toISOString()
      const todo = { title, done: false, createdAt: now, updatedAt: now }
      const { insertedId } = await todos.insertOne(todo)
      ctx.setStatus(201)
      return { _id: insertedId, ...todo }
    }
    case 'PATCH': {
      if (!id) return ctx.fail(400, 'say which to-do to change: id')
      const changes: Partial<Todo> = { updatedAt: new Date().toISOString() }
      if (title !== undefined) changes.title = title
      if (done !== undefined) changes.done = done
      return (await todos.findOneAndUpdate({ _id: id }, { $set: changes })) ?? ctx.fail(404, `no to-do '${id}'`)
    }
    case 'DELETE': {
      if (!id) return ctx.fail(400, 'say which to-do to remove: id')
      if ((await todos.deleteOne({ _id: id })).deletedCount === 0) return ctx.fail(404, `no to-do '${id}'`)
      return { deleted: id }
    }
    default:
      return ctx.fail(405, `${ctx.request.method} is not supported; use GET, POST, PATCH or DELETE`)
  }
}
