/**
 * The command-line front of the project's scripts (npm run eval, npm run calibrate): strict
 * options plus -h/--help, which prints the usage and exits; a bad option goes to the script's
 * own usageError (which prints it with the usage and exits with 2).
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';

const HELP = { help: { type: 'boolean', short: 'h', default: false } } as const;
type Values<O extends NonNullable<ParseArgsConfig['options']>> = ReturnType<typeof parseArgs<{ options: O & typeof HELP; strict: true; allowPositionals: false }>>['values'];

export function parseCli<O extends NonNullable<ParseArgsConfig['options']>>(usage: string, options: O, usageError: (message: string) => never): Values<O> {
  let values: Values<O>;
  try {
    values = parseArgs({ options: { ...options, ...HELP }, strict: true, allowPositionals: false }).values as Values<O>;
  } catch (err) {
    usageError((err as Error).message);
  }
  if ((values as { help?: boolean }).help) {
    process.stdout.write(`${usage}\n`);
    process.exit(0);
  }
  return values;
}
