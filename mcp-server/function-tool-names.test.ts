import assert from 'node:assert/strict'
import { test } from 'node:test'
import { functionNameOf, toolNameOf } from './function-tool-names.ts'
import { toolNamePattern } from './tool-definition.ts'

test('function names map to valid tool names and back', () => {
  for (const name of ['calculateTax', 'user/me', 'a/b-c/d_e/F9', `x${'y'.repeat(63)}/z`]) {
    const tool = toolNameOf(name)
    assert.match(tool, toolNamePattern)
    assert.equal(functionNameOf(tool), name)
  }
  assert.equal(toolNameOf('user/me'), 'user.me')
})

test('tool names that no function could have are refused', () => {
  for (const tool of ['', '.me', 'user..me', '9lives', 'a.b.c.d.e', 'user.me.']) assert.equal(functionNameOf(tool), null, tool)
})
