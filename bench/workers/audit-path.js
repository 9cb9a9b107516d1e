/**
 * Bench-only entry (not part of the product): the vault's own Worker (src/index.ts, unchanged,
 * bundled with it by bench/lib/workerd-audit-path.ts) behind a wrapper that decides what
 * AUDIT_QUEUE is, from the bench-only variable BENCH_AUDIT of each of two Miniflare workers:
 *
 *   'queue'    the real local queue binding, whose consumer (the same Worker's queue handler,
 *              persistAuditBatch) runs in the same workerd process: production's audit path;
 *   'discard'  a stub with send() and sendBatch() that accept the event and drop it: no queue
 *              send, no consumer. Everything else about the request is the same.
 *
 * Both variants go through the same wrapper (one copy of env per isolate), so the only
 * difference is the binding.
 */
import worker from '../../src/index';

const DISCARD = {
  async send() {},
  async sendBatch() {},
};

const envs = new WeakMap();
function envOf(env) {
  let e = envs.get(env);
  if (!e) {
    e = { ...env };
    if (env.BENCH_AUDIT === 'discard') e.AUDIT_QUEUE = DISCARD;
    else if (env.BENCH_AUDIT !== 'queue') throw new Error('BENCH_AUDIT must be queue or discard');
    envs.set(env, e);
  }
  return e;
}

export default {
  fetch(request, env, ctx) {
    return worker.fetch(request, envOf(env), ctx);
  },
  queue(batch, env, ctx) {
    return worker.queue(batch, envOf(env), ctx);
  },
};
