import assert from 'node:assert/strict'
import { test } from 'node:test'
import { unifiedDiff } from './unified-diff.ts'

const labels = { before: 'v1', after: 'v2' }

test('a changed line in the middle gives one hunk with three lines of context', () => {
  const before = { 'index.ts': ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'].join('\n') + '\n' }
  const after = { 'index.ts': ['a', 'b', 'c', 'd', 'E', 'f', 'g', 'h'].join('\n') + '\n' }
  assert.equal(
    unifiedDiff(before, after, labels),
    ['--- v1/index.ts', '+++ v2/index.ts', '@@ -2,7 +2,7 @@', ' b', ' c', ' d', '-e', '+E', ' f', ' g', ' h', ''].join('\n'),
  )
})

test('added and removed files diff against /dev/null; identical files are left out', () => {
  const diff = unifiedDiff({ 'index.ts': 'same\n', 'old.ts': 'x\n' }, { 'index.ts': 'same\n', 'new.ts': 'y\nz\n' }, labels)
  assert.equal(diff, ['--- /dev/null', '+++ v2/new.ts', '@@ -0,0 +1,2 @@', '+y', '+z', '--- v1/old.ts', '+++ /dev/null', '@@ -1 +0,0 @@', '-x', ''].join('\n'))
  assert.equal(unifiedDiff({ 'index.ts': 'a\n' }, { 'index.ts': 'a\n' }, labels), '')
})

test('distant changes make separate hunks', () => {
  const lines = Array.from({ length: 20 }, (_, index) => `line ${index}`)
  const changed = [...lines]
  changed[1] = 'first'
  changed[18] = 'second'
  const diff = unifiedDiff({ 'index.ts': lines.join('\n') }, { 'index.ts': changed.join('\n') }, labels)
  assert.equal(diff.match(/^@@/gm)?.length, 2)
  assert.match(diff, /^-line 1\n\+first$/m)
  assert.match(diff, /^-line 18\n\+second$/m)
})
