#!/usr/bin/env node
/** The `imprun` command: hands its arguments to the CLI and its result to the exit code. */
import { runCli } from '../control/cli/cli.ts'

process.exitCode = await runCli(
  process.argv.slice(2),
  { stdout: process.stdout, stderr: process.stderr, env: process.env },
  { loadCompiler: async () => (await import('../runtime/compile/index.ts')).createDefaultCompiler() },
)
