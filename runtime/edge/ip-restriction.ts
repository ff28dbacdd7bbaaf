/**
 * ip-restriction (apisix/plugins/ip-restriction/init.lua, priority 3000): a `whitelist` blocks
 * every address outside it, a `blacklist` blocks the addresses in it (the schema allows one of
 * the two). Entries are IPv4/IPv6 addresses or CIDR ranges. Rejected requests get
 * `response_code` (default 403; 404 allowed) with `message` (default "Your IP address is not
 * allowed").
 *
 * Matching uses node:net BlockList, which also matches an IPv4-mapped IPv6 peer
 * (`::ffff:127.0.0.1`) against IPv4 rules and the other way round. An address that is not an IP
 * at all matches nothing: a whitelist blocks it, a blacklist lets it through (as resty.ipmatcher).
 */
import { BlockList, isIP } from 'node:net'
import { ImprunError } from '../../control/errors.ts'
import type { PluginConf } from '../../control/domain/plugins.ts'
import { errorResponse, type EdgeContext, type EdgePlugin, type ShortCircuit } from './types.ts'

export const ipRestrictionDefaults = { message: 'Your IP address is not allowed', response_code: 403 } as const

export function createIpRestriction(conf: PluginConf): EdgePlugin {
  const whitelist = Array.isArray(conf.whitelist) ? buildBlockList(conf.whitelist, 'whitelist') : undefined
  const blacklist = Array.isArray(conf.blacklist) ? buildBlockList(conf.blacklist, 'blacklist') : undefined
  if (whitelist === undefined && blacklist === undefined) {
    throw new ImprunError('invalid_plugin_config', 'plugins.ip-restriction: needs a whitelist or a blacklist')
  }
  const message = typeof conf.message === 'string' ? conf.message : ipRestrictionDefaults.message
  const status = conf.response_code === 404 ? 404 : ipRestrictionDefaults.response_code

  return {
    name: 'ip-restriction',
    // APISIX runs ip-restriction in the access phase, i.e. after key-auth's rewrite; we run it
    // among the rewrite handlers so a blocked address never gets its key checked (see plugin-chain.ts).
    phase: 'rewrite',
    priority: 3000,
    run(context: EdgeContext): ShortCircuit | undefined {
      const address = context.remoteAddr
      // As the Lua code: the blacklist decides first, a whitelist (if both were given) overrides it.
      let blocked = false
      if (blacklist !== undefined) blocked = matches(blacklist, address)
      if (whitelist !== undefined) blocked = !matches(whitelist, address)
      if (!blocked) return undefined
      return errorResponse(status, status === 404 ? 'not_found' : 'forbidden', message)
    },
  }
}

function buildBlockList(entries: unknown[], field: string): BlockList {
  const list = new BlockList()
  for (const entry of entries) {
    if (typeof entry !== 'string') throw invalidEntry(field, String(entry))
    const slash = entry.indexOf('/')
    const address = slash === -1 ? entry : entry.slice(0, slash)
    const family = isIP(address)
    if (family === 0) throw invalidEntry(field, entry)
    const type = family === 4 ? 'ipv4' : 'ipv6'
    try {
      if (slash === -1) {
        list.addAddress(address, type)
      } else {
        const prefixText = entry.slice(slash + 1)
        if (!/^\d{1,3}$/.test(prefixText)) throw invalidEntry(field, entry)
        list.addSubnet(address, Number(prefixText), type)
      }
    } catch (error) {
      throw invalidEntry(field, entry, error)
    }
  }
  return list
}

function matches(list: BlockList, address: string): boolean {
  const family = isIP(address)
  if (family === 0) return false
  return list.check(address, family === 4 ? 'ipv4' : 'ipv6')
}

function invalidEntry(field: string, entry: string, cause?: unknown): ImprunError {
  if (cause instanceof ImprunError) return cause
  return new ImprunError('invalid_plugin_config', `plugins.ip-restriction/${field}: invalid ip address: ${entry}`, {
    details: { plugin: 'ip-restriction', field, entry },
    cause,
  })
}
