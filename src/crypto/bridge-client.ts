import {
  signRequest,
  type BridgeHealth,
  type UnwrapRequest,
  type UnwrapResponse,
  type WrapRequest,
  type WrapResponse,
} from '../../hsm-bridge/src/protocol';
import { BridgeUnavailableError, IntegrityError } from '../vault/errors';
import { fromBase64Url, toBase64Url, utf8 } from './encoding';

/** Per-isolate count of calls made to the bridge (checked by tests and the benchmark). */
export const bridgeStats = { calls: 0 };

const TIMEOUT_MS = 5_000;

/** HMAC-signed client of the HSM bridge (see hsm-bridge/src/protocol.ts). */
export class BridgeClient {
  constructor(
    private readonly baseUrl: string,
    private readonly secret: string,
  ) {}

  async wrap(plaintext: Uint8Array, context: string): Promise<{ wrapped: string; kekLabel: string }> {
    const body: WrapRequest = { plaintext: toBase64Url(plaintext), context: toBase64Url(utf8(context)) };
    const res = await this.call<WrapResponse>('/v1/wrap', body);
    return { wrapped: res.wrapped, kekLabel: res.kekLabel };
  }

  async unwrap(wrapped: string, context: string): Promise<Uint8Array> {
    const body: UnwrapRequest = { wrapped, context: toBase64Url(utf8(context)) };
    const res = await this.call<UnwrapResponse>('/v1/unwrap', body);
    return fromBase64Url(res.plaintext);
  }

  /** The bridge's own health (unauthenticated endpoint); never throws. */
  async health(): Promise<BridgeHealth> {
    try {
      const res = await fetch(new URL('/healthz', this.baseUrl), { signal: AbortSignal.timeout(TIMEOUT_MS) });
      const body = (await res.json()) as BridgeHealth;
      return res.ok && body.kek ? body : { status: 'unavailable', kek: false, reason: body.reason ?? `HTTP ${res.status}` };
    } catch (err) {
      return { status: 'unavailable', kek: false, reason: describe(err) };
    }
  }

  private async call<T>(path: string, payload: unknown): Promise<T> {
    const body = JSON.stringify(payload);
    let headers: Record<string, string>;
    try {
      headers = await signRequest(this.secret, 'POST', path, body);
    } catch {
      throw new BridgeUnavailableError('the bridge secret is not configured correctly');
    }
    bridgeStats.calls++;
    let res: Response;
    try {
      res = await fetch(new URL(path, this.baseUrl), {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/json' },
        body,
        signal: AbortSignal.timeout(TIMEOUT_MS),
      });
    } catch (err) {
      throw new BridgeUnavailableError(describe(err));
    }
    if (res.status === 422) {
      await res.body?.cancel();
      throw new IntegrityError('data key');
    }
    if (!res.ok) {
      await res.body?.cancel();
      // 401 means the two sides disagree on the secret: an operator problem, logged without it.
      if (res.status === 401) console.error('hsm bridge refused our request signature (check BRIDGE_HMAC_SECRET)');
      throw new BridgeUnavailableError(`bridge answered HTTP ${res.status}`);
    }
    return (await res.json()) as T;
  }
}

function describe(err: unknown): string {
  if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) return 'timed out';
  return 'connection failed';
}
