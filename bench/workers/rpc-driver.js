// The caller of the RPC figure: an edge Worker bound to the vault's VaultRpc (VAULT) and to a no-op
// entrypoint (NOOP), as `[[services]]` with `entrypoint` binds them. GET /?target=VAULT|NOOP&n=&k=&name=
// makes n × k getSecret calls one after the other and answers n samples, each the mean time of k
// consecutive calls on workerd's clock (it moves on I/O, as each call is, but in whole
// milliseconds: one call alone would read 0 or 1), and the first result, for the bench to check.
// Bench only.
export default {
  async fetch(request, env) {
    const q = new URL(request.url).searchParams;
    const target = env[q.get('target')];
    const n = Number(q.get('n'));
    const k = Number(q.get('k'));
    const name = q.get('name');
    const times = [];
    let first;
    let t = performance.now();
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < k; j++) {
        const r = await target.getSecret(name);
        if (!r.ok) return Response.json({ error: r.error }, { status: 500 });
        first ??= r.value;
      }
      const now = performance.now();
      times.push((now - t) / k);
      t = now;
    }
    return Response.json({ times, first });
  },
};
