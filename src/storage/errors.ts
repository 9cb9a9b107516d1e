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

/**
 * D1 could not run the statement (unreachable, overloaded, reset): a transient condition the
 * caller may retry, as opposed to a constraint or SQL error, which is a bug or a conflict. D1's
 * transient errors come as `D1_ERROR: …` (or D1's own wording) on the error or its cause.
 */
export function storageUnavailable(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    if (/constraint failed|SQLITE_|no such (table|column)|syntax error|D1_TYPE_ERROR|D1_COLUMN_NOTFOUND/i.test(e.message))
      return false;
    if (/^D1_ERROR\b|D1 DB|Network connection lost|D1_EXEC_ERROR: .*(?:timeout|reset)/i.test(e.message)) return true;
  }
  return false;
}
