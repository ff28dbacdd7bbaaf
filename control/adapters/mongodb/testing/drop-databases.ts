import { MongoClient } from 'mongodb'

/** Drops the system database and every gateway database of one prefix (test clean-up). */
export async function dropMongoDatabases(url: string, prefix: string): Promise<void> {
  const client = new MongoClient(url)
  try {
    const { databases } = await client.db('admin').admin().listDatabases({ nameOnly: true })
    for (const { name } of databases) {
      if (name === prefix || name.startsWith(`${prefix}_gw_`)) await client.db(name).dropDatabase()
    }
  } finally {
    await client.close()
  }
}
