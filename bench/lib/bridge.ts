/**
 * The HSM bridge from the benchmark's side: an HMAC-signed HTTP client (the same signing code the
 * Worker uses, bridge-protocol/, so each request costs Node what it costs the Worker),
 * and the in-process alternative: `Hsm` opened on the same SoftHSM2 token.
 */
import http from 'node:http';
import {
  fromBase64Url,
  signRequest,
  toBase64Url,
  type BridgeStatus,
  type GenerateKeyResponse,
  type HsmKeySpec,
  type KeySignResponse,
  type UnwrapResponse,
  type WrapResponse,
} from '../../bridge-protocol/index.js';

export class SignedBridgeClient {
  readonly agent: http.Agent;

  constructor(
    readonly baseUrl: string,
    private readonly secret: string,
    maxSockets = 16,
  ) {
    this.agent = new http.Agent({ keepAlive: true, maxSockets });
  }

  /** The bridge's own operation counters (GET /v1/status, signed). */
  async status(): Promise<BridgeStatus> {
    return JSON.parse(await this.call('GET', '/v1/status', '')) as BridgeStatus;
  }

  async wrap(plaintext: Uint8Array, context: Uint8Array): Promise<string> {
    const body = JSON.stringify({ plaintext: toBase64Url(plaintext), context: toBase64Url(context) });
    return (JSON.parse(await this.call('POST', '/v1/wrap', body)) as WrapResponse).wrapped;
  }

  async unwrap(wrapped: string, context: Uint8Array): Promise<Uint8Array> {
    const body = JSON.stringify({ wrapped, context: toBase64Url(context) });
    return fromBase64Url((JSON.parse(await this.call('POST', '/v1/unwrap', body)) as UnwrapResponse).plaintext);
  }

  /** POST /v1/keys/generate: a key pair in the token, as the Worker makes one for an -HSM key. */
  async generateKey(id: string, spec: HsmKeySpec): Promise<GenerateKeyResponse> {
    return JSON.parse(await this.call('POST', '/v1/keys/generate', JSON.stringify({ id, spec }))) as GenerateKeyResponse;
  }

  async sign(handle: string, alg: string, digest: Uint8Array): Promise<Uint8Array> {
    const body = JSON.stringify({ handle, alg, digest: toBase64Url(digest) });
    return fromBase64Url((JSON.parse(await this.call('POST', '/v1/keys/sign', body)) as KeySignResponse).signature);
  }

  async destroyKey(handle: string): Promise<void> {
    await this.call('POST', '/v1/keys/destroy', JSON.stringify({ handle }));
  }

  close(): void {
    this.agent.destroy();
  }

  private async call(method: 'GET' | 'POST', path: string, body: string): Promise<string> {
    const headers: Record<string, string> = await signRequest(this.secret, method, path, body);
    if (method === 'POST') {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(Buffer.byteLength(body));
    }
    return new Promise<string>((resolve, reject) => {
      const req = http.request(new URL(path, this.baseUrl), { method, headers, agent: this.agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          if (res.statusCode !== 200) reject(new Error(`bridge ${method} ${path}: HTTP ${res.statusCode} ${text.slice(0, 200)}`));
          else resolve(text);
        });
      });
      req.setTimeout(30_000, () => req.destroy(new Error(`bridge ${method} ${path}: timeout`)));
      req.on('error', reject);
      req.end(method === 'POST' ? body : undefined);
    });
  }
}
