/**
 * The SecretBox port with AES-256-GCM. Sealed form: `v1.<iv>.<tag>.<ciphertext>` (base64url), so
 * a stored value reveals nothing without the key and any tampering fails to open. The embedded
 * platform keeps its key in `<data dir>/secret-key` (mode 0600); cluster mode passes it in
 * `IMPRUN_SECRET_KEY` (a Kubernetes Secret).
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { ImprunError } from '../errors.ts'
import type { SecretBox } from '../ports.ts'

const keyBytes = 32

export function createAesSecretBox(key: Buffer): SecretBox {
  if (key.length !== keyBytes) throw new ImprunError('bad_request', `a secret key is ${keyBytes} bytes (got ${key.length})`)
  return {
    seal(plaintext) {
      const iv = randomBytes(12)
      const cipher = createCipheriv('aes-256-gcm', key, iv)
      const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()])
      return ['v1', iv.toString('base64url'), cipher.getAuthTag().toString('base64url'), ciphertext.toString('base64url')].join('.')
    },
    open(sealed) {
      const [version, iv, tag, ciphertext] = sealed.split('.')
      if (version !== 'v1' || iv === undefined || tag === undefined || ciphertext === undefined) {
        throw new ImprunError('internal', 'a sealed secret has an unknown format')
      }
      try {
        const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'))
        decipher.setAuthTag(Buffer.from(tag, 'base64url'))
        return Buffer.concat([decipher.update(Buffer.from(ciphertext, 'base64url')), decipher.final()]).toString('utf8')
      } catch (cause) {
        throw new ImprunError('internal', 'a sealed secret cannot be opened with this key (was the secret key replaced?)', { cause })
      }
    },
  }
}

/** Parses a key given as 64 hex characters or 43 base64url characters. */
export function parseSecretKey(text: string): Buffer {
  const trimmed = text.trim()
  const key = /^[0-9a-f]{64}$/i.test(trimmed) ? Buffer.from(trimmed, 'hex') : Buffer.from(trimmed, 'base64url')
  if (key.length !== keyBytes) throw new ImprunError('bad_request', 'a secret key is 32 bytes, given as 64 hex or 43 base64url characters')
  return key
}

/** Reads the key file, creating it (mode 0600) with a random key on first use. */
export function loadOrCreateSecretKey(file: string): Buffer {
  if (existsSync(file)) return parseSecretKey(readFileSync(file, 'utf8'))
  const key = randomBytes(keyBytes)
  writeFileSync(file, `${key.toString('base64url')}\n`, { mode: 0o600, flag: 'wx' })
  return key
}
