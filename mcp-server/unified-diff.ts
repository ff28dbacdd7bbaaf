/**
 * A unified text diff (the `diff -u` format) of two sets of source files, for `function_diff`.
 * Line matching is a longest common subsequence over lines, which is exact and fast enough for
 * function sources (at most 1 MiB in all); files above `maxLinesForLcs` lines fall back to
 * "replaced whole" so a pathological pair cannot stall the server.
 */
import type { SourceFiles } from '../control/ports.ts'

const maxLinesForLcs = 5000

type Edit = { kind: ' ' | '-' | '+'; line: string }

/** `--- a/path` / `+++ b/path` sections for every file that differs, in path order. */
export function unifiedDiff(before: SourceFiles, after: SourceFiles, labels: { before: string; after: string }, context = 3): string {
  const paths = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort()
  const sections: string[] = []
  for (const path of paths) {
    const left = before[path]
    const right = after[path]
    if (left === right) continue
    const header = [
      `--- ${left === undefined ? '/dev/null' : `${labels.before}/${path}`}`,
      `+++ ${right === undefined ? '/dev/null' : `${labels.after}/${path}`}`,
    ]
    const hunks = diffHunks(splitLines(left ?? ''), splitLines(right ?? ''), context)
    if (hunks.length > 0) sections.push([...header, ...hunks].join('\n'))
  }
  return sections.length === 0 ? '' : `${sections.join('\n')}\n`
}

function splitLines(text: string): string[] {
  if (text === '') return []
  const lines = text.split('\n')
  if (lines[lines.length - 1] === '') lines.pop()
  return lines
}

function edits(left: string[], right: string[]): Edit[] {
  if (left.length * right.length > maxLinesForLcs * maxLinesForLcs / 4 || left.length > maxLinesForLcs || right.length > maxLinesForLcs) {
    return [...left.map((line) => ({ kind: '-' as const, line })), ...right.map((line) => ({ kind: '+' as const, line }))]
  }
  // Common prefix and suffix first: most edits touch a few lines in the middle.
  let start = 0
  while (start < left.length && start < right.length && left[start] === right[start]) start++
  let endLeft = left.length
  let endRight = right.length
  while (endLeft > start && endRight > start && left[endLeft - 1] === right[endRight - 1]) {
    endLeft--
    endRight--
  }
  const a = left.slice(start, endLeft)
  const b = right.slice(start, endRight)
  const width = b.length + 1
  const table = new Uint32Array((a.length + 1) * width)
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) {
      table[i * width + j] = a[i] === b[j] ? table[(i + 1) * width + j + 1]! + 1 : Math.max(table[(i + 1) * width + j]!, table[i * width + j + 1]!)
    }
  }
  const middle: Edit[] = []
  let i = 0
  let j = 0
  while (i < a.length && j < b.length) {
    if (a[i] === b[j]) {
      middle.push({ kind: ' ', line: a[i]! })
      i++
      j++
    } else if (table[(i + 1) * width + j]! >= table[i * width + j + 1]!) {
      middle.push({ kind: '-', line: a[i++]! })
    } else {
      middle.push({ kind: '+', line: b[j++]! })
    }
  }
  while (i < a.length) middle.push({ kind: '-', line: a[i++]! })
  while (j < b.length) middle.push({ kind: '+', line: b[j++]! })
  return [
    ...left.slice(0, start).map((line) => ({ kind: ' ' as const, line })),
    ...middle,
    ...left.slice(endLeft).map((line) => ({ kind: ' ' as const, line })),
  ]
}

function diffHunks(left: string[], right: string[], context: number): string[] {
  const list = edits(left, right)
  const changed = list.map((edit, index) => (edit.kind === ' ' ? -1 : index)).filter((index) => index >= 0)
  if (changed.length === 0) return []
  // Group changes whose context windows touch into one hunk.
  const groups: Array<[number, number]> = []
  for (const index of changed) {
    const last = groups[groups.length - 1]
    if (last && index - last[1] <= context * 2 + 1) last[1] = index
    else groups.push([index, index])
  }
  const out: string[] = []
  for (const [first, lastChanged] of groups) {
    const from = Math.max(0, first - context)
    const to = Math.min(list.length - 1, lastChanged + context)
    let leftStart = 0
    let rightStart = 0
    for (let index = 0; index < from; index++) {
      if (list[index]!.kind !== '+') leftStart++
      if (list[index]!.kind !== '-') rightStart++
    }
    const slice = list.slice(from, to + 1)
    const leftCount = slice.filter((edit) => edit.kind !== '+').length
    const rightCount = slice.filter((edit) => edit.kind !== '-').length
    out.push(`@@ -${range(leftStart, leftCount)} +${range(rightStart, rightCount)} @@`)
    for (const edit of slice) out.push(`${edit.kind}${edit.line}`)
  }
  return out
}

/** `start,count` with diff's conventions: 1-based, and `start` is the line before when empty. */
function range(start: number, count: number): string {
  if (count === 0) return `${start},0`
  return count === 1 ? `${start + 1}` : `${start + 1},${count}`
}
