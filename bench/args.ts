// Command-line options of the bench scripts. Strict on purpose: a bench
// that hand-parsed argv in pairs took `--help` (or a misspelt option) as a
// request for a full run with defaults, which on bench/scale.ts is an hour of
// generated stores and collections. Here --help prints the usage and exits 0,
// and anything unknown is refused with exit code 2 before any work starts.
import { parseArgs } from 'node:util';

export function benchArgs(usage: string, names: readonly string[]): Map<string, string> {
  const options = Object.fromEntries(names.map((n) => [n, { type: 'string' as const }]));
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: process.argv.slice(2),
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\nUsage: ${usage}\n`);
    process.exit(2);
  }
  if (values.help) {
    process.stdout.write(`Usage: ${usage}\n`);
    process.exit(0);
  }
  const args = new Map<string, string>();
  for (const n of names) if (typeof values[n] === 'string') args.set(n, values[n] as string);
  return args;
}
