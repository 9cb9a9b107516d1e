/**
 * Which SQLite constraint a failed D1 write broke, if any. D1 reports it in the message of the
 * error or, when drizzle wraps a single query (DrizzleQueryError), of its cause.
 */
export function violatedConstraint(err: unknown): 'unique' | 'foreign-key' | undefined {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    if (/UNIQUE constraint failed|PRIMARY KEY/i.test(e.message)) return 'unique';
    if (/FOREIGN KEY constraint failed/i.test(e.message)) return 'foreign-key';
  }
  return undefined;
}

/** What may be logged of an unexpected error: its name and the driver's own message, no parameters. */
export function describeError(err: unknown): string {
  if (!(err instanceof Error)) return 'unknown error';
  const cause = err.cause instanceof Error ? ` (cause: ${err.cause.name}: ${err.cause.message})` : '';
  // DrizzleQueryError puts the bound parameters after the first line: keep them out of logs.
  return `${err.name}: ${err.message.split('\n')[0]}${cause}`.slice(0, 500);
}
