/**
 * Local cron: `wrangler dev` runs no Cron Trigger, so the dev stack fires the Worker's scheduled
 * handler itself through workerd's local trigger, which serves only on the stack's own loopback
 * listener (`https://127.0.0.1:{port}/cdn-cgi/local/scheduled`, the development certificate
 * names 127.0.0.1). Used by the stack's interval timer and by `npm run cron`.
 */
import { httpsRequest } from './https-client.js';

export const SCHEDULED_PATH = '/cdn-cgi/local/scheduled';
/** What production's Cron Trigger passes (wrangler.toml [triggers]); our handler runs every job whatever it says. */
export const DEV_CRON_EXPRESSION = '*/5 * * * *';
export const DEFAULT_DEV_CRON_INTERVAL_SECONDS = 60;

export interface CronAnswer {
  status: number;
  /** workerd's outcome, e.g. `ok` or `exception`. */
  outcome: string;
}

export function scheduledUrl(vaultPort: number): string {
  return `https://127.0.0.1:${vaultPort}${SCHEDULED_PATH}?cron=${encodeURIComponent(DEV_CRON_EXPRESSION)}`;
}

/** Runs the scheduled handler once and answers when every job it started has finished. */
export async function triggerScheduled(vaultPort: number, caPem: string, timeoutMs = 120_000): Promise<CronAnswer> {
  const res = await httpsRequest(scheduledUrl(vaultPort), { ca: caPem, timeoutMs });
  return { status: res.status, outcome: res.text.trim().slice(0, 200) };
}

/** `DEV_CRON_INTERVAL` in seconds: unset → every minute, `0` → off. */
export function cronIntervalFromEnv(raw: string | undefined): number {
  if (raw === undefined || raw.trim() === '') return DEFAULT_DEV_CRON_INTERVAL_SECONDS;
  const seconds = Number(raw);
  if (!Number.isInteger(seconds) || seconds < 0)
    throw new Error(`DEV_CRON_INTERVAL must be a whole number of seconds (0 turns the local cron off), not '${raw}'`);
  return seconds;
}

export interface CronTimer {
  /** No further runs; a run under way is left to end (or to fail quietly when the Worker stops). */
  stop(): void;
}

/**
 * Fires the scheduled handler every `intervalSeconds`. Runs never overlap (a slow run delays the
 * next one instead of piling up), and a failed run is reported and retried at the next tick.
 */
export function startCronTimer(opts: {
  vaultPort: number;
  caPem: string;
  intervalSeconds: number;
  log: (message: string) => void;
}): CronTimer {
  let running: Promise<void> | undefined;
  let stopped = false;
  const tick = () => {
    if (running || stopped) return;
    running = triggerScheduled(opts.vaultPort, opts.caPem)
      .then(
        (answer) => {
          if (answer.status !== 200) opts.log(`cron run failed: HTTP ${answer.status} ${answer.outcome}`);
        },
        (err: unknown) => {
          if (!stopped) opts.log(`cron run failed: ${err instanceof Error ? err.message : String(err)}`);
        },
      )
      .finally(() => (running = undefined));
  };
  const timer = setInterval(tick, opts.intervalSeconds * 1000);
  timer.unref(); // never what keeps a process alive
  return {
    stop() {
      stopped = true;
      clearInterval(timer);
    },
  };
}
