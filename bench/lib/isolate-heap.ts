/**
 * The vault isolate's own JavaScript heap, read through wrangler dev's devtools inspector, so a
 * soak can tell the Worker's memory from workerd's: the summed workerd RSS of a local stack grows
 * by tens of KB per request even for a hello-world Worker (wrangler's proxy workerd, Miniflare's
 * services and native buffers), which says nothing about whether the vault's code retains anything.
 *
 * A heap snapshot is taken first only because it forces a full garbage collection (workerd does not
 * answer HeapProfiler.collectGarbage): the used size after it is what the isolate really retains,
 * where a plain Runtime.getHeapUsage swings with V8's collection schedule. The snapshot's text is
 * streamed to us and thrown away.
 */

export interface IsolateHeap {
  /** Live JS heap after a full collection, MiB. */
  usedMiB: number;
  /** Heap V8 has reserved for the isolate, MiB. */
  totalMiB: number;
}

type NodeWebSocket = new (url: string, init: { headers: Record<string, string> }) => WebSocket;

const mib = (bytes: number) => Math.round(bytes / 104_857.6) / 10;

/**
 * Undefined when the inspector cannot be reached or does not answer in time: the figure is extra
 * information for a report, never a reason to fail a run.
 */
export async function vaultIsolateHeap(inspectorPort: number, timeoutMs = 60_000): Promise<IsolateHeap | undefined> {
  let ws: WebSocket | undefined;
  let timer: Parameters<typeof clearTimeout>[0];
  try {
    const targets = (await (
      await fetch(`http://127.0.0.1:${inspectorPort}/json`, { signal: AbortSignal.timeout(5000) })
    ).json()) as {
      webSocketDebuggerUrl?: string;
    }[];
    const url = targets.find((t) => t.webSocketDebuggerUrl)?.webSocketDebuggerUrl;
    if (!url) return undefined;
    // The proxy refuses a client that names itself (Node's WebSocket sends a User-Agent) without a
    // loopback Origin; Node's WebSocket (undici) takes headers in its init, which the DOM type lacks.
    const socket = new (WebSocket as unknown as NodeWebSocket)(url, { headers: { origin: `http://127.0.0.1:${inspectorPort}` } });
    ws = socket;
    await new Promise<void>((resolve, reject) => {
      socket.addEventListener('open', () => resolve(), { once: true });
      socket.addEventListener('error', () => reject(new Error('inspector connection failed')), { once: true });
    });
    // wrangler's inspector proxy relays to a newly attached client every console event it buffered
    // while none was attached; only the answers to our own ids matter.
    const pending = new Map<number, (result: Record<string, unknown>) => void>();
    socket.addEventListener('message', (event) => {
      const msg = JSON.parse(String(event.data)) as { id?: number; result?: Record<string, unknown> };
      if (msg.id !== undefined && pending.has(msg.id)) {
        pending.get(msg.id)!(msg.result ?? {});
        pending.delete(msg.id);
      }
    });
    let nextId = 1_000_000; // well clear of the ids the proxy uses for its own requests
    const call = (method: string, params: object = {}) =>
      new Promise<Record<string, unknown>>((resolve) => {
        const id = nextId++;
        pending.set(id, resolve);
        socket.send(JSON.stringify({ id, method, params }));
      });
    const work = (async () => {
      await call('HeapProfiler.takeHeapSnapshot', { reportProgress: false });
      const usage = await call('Runtime.getHeapUsage');
      return { usedMiB: mib(Number(usage.usedSize)), totalMiB: mib(Number(usage.totalSize)) };
    })();
    const timeout = new Promise<undefined>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
    return await Promise.race([work, timeout]);
  } catch {
    return undefined;
  } finally {
    clearTimeout(timer);
    ws?.close();
  }
}
