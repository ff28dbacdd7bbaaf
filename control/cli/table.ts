/** Plain aligned text tables for list output: upper-case headers, two spaces between columns. */
export function formatTable(headers: readonly string[], rows: ReadonlyArray<readonly string[]>): string[] {
  const widths = headers.map((header, column) => Math.max(header.length, ...rows.map((row) => (row[column] ?? '').length)))
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, column) => (column === cells.length - 1 ? cell : cell.padEnd(widths[column] ?? 0)))
      .join('  ')
      .trimEnd()
  return [line(headers.map((header) => header.toUpperCase())), ...rows.map(line)]
}

/** A version number as shown in tables, `-` when there is none. */
export function formatVersion(version: number | null | undefined): string {
  return version === null || version === undefined ? '-' : `v${version}`
}

/** ISO timestamp shortened to the second, in UTC: lists stay narrow. */
export function formatTime(iso: string | null | undefined): string {
  if (!iso) return '-'
  return iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z')
}

/** `label  value` lines with the labels padded to one width, for single-record output. */
export function formatFields(fields: ReadonlyArray<readonly [string, string]>): string[] {
  const width = Math.max(0, ...fields.map(([label]) => label.length))
  return fields.map(([label, value]) => `${label.padEnd(width)}  ${value}`.trimEnd())
}

/** Plugin names of a config map, `none` when empty. */
export function formatPluginNames(plugins: Record<string, unknown> | null | undefined): string {
  const names = Object.keys(plugins ?? {})
  return names.length > 0 ? names.join(', ') : 'none'
}
