/**
 * Function names are path-like (`user/me`); MCP tool names may only hold letters, digits, `_`,
 * `.` and `-`. Function name segments never contain `.`, so `/` ↔ `.` maps one onto the other
 * without loss: `user/me` is the tool `user.me` and back.
 */
import { functionNameSchema } from '../control/domain/names.ts'

export function toolNameOf(functionName: string): string {
  return functionName.replaceAll('/', '.')
}

/** The function a tool name stands for, or null when no valid function name maps to it. */
export function functionNameOf(toolName: string): string | null {
  const name = toolName.replaceAll('.', '/')
  return functionNameSchema.safeParse(name).success ? name : null
}
