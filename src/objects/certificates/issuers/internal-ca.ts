/**
 * The internal CA issuer: one root CA per vault, created on first use, whose EC/RSA key is
 * generated in and never leaves the HSM (only digests go to the bridge).
 *
 * Per vault rather than per deployment: a vault is the trust boundary (its RBAC decides who may
 * issue), so relying parties that trust vault A's CA do not trust what vault B's users can mint,
 * and purging a vault retires its CA. No intermediate: the point of an intermediate is to keep the
 * root key offline, and here the root key is already confined to the HSM; a two-element chain
 * (leaf, root) also keeps clients' trust setup to one file.
 */
import { and, eq } from 'drizzle-orm';
import { fromBase64Url, toBase64Url } from '../../../core/encoding';
import type { VaultRecord } from '../../../core/vault';
import type { BridgeClient, HsmKeySpec } from '../../../crypto/bridge-client';
import type { Database } from '../../../storage/db';
import { certificateAuthorities } from '../../../storage/schema';
import { IssueError, createCaCertificate, issueLeaf } from './ca-core';
import { SubjectError } from './certificate-builder';
import { CsrError } from './csr';
import { algFor, hsmSigner, type CaSigner } from './signing';
import type { IssueOutcome, IssueRequest, IssuerBackend } from './types';

export interface CaRecord {
  vaultId: string;
  keyHandle: string;
  alg: string;
  certDer: Uint8Array;
}

const DEFAULT_KEY: HsmKeySpec = { kty: 'EC', crv: 'P-256' };

/** The vault's CA certificate (DER), or undefined before the CA was first used. */
export async function caCertificate(db: Database, vaultId: string): Promise<Uint8Array | undefined> {
  const row = await db
    .select({ certDer: certificateAuthorities.certDer })
    .from(certificateAuthorities)
    .where(eq(certificateAuthorities.vaultId, vaultId))
    .get();
  return row ? fromBase64Url(row.certDer) : undefined;
}

export class InternalCa implements IssuerBackend {
  constructor(
    private readonly db: Database,
    private readonly bridge: BridgeClient,
    private readonly vault: VaultRecord,
    /** The key type of the CA when this call creates it (EC P-256 unless told otherwise). */
    private readonly keySpec: HsmKeySpec = DEFAULT_KEY,
  ) {}

  /** The vault's CA, created (key in the HSM, self-signed certificate, D1 row) on first use. */
  async ensure(): Promise<CaRecord> {
    const existing = await this.load();
    if (existing) return existing;
    const id = toHex(crypto.getRandomValues(new Uint8Array(16)));
    const { handle, publicJwk } = await this.bridge.generateKey(id, this.keySpec);
    if (!publicJwk) throw new Error('the HSM returned no public key for the CA key');
    const signer = await hsmSigner(this.bridge, handle, publicJwk);
    const certDer = await createCaCertificate(signer, `CN=${this.vault.name} Internal CA, O=Edge Key Vault`);
    const inserted = await this.db
      .insert(certificateAuthorities)
      .values({
        vaultId: this.vault.id,
        keyHandle: handle,
        alg: algFor(publicJwk),
        certDer: toBase64Url(certDer),
        createdAt: Math.floor(Date.now() / 1000),
      })
      .onConflictDoNothing()
      .returning({ vaultId: certificateAuthorities.vaultId });
    if (inserted.length === 0) {
      // A concurrent request created the vault's CA first: use that one, drop our key.
      await this.bridge.destroyKey(handle).catch(() => undefined);
      const winner = await this.load();
      if (!winner) throw new Error('the vault CA vanished while being created');
      return winner;
    }
    return { vaultId: this.vault.id, keyHandle: handle, alg: algFor(publicJwk), certDer };
  }

  /** Issues a leaf for the CSR: at once, since no one else has to act. */
  async issue(req: IssueRequest): Promise<IssueOutcome> {
    const ca = await this.ensure();
    const signer = await this.signer(ca);
    try {
      const leaf = await issueLeaf({ signer, certDer: ca.certDer }, req);
      return { status: 'issued', result: { chainDer: [leaf, ca.certDer] } };
    } catch (err) {
      // Problems with the request itself are final; bridge or D1 trouble is thrown (retryable).
      if (err instanceof CsrError || err instanceof IssueError || err instanceof SubjectError)
        return { status: 'failed', error: err.message };
      throw err;
    }
  }

  private async signer(ca: CaRecord): Promise<CaSigner> {
    // The public key is read from the token, not from the stored certificate, so a row pointing
    // at the wrong token object cannot produce certificates that chain to nothing.
    return hsmSigner(this.bridge, ca.keyHandle, await this.bridge.publicKey(ca.keyHandle));
  }

  private async load(): Promise<CaRecord | undefined> {
    const row = await this.db
      .select()
      .from(certificateAuthorities)
      .where(and(eq(certificateAuthorities.vaultId, this.vault.id)))
      .get();
    return row
      ? { vaultId: row.vaultId, keyHandle: row.keyHandle, alg: row.alg, certDer: fromBase64Url(row.certDer) }
      : undefined;
  }
}

function toHex(bytes: Uint8Array): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
}
