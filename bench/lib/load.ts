/**
 * The load generator: a fixed number of operations, at most `concurrency` in flight, each one
 * timed. Bounded by construction (no time-based loops), so a slow machine only makes it slower.
 *
 * For HTTP targets, `httpsOperation` / `httpOperation` build an operation that reuses keep-alive
 * connections from one agent (as an SDK client would) and checks every answer's status.
 */
import https from 'node:https';
import { loopbackLookup } from '../../scripts/lib/https-client.js';

export type Operation = () => Promise<void>;

export interface RunResult {
  label: string;
  count: number;
  concurrency: number;
  wallMs: number;
  /** Completed operations per second of wall time. */
  opsPerSecond: number;
  /** One latency per operation, in milliseconds, in completion order. */
  latenciesMs: Float64Array;
}

/** Runs `op` exactly `count` times with at most `concurrency` in flight. Any failure aborts the run. */
export async function runFixed(label: string, op: Operation, count: number, concurrency: number): Promise<RunResult> {
  const latencies = new Float64Array(count);
  let started = 0;
  let done = 0;
  let failure: unknown;
  const worker = async () => {
    while (failure === undefined && started < count) {
      started++;
      const t0 = process.hrtime.bigint();
      try {
        await op();
      } catch (err) {
        failure ??= err;
        return;
      }
      latencies[done++] = Number(process.hrtime.bigint() - t0) / 1e6;
    }
  };
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
  if (failure !== undefined) {
    throw new Error(
      `${label}: failed after ${done} of ${count} operations: ${failure instanceof Error ? failure.message : String(failure)}`,
    );
  }
  return { label, count, concurrency, wallMs, opsPerSecond: (count * 1000) / wallMs, latenciesMs: latencies };
}

export interface HttpTarget {
  method: string;
  url: URL;
  headers?: Record<string, string>;
  body?: string;
  /** Every answer must have this status, or the run fails. */
  expectStatus: number;
}

interface Sender {
  request: typeof https.request;
  options: https.RequestOptions;
}

function operation(target: HttpTarget, sender: Sender, onBody?: (text: string) => void): Operation {
  const headers: Record<string, string> = { ...target.headers };
  if (target.body !== undefined) headers['content-length'] = String(Buffer.byteLength(target.body));
  return () =>
    new Promise<void>((resolve, reject) => {
      const req = sender.request(target.url, { ...sender.options, method: target.method, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          if (res.statusCode !== target.expectStatus) {
            const text = Buffer.concat(chunks).toString('utf8').slice(0, 300);
            reject(
              new Error(
                `${target.method} ${target.url.pathname}: HTTP ${res.statusCode}, expected ${target.expectStatus}: ${text}`,
              ),
            );
            return;
          }
          try {
            if (onBody) onBody(Buffer.concat(chunks).toString('utf8'));
          } catch (err) {
            reject(err); // a failed check fails the run instead of escaping the event handler
            return;
          }
          resolve();
        });
      });
      req.setTimeout(30_000, () => req.destroy(new Error(`timeout: ${target.method} ${target.url.pathname}`)));
      req.on('error', reject);
      req.end(target.body);
    });
}

/** A keep-alive HTTPS agent trusting only `ca`, resolving *.localhost to 127.0.0.1. */
export function httpsAgent(ca: string, maxSockets: number): https.Agent {
  return new https.Agent({ keepAlive: true, maxSockets, ca, lookup: loopbackLookup });
}

export function httpsOperation(target: HttpTarget, agent: https.Agent, ca: string, onBody?: (text: string) => void): Operation {
  return operation(target, { request: https.request, options: { agent, ca, lookup: loopbackLookup } }, onBody);
}
