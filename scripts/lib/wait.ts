/** Polls `probe` until it returns true; rejects after `timeoutMs` with `describe()` in the error. */
export async function waitUntil(
  what: string,
  probe: () => Promise<boolean>,
  opts: { timeoutMs: number; intervalMs?: number; describe?: () => string; abort?: Promise<string> },
): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs;
  let lastError = '';
  let aborted: string | undefined;
  void opts.abort?.then((reason) => (aborted = reason));
  for (;;) {
    if (aborted !== undefined) break;
    try {
      if (await probe()) return;
    } catch (err) {
      lastError = (err as Error).message;
    }
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 250));
  }
  const why = aborted !== undefined ? `it exited (${aborted})` : `timed out after ${opts.timeoutMs} ms`;
  const detail = opts.describe ? `\n--- output ---\n${opts.describe()}` : '';
  throw new Error(`${what}: ${why}${lastError ? `; last error: ${lastError}` : ''}${detail}`);
}
