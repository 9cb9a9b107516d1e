// The internal CA's certificates judged by independent implementations: openssl verifies the
// chain, and node:https serves a leaf that a client trusting only the CA accepts. The CA key is
// generated in a real SoftHSM2 token through the real bridge, and issuance is the same code the
// Worker runs (ca-core.ts, signing.ts), here driven from Node without D1 (internal-ca.ts only adds
// the D1 row around it, covered in test/worker/internal-ca.test.ts).
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request, createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { BridgeClient } from '../../src/crypto/bridge-client';
import { createCaCertificate, issueLeaf, toPem } from '../../src/objects/certificates/issuers/ca-core';
import { hsmSigner, type CaSigner } from '../../src/objects/certificates/issuers/signing';
import { makeCsr, privateKeyPem } from '../support/csr';

const run = promisify(execFile);
let dir: string;

async function newCa(subject: string): Promise<{ signer: CaSigner; certDer: Uint8Array; pemPath: string }> {
  const bridge = new BridgeClient(inject('bridgeUrl'), inject('bridgeSecret'));
  const { handle, publicJwk } = await bridge.generateKey(randomBytes(16).toString('hex'), { kty: 'EC', crv: 'P-256' });
  const signer = await hsmSigner(bridge, handle, publicJwk!);
  const certDer = await createCaCertificate(signer, subject);
  const pemPath = join(dir, `${randomBytes(4).toString('hex')}-ca.pem`);
  await writeFile(pemPath, toPem(certDer));
  return { signer, certDer, pemPath };
}

async function openssl(...args: string[]): Promise<{ ok: boolean; out: string }> {
  try {
    const { stdout, stderr } = await run('openssl', args);
    return { ok: true, out: stdout + stderr };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    return { ok: false, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ekv-ca-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('internal CA certificates, checked by openssl and node:https', () => {
  let ca: Awaited<ReturnType<typeof newCa>>;
  let leafPem: string;
  let leafKeyPem: string;

  beforeAll(async () => {
    ca = await newCa('CN=Test Internal CA, O=Edge Key Vault');
    const { csrDer, keys } = await makeCsr('CN=whatever');
    const leaf = await issueLeaf(ca, {
      csrDer,
      subject: 'CN=tls.example.test',
      dnsNames: ['tls.example.test'],
      validityMonths: 3,
    });
    leafPem = toPem(leaf);
    leafKeyPem = await privateKeyPem(keys);
    await writeFile(join(dir, 'leaf.pem'), leafPem);
  });

  it('openssl verifies the leaf against the CA, for TLS server use', async () => {
    const result = await openssl('verify', '-purpose', 'sslserver', '-x509_strict', '-CAfile', ca.pemPath, join(dir, 'leaf.pem'));
    expect(result.out).toContain('leaf.pem: OK');
    expect(result.ok).toBe(true);
    const text = await openssl('x509', '-in', ca.pemPath, '-noout', '-text');
    expect(text.out).toMatch(/CA:TRUE, pathlen:0/);
    expect(text.out).toMatch(/Certificate Sign, CRL Sign/);
  });

  it('openssl refuses the leaf against another CA', async () => {
    const other = await newCa('CN=Test Internal CA, O=Edge Key Vault');
    const result = await openssl('verify', '-CAfile', other.pemPath, join(dir, 'leaf.pem'));
    expect(result.ok).toBe(false);
    expect(result.out).toMatch(/certificate signature failure|unable to get local issuer/);
  });

  describe('a TLS server with the issued leaf', () => {
    let server: Server;
    let port: number;
    beforeAll(async () => {
      server = createServer({ key: leafKeyPem, cert: leafPem }, (_req, res) => res.end('hello over TLS'));
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      port = (server.address() as AddressInfo).port;
    });
    afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

    const get = (opts: { ca?: string; servername: string }) =>
      new Promise<string>((resolve, reject) => {
        const req = request(
          { host: '127.0.0.1', port, path: '/', servername: opts.servername, ca: opts.ca, agent: false },
          (res) => {
            let body = '';
            res.on('data', (d) => (body += d));
            res.on('end', () => resolve(body));
          },
        );
        req.on('error', reject);
        req.end();
      });

    it('is accepted by a client that trusts only the vault CA', async () => {
      expect(await get({ ca: toPem(ca.certDer), servername: 'tls.example.test' })).toBe('hello over TLS');
    });

    it('is refused by a client that does not trust the CA, and for another name', async () => {
      await expect(get({ servername: 'tls.example.test' })).rejects.toMatchObject({ code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' });
      await expect(get({ ca: toPem(ca.certDer), servername: 'other.example.test' })).rejects.toMatchObject({
        code: 'ERR_TLS_CERT_ALTNAME_INVALID',
      });
    });
  });
});
