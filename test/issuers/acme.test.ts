// The ACME issuer against a real ACME server (pebble, started by the global setup, EAB required),
// in Node: workerd's outbound TLS only trusts a private CA through NODE_EXTRA_CA_CERTS read when
// miniflare loads, before any global setup runs, so the Worker suite cannot be pointed at
// pebble's per-run listener CA. The issuer modules use web-standard APIs only, so this is the
// code the Worker runs, with in-memory stores in place of the D1 ones (tested in
// test/worker/acme-stores.test.ts).
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { fromBase64Url } from '../../src/core/encoding';
import { toPem } from '../../src/objects/certificates/issuers/ca-core';
import { CloudflareDns } from '../../src/objects/certificates/issuers/acme/dns';
import { AcmeIssuer } from '../../src/objects/certificates/issuers/acme/issuer';
import {
  dnsTxtValue,
  generateAccountKey,
  keyAuthorization,
  type AccountKey,
} from '../../src/objects/certificates/issuers/acme/jws';
import type { AcmeAccount, AcmeAccountStore, Http01Store } from '../../src/objects/certificates/issuers/acme/ports';
import type { IssueOutcome } from '../../src/objects/certificates/issuers/types';
import { fetchTrusting } from '../support/fetch-trusting';
import { makeCsr, x509 } from '../support/csr';

const run = promisify(execFile);
const pebble = inject('pebble');
const fetch = fetchTrusting(pebble.listenerCaPem);
const EAB = { kid: pebble.eab.kid, hmacKey: fromBase64Url(pebble.eab.hmacKey) };
let dir: string;

class MemoryAccounts implements AcmeAccountStore {
  key?: AccountKey;
  accountUrl: string | null = null;
  constructor(private readonly eab: AcmeAccount['eab']) {}
  async load(): Promise<AcmeAccount> {
    this.key ??= (await generateAccountKey()).key;
    return { key: this.key, accountUrl: this.accountUrl, eab: this.eab };
  }
  async saveAccountUrl(url: string): Promise<void> {
    this.accountUrl = url;
  }
}

class MemoryHttp01 implements Http01Store {
  answers = new Map<string, string>();
  async put(token: string, keyAuthorization: string): Promise<void> {
    this.answers.set(token, keyAuthorization);
  }
  async remove(token: string): Promise<void> {
    this.answers.delete(token);
  }
}

/** Resumes until the order is done, as the caller's queue would (without its waits). */
async function until(issuer: AcmeIssuer, first: IssueOutcome): Promise<IssueOutcome> {
  let outcome = first;
  for (let i = 0; i < 60 && outcome.status === 'pending'; i++) {
    await new Promise((r) => setTimeout(r, 250));
    outcome = await issuer.resume(outcome.resume);
  }
  return outcome;
}

async function verifyWithPebbleRoot(chainDer: Uint8Array[]): Promise<string> {
  const root = await fetch(`${pebble.managementUrl}/roots/0`);
  expect(root.status).toBe(200);
  const rootPath = join(dir, 'pebble-root.pem');
  await writeFile(rootPath, await root.text());
  await writeFile(join(dir, 'leaf.pem'), toPem(chainDer[0]!));
  await writeFile(
    join(dir, 'intermediates.pem'),
    chainDer
      .slice(1)
      .map((d) => toPem(d))
      .join(''),
  );
  const { stdout } = await run('openssl', [
    'verify',
    '-CAfile',
    rootPath,
    '-untrusted',
    join(dir, 'intermediates.pem'),
    join(dir, 'leaf.pem'),
  ]);
  return stdout;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ekv-acme-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface DnsApiRequest {
  method: string;
  url: string;
  auth: string | undefined;
  body: string;
}

/**
 * Runs `body` against a local fake of Cloudflare's DNS records API (zone zone123): it records each
 * request and answers each with a new record id, except those `drop` picks, whose connection it
 * closes without an answer (an outage, not a refusal).
 */
async function withFakeDnsApi(
  body: (dns: CloudflareDns, requests: DnsApiRequest[]) => Promise<void>,
  drop: (method: string) => boolean = () => false,
): Promise<void> {
  const requests: DnsApiRequest[] = [];
  const fake: Server = createServer(async (req: IncomingMessage, res) => {
    let text = '';
    for await (const chunk of req) text += chunk;
    requests.push({ method: req.method!, url: req.url!, auth: req.headers.authorization, body: text });
    if (drop(req.method!)) return void req.socket.destroy();
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ success: true, errors: [], result: { id: `rec${requests.length}` } }));
  });
  await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', resolve));
  try {
    const apiBase = `http://127.0.0.1:${(fake.address() as AddressInfo).port}/client/v4`;
    await body(new CloudflareDns({ apiToken: 'cf-test-token', zoneId: 'zone123', apiBase }), requests);
  } finally {
    await new Promise<void>((resolve) => fake.close(() => resolve()));
  }
}

describe('ACME issuer against pebble', () => {
  it('orders a certificate with http-01 and External Account Binding, end to end', async () => {
    const accounts = new MemoryAccounts(EAB);
    const http01 = new MemoryHttp01();
    const issuer = new AcmeIssuer({ directoryUrl: pebble.directoryUrl, accounts, challenge: 'http-01', http01, fetch });
    const name = `www${Date.now()}.example.test`;
    const { csrDer } = await makeCsr(`CN=${name}`, undefined, [name]);
    const first = await issuer.issue({ csrDer, subject: `CN=${name}`, dnsNames: [name], validityMonths: 3 });
    expect(first.status).toBe('pending');
    // What the Worker would serve at /.well-known/acme-challenge/{token}.
    const [[token, keyAuth]] = [...http01.answers.entries()] as [[string, string]];
    expect(keyAuth).toBe(await keyAuthorization(accounts.key!, token));
    expect(accounts.accountUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+\//);

    const done = await until(issuer, first);
    if (done.status !== 'issued') throw new Error(JSON.stringify(done));
    expect(done.result.chainDer.length).toBeGreaterThanOrEqual(2);
    const leaf = new x509.X509Certificate(done.result.chainDer[0]! as Uint8Array<ArrayBuffer>);
    expect(leaf.getExtension(x509.SubjectAlternativeNameExtension)!.names.toJSON()).toEqual([{ type: 'dns', value: name }]);
    expect(await verifyWithPebbleRoot(done.result.chainDer)).toContain('leaf.pem: OK');
    expect(http01.answers.size).toBe(0); // answers are withdrawn once the order is done

    // The account is registered once and reused.
    const url = accounts.accountUrl;
    const again = await issuer.issue({
      csrDer: (await makeCsr('CN=x', undefined, [name])).csrDer,
      subject: '',
      dnsNames: [name],
      validityMonths: 3,
    });
    expect(again.status).toBe('pending');
    expect(accounts.accountUrl).toBe(url);
  });

  it('orders with dns-01 through the Cloudflare DNS provider (a local fake of its API)', async () => {
    await withFakeDnsApi(async (dns, requests) => {
      const accounts = new MemoryAccounts(EAB);
      const issuer = new AcmeIssuer({ directoryUrl: pebble.directoryUrl, accounts, challenge: 'dns-01', dns, fetch });
      const base = `d${Date.now()}.example.test`;
      const { csrDer } = await makeCsr(`CN=${base}`, undefined, [`*.${base}`]);
      const done = await until(issuer, await issuer.issue({ csrDer, subject: '', dnsNames: [`*.${base}`], validityMonths: 3 }));
      if (done.status !== 'issued') throw new Error(JSON.stringify(done));
      expect(await verifyWithPebbleRoot(done.result.chainDer)).toContain('leaf.pem: OK');

      const created = requests.filter((r) => r.method === 'POST');
      expect(created).toHaveLength(1);
      expect(created[0]).toMatchObject({ url: '/client/v4/zones/zone123/dns_records', auth: 'Bearer cf-test-token' });
      const record = JSON.parse(created[0]!.body);
      expect(record).toMatchObject({ type: 'TXT', name: `_acme-challenge.${base}`, ttl: 60 });
      expect(record.content).toMatch(/^"[A-Za-z0-9_-]{43}"$/);
      // The value is the digest of a key authorization of this account.
      expect(record.content).not.toBe(`"${await dnsTxtValue('')}"`);
      expect(requests.filter((r) => r.method === 'DELETE').map((r) => r.url)).toEqual([
        '/client/v4/zones/zone123/dns_records/rec1',
      ]);
    });
  });

  it('removes the TXT records already written when the DNS API goes away mid-order, and those of an abandoned order', async () => {
    let posts = 0;
    // The connection drops on the second record: an outage, not a refusal.
    const drop = (method: string) => method === 'POST' && ++posts === 2;
    await withFakeDnsApi(async (dns, requests) => {
      const issuer = new AcmeIssuer({
        directoryUrl: pebble.directoryUrl,
        accounts: new MemoryAccounts(EAB),
        challenge: 'dns-01',
        dns,
        fetch,
      });
      const names = [`a${Date.now()}.example.test`, `b${Date.now()}.example.test`];
      const { csrDer } = await makeCsr(`CN=${names[0]}`, undefined, names);
      await expect(issuer.issue({ csrDer, subject: '', dnsNames: names, validityMonths: 3 })).rejects.toThrow();
      expect(requests.filter((r) => r.method === 'DELETE').map((r) => r.url)).toEqual([
        '/client/v4/zones/zone123/dns_records/rec1',
      ]);

      // An order left pending and then abandoned (cancelled): its record goes.
      requests.length = 0;
      const one = [`c${Date.now()}.example.test`];
      const pending = await issuer.issue({
        csrDer: (await makeCsr(`CN=${one[0]}`, undefined, one)).csrDer,
        subject: '',
        dnsNames: one,
        validityMonths: 3,
      });
      if (pending.status !== 'pending') throw new Error(JSON.stringify(pending));
      await issuer.abandon(pending.resume);
      expect(requests.map((r) => r.method)).toEqual(['POST', 'DELETE']);
      expect(requests[1]!.url).toBe(`/client/v4/zones/zone123/dns_records/rec1`);
    }, drop);
  });

  it('fails clearly without the EAB the server requires, for a wildcard over http-01, and for a bad resume token', async () => {
    const issuer = new AcmeIssuer({
      directoryUrl: pebble.directoryUrl,
      accounts: new MemoryAccounts(null),
      challenge: 'http-01',
      http01: new MemoryHttp01(),
      fetch,
    });
    const { csrDer } = await makeCsr('CN=x', undefined, ['x.example.test']);
    expect(await issuer.issue({ csrDer, subject: '', dnsNames: ['x.example.test'], validityMonths: 3 })).toEqual({
      status: 'failed',
      error: 'The ACME server requires External Account Binding; configure its key id and HMAC key.',
    });
    const wrongMac = new AcmeIssuer({
      directoryUrl: pebble.directoryUrl,
      accounts: new MemoryAccounts({ kid: EAB.kid, hmacKey: new Uint8Array(32) }),
      challenge: 'http-01',
      http01: new MemoryHttp01(),
      fetch,
    });
    expect(await wrongMac.issue({ csrDer, subject: '', dnsNames: ['x.example.test'], validityMonths: 3 })).toMatchObject({
      status: 'failed',
      error: expect.stringMatching(/^ACME server: /),
    });

    const http01 = new MemoryHttp01();
    const withEab = new AcmeIssuer({
      directoryUrl: pebble.directoryUrl,
      accounts: new MemoryAccounts(EAB),
      challenge: 'http-01',
      http01,
      fetch,
    });
    const wildcard = await withEab.issue({ csrDer, subject: '', dnsNames: ['*.w.example.test'], validityMonths: 3 });
    expect(wildcard).toEqual({
      status: 'failed',
      error: 'The ACME server offers no http-01 challenge for w.example.test (wildcards need dns-01).',
    });
    expect(await withEab.resume('not-a-token')).toEqual({ status: 'failed', error: 'The ACME resume token is not valid.' });
    expect(await withEab.issue({ csrDer, subject: '', dnsNames: [], validityMonths: 3 })).toMatchObject({ status: 'failed' });
  });

  it('reports a Cloudflare API refusal without the token', async () => {
    const fake = createServer((_req, res) => {
      res.statusCode = 403;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ success: false, errors: [{ code: 10000, message: 'Authentication error' }], result: null }));
    });
    await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', resolve));
    try {
      const dns = new CloudflareDns({
        apiToken: 'secret-token-value',
        zoneId: 'z',
        apiBase: `http://127.0.0.1:${(fake.address() as AddressInfo).port}`,
      });
      const err = await dns.createTxt('_acme-challenge.a.test', 'v').catch((e: Error) => e);
      expect(err).toBeInstanceOf(Error);
      expect((err as Error).message).toBe('Cloudflare DNS POST failed: HTTP 403 (10000 Authentication error)');
      expect((err as Error).message).not.toContain('secret-token-value');
    } finally {
      await new Promise<void>((resolve) => fake.close(() => resolve()));
    }
  });
});
