// The Certificates API of one vault. A certificate version is three objects of one name and one
// version id, as on Azure: the key (managed, in the keys store: software, or in the HSM for -HSM
// and non-exportable policies), the secret (managed: PFX or PEM, with the key when exportable) and
// the certificate row itself. Create makes the key and a CSR and hands the CSR to the issuer; an
// issued chain completes the version (secret, then certificate). An issuer that answers 'pending'
// (ACME) leaves the operation inProgress with its resume token; the cron moves it on
// (continueIssuance) through the same completion. Delete, recover and purge move the three
// together; backup carries the three.
import { and, eq } from 'drizzle-orm';
import { now } from '../../core/clock';
import { fromUtf8, newVersionId, utf8 } from '../../core/encoding';
import { badParameter, conflict, notFound, VaultError } from '../../core/errors';
import { assertObjectName } from '../../core/validation';
import type { VaultRecord } from '../../core/vault';
import type { BridgeClient } from '../../crypto/bridge-client';
import type { DataKeyManager } from '../../crypto/data-keys';
import * as software from '../../crypto/keys';
import type { PublicJwk } from '../../crypto/keys';
import type { Database } from '../../storage/db';
import { noticeClaimed } from '../../storage/expiry-notices';
import { certificateOperations, certificatePolicies, certificates } from '../../storage/schema';
import { corruptBackup, openBackup, sealBackup } from '../backup';
import { VersionedStore } from '../engine/store';
import { KeyStore, type KeySpec, type NewMaterial } from '../keys';
import { SecretStore } from '../secrets';
import { fromBase64, toBase64 } from './der';
import { builtInIssuer, issuerForProvider } from './issuers';
import type { IssueContext, IssuerProvider, IssuerServices } from './issuers/contract';
import type { IssueOutcome, IssueRequest } from './issuers/types';
import { jwkOfPkcs8, jwkOfSpki, pkcs8Of, signingAlgorithm, spkiOf } from './key-formats';
import { certificateKind, type CertificateRecord, type HeadRow, type VersionRow } from './kind';
import { readPem, writePem } from './pem';
import { readPfx, writePfx } from './pkcs12';
import {
  keyOpsOf,
  keySpecOf,
  PEM,
  resolvePolicy,
  type CreateCertificateInput,
  type ImportCertificateInput,
  type MergeCertificateInput,
  type Policy,
  type PolicyInput,
  type UpdateCertificateInput,
} from './policy';
import { NEAR_EXPIRY_EVENT, nextRenewalDue } from './renewal-policy';
import { CertificateSettings } from './settings';
import { addMonths, certificationRequest, readCertificate, type CertificateInfo, type Signer } from './x509';

export interface OperationRecord {
  name: string;
  version: string;
  issuerName: string;
  status: 'inProgress' | 'completed' | 'cancelled';
  statusDetails: string | null;
  error: { code: string; message: string } | null;
  csr: string;
  cancellationRequested: boolean;
  requestId: string;
  policy: Policy;
  created: number;
  updated: number;
}

export interface PolicyRecord {
  name: string;
  policy: Policy;
  created: number;
  updated: number;
}

type OperationRow = typeof certificateOperations.$inferSelect;

export const IN_PROGRESS_DETAILS =
  'Pending certificate created. Certificate request is in progress. This may take some time based on the issuer provider. Please check again later.';
const pendingNotFound = (name: string) => notFound('PendingCertificateNotFound', `Pending certificate not found: ${name}`);
const mismatch = () => badParameter("Public key from x509 certificate and key of this instance doesn't match");
/** A pending issuance not done by then fails (ACME orders and authorizations expire within days). */
export const ISSUANCE_DEADLINE_SECONDS = 3 * 86_400;
/** A resume that failed for want of the CA or the bridge is tried again this much later. */
const RESUME_RETRY_SECONDS = 5 * 60;

/**
 * What the store's caller hears about. onNewVersion runs after every completed version (create
 * with an issuer that answers at once, merge, import, renewal, restore): the one place
 * CertificateNewVersionCreated is raised from, whatever path made the version. A version an
 * operation completes is announced once the operation is finished, so never one that a cancel or
 * DELETE …/pending made the store withdraw. It must not throw.
 */
export interface CertificateStoreHooks {
  onNewVersion?(record: CertificateRecord): Promise<void> | void;
  /** A fetch of its own for issuers that call out (ACME); the global fetch by default. */
  fetch?: IssuerServices['fetch'];
  dnsApiBase?: IssuerServices['dnsApiBase'];
}

/**
 * A pending operation of a Self-issued create still in progress after this long was left by a
 * run that died between making the key and storing the certificate (Self answers at once): a
 * renewal may replace it instead of waiting for a merge that will never come.
 */
const ABANDONED_SELF_OPERATION_SECONDS = 30 * 60;

/** What the backup of a certificate carries: the three objects' own backups and the policy. */
interface CertificateBackup {
  kind: 'certificate-bundle';
  certificate: string;
  key: string;
  secret: string | null;
  policy: Policy;
}

export class CertificateStore extends VersionedStore<HeadRow, VersionRow, CertificateRecord, CertificateRecord> {
  readonly keyStore: KeyStore;
  readonly secretStore: SecretStore;
  readonly settings: CertificateSettings;

  constructor(
    db: Database,
    dataKeys: DataKeyManager,
    private readonly bridge: BridgeClient,
    vault: VaultRecord,
    private readonly hooks: CertificateStoreHooks = {},
  ) {
    super(db, dataKeys, vault, certificateKind);
    this.keyStore = new KeyStore(db, dataKeys, bridge, vault);
    this.secretStore = new SecretStore(db, dataKeys, vault);
    this.settings = new CertificateSettings(db, dataKeys, vault);
  }

  // --- policy ---------------------------------------------------------------------------------

  async policy(name: string): Promise<PolicyRecord> {
    assertObjectName(name, 'certificate');
    const row = await this.db
      .select()
      .from(certificatePolicies)
      .where(and(eq(certificatePolicies.vaultId, this.vault.id), eq(certificatePolicies.name, name)))
      .get();
    if (!row) throw this.notFound(name);
    return { name: row.name, policy: JSON.parse(row.policy) as Policy, created: row.created, updated: row.updated };
  }

  /** PATCH /certificates/{name}/policy: the given sections over the stored policy. */
  async updatePolicy(name: string, input: PolicyInput): Promise<PolicyRecord> {
    const current = await this.policy(name);
    if ((await this.head(name))?.deletedAt != null) throw this.notFound(name);
    const stored = await this.storePolicy(current.name, resolvePolicy(input, current.policy));
    await this.reschedule(stored.name);
    return stored;
  }

  private async storePolicy(name: string, policy: Policy): Promise<PolicyRecord> {
    const t = now();
    const value = JSON.stringify(policy);
    const [row] = await this.db
      .insert(certificatePolicies)
      .values({ vaultId: this.vault.id, name, policy: value, enabled: policy.attributes.enabled, created: t, updated: t })
      .onConflictDoUpdate({
        target: [certificatePolicies.vaultId, certificatePolicies.name],
        set: { policy: value, enabled: policy.attributes.enabled, updated: t },
      })
      .returning();
    return { name: row!.name, policy, created: row!.created, updated: row!.updated };
  }

  /** The stored policy, or undefined when the name has none (never created). */
  async storedPolicy(name: string): Promise<Policy | undefined> {
    try {
      return (await this.policy(name)).policy;
    } catch (err) {
      if (err instanceof VaultError && err.status === 404) return undefined;
      throw err;
    }
  }

  // --- create, pending operation, merge ----------------------------------------------------------

  /** POST /certificates/{name}/create: a new version per the given (or stored) policy. */
  async create(name: string, input: CreateCertificateInput): Promise<OperationRecord> {
    assertObjectName(name, 'certificate');
    await this.assertWritable(name);
    const pending = await this.operationRow(name);
    if (pending?.status === 'inProgress')
      throw conflict(`Certificate ${name} has a pending operation; complete, cancel or delete it first.`);
    const stored = await this.storedPolicy(name);
    const policy = resolvePolicy(input.policy, input.policy ? undefined : stored);
    const issuerName = policy.issuer.name;
    const issuer = await this.issuerProvider(issuerName);
    const spec = keySpecOf(policy);
    const version = newVersionId();
    const t = now();
    const made = await this.makeKey(name, version, spec, policy, input, t);
    const signer = await this.signer(made.publicJwk!, made);
    const csr = await certificationRequest(policy.x509_props, signer);
    await this.storePolicy(name, policy);
    const requestId = newVersionId();
    await this.writeOperation({
      vaultId: this.vault.id,
      name,
      version,
      issuerName,
      status: 'inProgress',
      statusDetails: IN_PROGRESS_DETAILS,
      error: null,
      csr: toBase64(csr),
      cancellationRequested: false,
      requestId,
      resume: null,
      nextAttemptAt: null,
      created: t,
      updated: t,
    });
    const ctx = this.issueContext(policy, issuer.config, t, signer);
    let outcome: IssueOutcome;
    try {
      outcome = await issuer.provider.backend(ctx).issue(issueRequest(csr, policy));
    } catch (err) {
      // The CA unreachable or the bridge down at create: the operation fails at once (the caller
      // is waiting; the cron retries only work an issuer itself handed over).
      await this.finishOperation(name, requestId, issuerError(err));
      return this.operation(name);
    }
    await this.settle(name, requestId, outcome, t, async () => ({ made, policy, input }));
    return this.operation(name);
  }

  /**
   * The cron's half of a pending issuance: resumes the operation's issuer once and records where
   * it stands. Does nothing when the operation was cancelled, deleted, or replaced meanwhile.
   */
  async continueIssuance(name: string, requestId: string, t: number): Promise<IssueOutcome['status'] | 'gone'> {
    const row = await this.operationRow(name);
    if (!row || row.requestId !== requestId || row.status !== 'inProgress' || !row.resume) return 'gone';
    if (t - row.created > ISSUANCE_DEADLINE_SECONDS) {
      await this.finishOperation(name, requestId, {
        code: 'IssuerError',
        message: 'The issuer did not issue the certificate in time.',
      });
      await this.abandonIssuance(row);
      return 'failed';
    }
    const policy = (await this.storedPolicy(row.name))!;
    let outcome: IssueOutcome;
    try {
      const issuer = await this.issuerProvider(row.issuerName);
      const backend = issuer.provider.backend(this.issueContext(policy, issuer.config, t, null));
      if (!backend.resume) throw badParameter(`The issuer ${row.issuerName} cannot resume an issuance.`);
      outcome = await backend.resume(row.resume);
    } catch (err) {
      // The issuer's configuration is gone or wrong: final. Anything else (outage): later.
      if (err instanceof VaultError && err.status === 400) {
        await this.finishOperation(name, requestId, { code: err.code, message: err.message });
        return 'failed';
      }
      await this.db
        .update(certificateOperations)
        .set({ nextAttemptAt: t + RESUME_RETRY_SECONDS, updated: t })
        .where(and(this.operationIs(name), eq(certificateOperations.requestId, requestId)));
      throw err;
    }
    const settled = await this.settle(row.name, requestId, outcome, t, async () => {
      const material = await this.keyStore.material(row.name, row.version, true);
      const made: NewMaterial = {
        publicJwk: material.record.publicJwk,
        privateJwk: material.privateJwk,
        hsmHandle: material.hsmHandle,
      };
      // The create's tags and enabled went onto the key version; the rest of the version follows it.
      return { made, policy, input: { tags: material.record.tags, attributes: { enabled: material.record.enabled } } };
    });
    return settled ? outcome.status : 'gone';
  }

  /**
   * Records an issuer's answer: completes the version, keeps the resume token, or fails. False
   * when the operation was cancelled, deleted or replaced first (nothing of the answer stays).
   */
  private async settle(
    name: string,
    requestId: string,
    outcome: IssueOutcome,
    t: number,
    /** What completes the version, read only once there is a chain. */
    version: () => Promise<{ made: NewMaterial; policy: Policy; input: Parameters<CertificateStore['complete']>[5] }>,
  ): Promise<boolean> {
    switch (outcome.status) {
      case 'issued': {
        // Cancelled or replaced while the CA worked: the chain is dropped, nothing is stored.
        const row = await this.operationRow(name);
        if (!row || row.requestId !== requestId || row.status !== 'inProgress') return false;
        const { made, policy, input } = await version();
        const record = await this.complete(row.name, row.version, outcome.result.chainDer, made, policy, input);
        if (!(await this.finishOperation(name, requestId))) {
          await this.withdraw(row.name, row.version);
          return false;
        }
        await this.announce(record);
        return true;
      }
      case 'pending': {
        const kept = await this.db
          .update(certificateOperations)
          .set({ resume: outcome.resume, nextAttemptAt: t + Math.max(1, outcome.retryAfterSeconds), updated: t })
          .where(
            and(
              this.operationIs(name),
              eq(certificateOperations.requestId, requestId),
              eq(certificateOperations.status, 'inProgress'),
            ),
          )
          .returning({ name: certificateOperations.name });
        return kept.length > 0;
      }
      case 'failed':
        return this.finishOperation(name, requestId, { code: 'IssuerError', message: outcome.error.slice(0, 1000) });
      case 'merge':
        return true;
    }
  }

  /**
   * Best effort, for an issuance that will not be resumed: the issuer undoes what it left outside
   * the vault (ACME: http-01 answers, dns-01 TXT records), as it does itself once issued or failed.
   */
  private async abandonIssuance(row: OperationRow): Promise<void> {
    if (!row.resume) return;
    try {
      const policy = await this.storedPolicy(row.name);
      if (!policy) return;
      const issuer = await this.issuerProvider(row.issuerName);
      await issuer.provider.backend(this.issueContext(policy, issuer.config, now(), null)).abandon?.(row.resume);
    } catch (err) {
      console.error(`abandoned certificate issuance not cleaned up: ${err instanceof Error ? err.name : 'error'}`);
    }
  }

  private issueContext(policy: Policy, config: IssueContext['issuer'], t: number, signer: IssueContext['signer']): IssueContext {
    const services: IssuerServices = {
      db: this.db,
      keys: this.keys,
      bridge: this.bridge,
      fetch: this.hooks.fetch,
      dnsApiBase: this.hooks.dnsApiBase,
    };
    return { vault: this.vault, services, policy, now: t, signer, issuer: config };
  }

  async operation(name: string): Promise<OperationRecord> {
    const row = await this.operationRow(name);
    if (!row) throw pendingNotFound(name);
    const policy =
      (await this.storedPolicy(row.name)) ??
      resolvePolicy({ issuer: { name: row.issuerName }, x509_props: { subject: 'CN=unknown' } });
    return toOperation(row, policy);
  }

  /**
   * The version an unfinished operation will complete, for a certificate that has no completed
   * version yet: Azure answers GET /certificates/{name} with it (disabled, no cer) while the
   * operation is pending, cancelled or failed, and the SDKs' operation pollers read it first.
   */
  async unfinishedOperation(name: string): Promise<OperationRecord | undefined> {
    const row = await this.operationRow(name);
    return row && row.status !== 'completed' ? this.operation(name) : undefined;
  }

  /** PATCH …/pending {cancellation_requested}: an operation still in progress is cancelled. */
  async cancel(name: string, requested: boolean): Promise<OperationRecord> {
    const row = await this.operationRow(name);
    if (!row) throw pendingNotFound(name);
    if (requested && row.status === 'inProgress') {
      const [cancelled] = await this.db
        .update(certificateOperations)
        .set({
          cancellationRequested: true,
          status: 'cancelled',
          statusDetails: 'The certificate operation was cancelled.',
          // The cron looks for work by next_attempt_at: a cancelled issuance is never resumed.
          resume: null,
          nextAttemptAt: null,
          updated: now(),
        })
        .where(
          and(
            this.operationIs(name),
            eq(certificateOperations.requestId, row.requestId),
            eq(certificateOperations.status, 'inProgress'),
          ),
        )
        .returning({ name: certificateOperations.name });
      if (cancelled) {
        await this.abandonIssuance(row);
        await this.discardUnissued(row.name, row.version);
      }
    }
    return this.operation(name);
  }

  /** DELETE …/pending: the operation is removed (a pending certificate is never completed). */
  async deleteOperation(name: string): Promise<OperationRecord> {
    const op = await this.operation(name);
    const [deleted] = await this.db
      .delete(certificateOperations)
      .where(and(this.operationIs(name), eq(certificateOperations.requestId, op.requestId)))
      .returning();
    // Deleted while in progress: what it made goes as with a cancel (failed and cancelled ones went already).
    if (deleted?.status === 'inProgress') {
      await this.abandonIssuance(deleted);
      await this.discardUnissued(op.name, op.version);
    }
    return op;
  }

  /** POST …/pending/merge: the chain a CA issued for the pending CSR completes the version. */
  async merge(name: string, input: MergeCertificateInput): Promise<CertificateRecord> {
    const row = await this.operationRow(name);
    if (!row || row.status !== 'inProgress') throw pendingNotFound(name);
    const chain = input.x5c.map((c) => fromBase64(c, 'x5c certificate'));
    const leaf = await readCertificate(chain[0]!);
    const material = await this.keyStore.material(row.name, row.version, true);
    if (!(await sameKey(leaf.spki, material.record.publicJwk!))) throw mismatch();
    const policy = (await this.storedPolicy(row.name))!;
    const made: NewMaterial = {
      publicJwk: material.record.publicJwk,
      privateJwk: material.privateJwk,
      hsmHandle: material.hsmHandle,
    };
    const record = await this.complete(row.name, row.version, chain, made, policy, input, leaf);
    if (!(await this.finishOperation(row.name, row.requestId))) {
      await this.withdraw(row.name, row.version);
      throw pendingNotFound(name);
    }
    await this.announce(record);
    return record;
  }

  // --- renewal ---------------------------------------------------------------------------------

  /**
   * A new version through the certificate's issuer with its stored policy, as a create without a
   * policy makes it (new key, or the same software key with reuse_key): completed at once by
   * issuers that answer at once, else left pending. A pending operation still in progress is
   * answered as it is (the renewal already waits on the issuer or a merge), unless it is a
   * Self-issued create a dead run abandoned. Claims (who may renew when) are the caller's: see
   * src/jobs/certificate-renewal.ts.
   */
  async renew(name: string): Promise<OperationRecord> {
    const head = await this.head(name);
    if (!head || head.deletedAt != null) throw this.notFound(name);
    const pending = await this.operationRow(head.name);
    if (pending?.status === 'inProgress') {
      const abandoned =
        pending.issuerName.toLowerCase() === 'self' && pending.updated <= now() - ABANDONED_SELF_OPERATION_SECONDS;
      if (!abandoned) return this.operation(head.name);
      await this.db.delete(certificateOperations).where(this.operationIs(head.name));
      await this.discardUnissued(head.name, pending.version);
    }
    return this.create(head.name, {});
  }

  /**
   * Writes when the latest version's next lifetime action is due (certificates.renewal_due_at),
   * after what it depends on changed: the policy, the version's enabled state, a restore. An
   * EmailContacts action whose notice went out already is done.
   */
  async reschedule(name: string): Promise<number | null> {
    const head = await this.head(name);
    if (!head) return null;
    const policy = await this.storedPolicy(head.name);
    const latest = policy ? await this.record(head.name, undefined, false).catch(() => undefined) : undefined;
    let due: number | null = null;
    if (policy && latest) {
      const notice = {
        vaultId: this.vault.id,
        kind: 'certificate',
        name: head.name,
        version: latest.version,
        eventType: NEAR_EXPIRY_EVENT,
      };
      due = nextRenewalDue(policy, latest, { notified: await noticeClaimed(this.db, notice) });
    }
    await this.db.update(certificates).set({ renewalDueAt: due }).where(this.renewalHeadIs(head.name));
    return due;
  }

  // --- import ------------------------------------------------------------------------------------

  /** POST /certificates/{name}/import: a PFX (base64, with or without password) or PEM with its key. */
  async import(name: string, input: ImportCertificateInput): Promise<CertificateRecord> {
    assertObjectName(name, 'certificate');
    await this.assertWritable(name);
    const stored = await this.storedPolicy(name);
    const pem = input.value.includes('-----BEGIN');
    const contentType = input.policy?.secret_props?.contentType ?? (pem ? PEM : undefined);
    const parsed = pem ? readPem(input.value) : await readPfx(fromBase64(input.value, 'PFX content'), input.pwd ?? '');
    if (!parsed.pkcs8)
      throw badParameter('The certificate content has no private key: import needs the certificate with its private key.');
    const key = await jwkOfPkcs8(parsed.pkcs8);
    // The leaf is the certificate of the key; the rest of the chain follows it.
    const infos = await Promise.all(parsed.certs.map((c) => readCertificate(c)));
    const leafIndex = (await Promise.all(infos.map((i) => sameKey(i.spki, key.publicJwk)))).indexOf(true);
    if (leafIndex < 0) throw badParameter('The private key does not match the public key of any certificate in the content.');
    const leaf = infos[leafIndex]!;
    const chain = [leaf.der, ...parsed.certs.filter((_, i) => i !== leafIndex)];
    const policy = importedPolicy(input.policy, stored, leaf, key.publicJwk, contentType);
    const spec = keySpecOf(policy);
    const version = newVersionId();
    const fields = {
      keyOps: keyOpsOf(policy),
      tags: input.tags,
      enabled: input.attributes?.enabled ?? true,
      nbf: leaf.notBefore,
      exp: leaf.notAfter,
    };
    let made: NewMaterial | undefined;
    await this.keyStore.addVersion(
      name,
      spec,
      async (id) => {
        if (!spec.kind.endsWith('-HSM')) return (made = { publicJwk: key.publicJwk, privateJwk: key.privateJwk });
        const imported = await this.bridge.importKey(id, key.privateJwk as unknown as Record<string, string>);
        return (made = { publicJwk: imported.publicJwk as PublicJwk, hsmHandle: imported.handle });
      },
      fields,
      { version, managed: true },
    );
    // The secret keeps the key only when the policy lets it leave.
    const secretMaterial: NewMaterial = { ...made!, privateJwk: key.privateJwk };
    await this.storePolicy(name, policy);
    const record = await this.complete(name, version, chain, secretMaterial, policy, input, leaf);
    await this.announce(record);
    return record;
  }

  // --- reads and updates ---------------------------------------------------------------------------

  get(name: string, version?: string): Promise<CertificateRecord> {
    return this.record(name, version);
  }

  /** PATCH /certificates/{name}/{version}: attributes and tags (enabled follows to key and secret), and the policy. */
  async update(name: string, version: string | undefined, input: UpdateCertificateInput): Promise<CertificateRecord> {
    const updated = await this.patch(name, version, {
      tags: input.tags,
      attributes: input.attributes ? { enabled: input.attributes.enabled } : undefined,
    });
    const enabled = input.attributes?.enabled;
    if (enabled != null) {
      const change = { attributes: { enabled } };
      await ignoreMissing(this.keyStore.update(updated.name, updated.version, change, true));
      await ignoreMissing(this.secretStore.update(updated.name, updated.version, change, true));
    }
    if (input.policy) await this.updatePolicy(updated.name, input.policy);
    else if (enabled != null) await this.reschedule(updated.name);
    return updated;
  }

  // --- lifecycle of the three objects --------------------------------------------------------------

  override async delete(name: string): Promise<CertificateRecord> {
    const deleted = await super.delete(name);
    await ignoreMissing(this.keyStore.delete(deleted.name, true));
    await ignoreMissing(this.secretStore.delete(deleted.name, true));
    await this.db.delete(certificateOperations).where(this.operationIs(deleted.name));
    return deleted;
  }

  override async recover(name: string): Promise<CertificateRecord> {
    const recovered = await super.recover(name);
    await ignoreMissing(this.keyStore.recover(recovered.name));
    await ignoreMissing(this.secretStore.recover(recovered.name));
    return recovered;
  }

  override async purge(name: string): Promise<void> {
    const head = await this.head(name);
    await super.purge(name);
    const stored = head?.name ?? name;
    await ignoreMissing(this.keyStore.purge(stored));
    await ignoreMissing(this.secretStore.purge(stored));
    await this.db
      .delete(certificatePolicies)
      .where(and(eq(certificatePolicies.vaultId, this.vault.id), eq(certificatePolicies.name, stored)));
  }

  override async backup(name: string): Promise<string> {
    const certificate = await super.backup(name);
    const head = (await this.head(name))!;
    const payload: CertificateBackup = {
      kind: 'certificate-bundle',
      certificate,
      key: await this.keyStore.backup(head.name),
      secret: (await this.secretStore.head(head.name)) ? await this.secretStore.backup(head.name) : null,
      policy: (await this.policy(head.name)).policy,
    };
    return sealBackup(this.keys, 'certificate', utf8(JSON.stringify(payload)));
  }

  override async restore(blob: string): Promise<CertificateRecord> {
    let payload: CertificateBackup;
    try {
      payload = JSON.parse(fromUtf8(await openBackup(this.keys, 'certificate', blob))) as CertificateBackup;
    } catch (err) {
      if (err instanceof VaultError) throw err;
      throw corruptBackup();
    }
    if (payload?.kind !== 'certificate-bundle' || typeof payload.certificate !== 'string' || typeof payload.key !== 'string')
      throw corruptBackup();
    // The certificate first: it refuses a name in use before anything is written.
    const restored = await super.restore(payload.certificate);
    await this.keyStore.restore(payload.key);
    if (payload.secret) await this.secretStore.restore(payload.secret);
    await this.storePolicy(restored.name, payload.policy);
    await this.reschedule(restored.name);
    await this.announce(restored);
    return restored;
  }

  // --- internals -------------------------------------------------------------------------------------

  /** The key of a new version: generated (or, with reuse_key, the latest software key again). */
  private async makeKey(
    name: string,
    version: string,
    spec: KeySpec,
    policy: Policy,
    input: CreateCertificateInput,
    t: number,
  ): Promise<NewMaterial> {
    let made: NewMaterial | undefined;
    const generate = this.keyStore.generator(spec);
    const previous = policy.key_props.reuse_key ? await this.reusableKey(name, spec) : undefined;
    const self = policy.issuer.name.toLowerCase() === 'self';
    await this.keyStore.addVersion(
      name,
      spec,
      async (id) => (made = previous ?? (await generate(id))),
      {
        keyOps: keyOpsOf(policy),
        tags: input.tags,
        enabled: input.attributes?.enabled ?? true,
        // A self-signed certificate's validity is known now; the key shares it.
        ...(self ? { nbf: t, exp: addMonths(t, policy.x509_props.validity_months) } : {}),
      },
      { version, managed: true },
    );
    return made!;
  }

  /** reuse_key: the latest version's software key (an HSM key is never shared between versions). */
  private async reusableKey(name: string, spec: KeySpec): Promise<NewMaterial | undefined> {
    if (spec.kind.endsWith('-HSM')) return undefined;
    try {
      const latest = await this.keyStore.material(name, undefined, true);
      if (latest.record.kind !== spec.kind || !latest.privateJwk) return undefined;
      return { publicJwk: latest.record.publicJwk, privateJwk: latest.privateJwk };
    } catch (err) {
      if (err instanceof VaultError && err.status === 404) return undefined;
      throw err;
    }
  }

  /** Signs with the certificate's key: in the Worker, or in the HSM through the bridge. */
  private async signer(publicJwk: PublicJwk, made: NewMaterial): Promise<Signer> {
    const alg = signingAlgorithm(publicJwk);
    const spki = await spkiOf(publicJwk);
    const sign = made.hsmHandle
      ? (digest: Uint8Array) => this.bridge.sign(made.hsmHandle!, alg, digest)
      : (digest: Uint8Array) => software.sign(made.privateJwk!, alg, digest);
    return { alg, spki, sign };
  }

  /**
   * Stores the secret (PFX or PEM, with the key when exportable) and the certificate version. It
   * does not announce it: a version an operation completes may still be withdrawn (withdraw()), so
   * each caller announces once its version stands.
   */
  private async complete(
    name: string,
    version: string,
    chain: Uint8Array[],
    made: NewMaterial,
    policy: Policy,
    input: { attributes?: { enabled?: boolean | null } | null; tags?: Record<string, string> | null },
    known?: CertificateInfo,
  ): Promise<CertificateRecord> {
    const leaf = known ?? (await readCertificate(chain[0]!));
    const exportable = policy.key_props.exportable && !policy.key_props.kty.endsWith('-HSM') && made.privateJwk !== undefined;
    const pkcs8 = exportable ? await pkcs8Of(made.privateJwk!) : null;
    const contentType = policy.secret_props.contentType;
    const value = contentType === PEM ? writePem(chain, pkcs8) : toBase64(await writePfx(chain, pkcs8));
    const enabled = input.attributes?.enabled ?? true;
    const attributes = { enabled, nbf: leaf.notBefore, exp: leaf.notAfter };
    await this.secretStore.setManaged(name, version, { value, contentType, attributes, tags: input.tags });
    const spec = keySpecOf(policy);
    const record = await this.add(
      name,
      { tags: input.tags, attributes },
      async () => ({
        row: {
          cer: toBase64(leaf.der),
          x5t: leaf.x5t,
          contentType,
          dataKeyId: null,
          issuerName: policy.issuer.name,
          selfSigned: leaf.selfIssued,
          kty: spec.kind,
          keySize: spec.size ?? null,
          crv: spec.crv ?? null,
        },
      }),
      { version },
    );
    // The new latest version's lifetime actions; a renewal claim held for the old one is done.
    await this.db
      .update(certificates)
      .set({ renewalDueAt: nextRenewalDue(policy, record, { notified: false }), renewalClaim: null, renewalClaimUntil: null })
      .where(this.renewalHeadIs(record.name));
    return record;
  }

  /** CertificateNewVersionCreated, through the caller's hook, for a version that stands. */
  private async announce(record: CertificateRecord): Promise<void> {
    await this.hooks.onNewVersion?.(record);
  }

  private renewalHeadIs(name: string) {
    return and(eq(certificates.vaultId, this.vault.id), eq(certificates.name, name));
  }

  private async issuerProvider(issuerName: string): Promise<{ provider: IssuerProvider; config: IssueContext['issuer'] }> {
    const builtIn = builtInIssuer(issuerName);
    if (builtIn) return { provider: builtIn, config: null };
    const configured = await this.settings.issuerConfig(issuerName);
    if (!configured)
      throw badParameter(
        `Issuer not found: ${issuerName}. Use Self, Unknown, or configure the issuer first (PUT /certificates/issuers/${issuerName}).`,
      );
    const provider = issuerForProvider(configured.provider, configured.name);
    if (!configured.enabled) throw badParameter(`The issuer ${configured.name} is disabled.`);
    await this.settings.check(configured);
    return { provider, config: configured };
  }

  /** A deleted certificate's name cannot be reused until it is recovered or purged. */
  private async assertWritable(name: string): Promise<void> {
    const head = await this.head(name);
    if (head?.deletedAt != null) throw certificateKind.errors.deletedConflict(name);
  }

  private notFound(name: string) {
    return certificateKind.errors.notFound(name);
  }

  private operationIs(name: string) {
    return and(eq(certificateOperations.vaultId, this.vault.id), eq(certificateOperations.name, name));
  }

  private operationRow(name: string): Promise<OperationRow | undefined> {
    assertObjectName(name, 'certificate');
    return this.db.select().from(certificateOperations).where(this.operationIs(name)).get();
  }

  private async writeOperation(row: OperationRow): Promise<void> {
    await this.db
      .insert(certificateOperations)
      .values(row)
      .onConflictDoUpdate({
        target: [certificateOperations.vaultId, certificateOperations.name],
        set: { ...row, name: undefined } as never,
      });
  }

  /**
   * Completes the operation (with `error` when issuance failed, as Azure reports it), unless it was
   * cancelled or replaced. A failed one leaves no key or secret version behind. Whether it was
   * this call that finished it.
   */
  protected async finishOperation(name: string, requestId: string, error?: { code: string; message: string }): Promise<boolean> {
    const [finished] = await this.db
      .update(certificateOperations)
      .set({
        status: 'completed',
        statusDetails: error ? error.message : null,
        error: error ? JSON.stringify(error) : null,
        resume: null,
        nextAttemptAt: null,
        updated: now(),
      })
      .where(
        and(
          this.operationIs(name),
          eq(certificateOperations.requestId, requestId),
          eq(certificateOperations.status, 'inProgress'),
        ),
      )
      .returning({ name: certificateOperations.name, version: certificateOperations.version });
    if (error && finished) await this.discardUnissued(finished.name, finished.version);
    return finished !== undefined;
  }

  /**
   * Undoes a completion whose operation a cancel or DELETE …/pending marked first, after the
   * completion's check: as on Azure the first mark wins. The cancel's discardUnissued ran either
   * before complete() wrote the secret and certificate or after (and then skipped the version, a
   * certificate had it), so the version goes here, all three objects (absent ones are no-ops),
   * and the renewal schedule follows the version that is latest again (none if nothing is left).
   */
  private async withdraw(name: string, version: string): Promise<void> {
    await this.discardVersion(name, version);
    await this.keyStore.discardVersion(name, version);
    await this.secretStore.discardVersion(name, version);
    await this.reschedule(name);
  }

  /**
   * The key (and any secret) version an operation made, once the operation failed or was
   * cancelled: removed, and the certificate's earlier version stays the latest of its key and
   * secret, as on Azure, where only an issued version is the certificate's. Never a version the
   * certificate has (completed meanwhile).
   */
  private async discardUnissued(name: string, version: string): Promise<void> {
    if (await this.record(name, version, false).catch(() => undefined)) return;
    await this.keyStore.discardVersion(name, version);
    await this.secretStore.discardVersion(name, version);
  }
}

/** What the issuer is asked for: the policy's subject, names and usages, with the key's CSR. */
function issueRequest(csrDer: Uint8Array, policy: Policy): IssueRequest {
  const x = policy.x509_props;
  return {
    csrDer,
    subject: x.subject,
    dnsNames: x.sans?.dns_names ?? [],
    validityMonths: x.validity_months,
    keyUsage: x.key_usage,
    ekus: x.ekus,
  };
}

/** An issuer that threw: its own Azure-shaped error, or a generic one (nothing of the cause leaks). */
function issuerError(err: unknown): { code: string; message: string } {
  if (err instanceof VaultError) return { code: err.code, message: err.message };
  console.error(`certificate issuer failed: ${err instanceof Error ? err.name : 'error'}`);
  return { code: 'IssuerError', message: 'The issuer failed to issue the certificate (unreachable or unavailable).' };
}

/** Whether a certificate's SubjectPublicKeyInfo is the public half of `jwk`. */
async function sameKey(spki: Uint8Array, jwk: PublicJwk): Promise<boolean> {
  try {
    const other = await jwkOfSpki(spki);
    if (jwk.kty.startsWith('RSA')) return other.kty === 'RSA' && other.n === jwk.n && other.e === jwk.e;
    return other.kty === 'EC' && other.crv === jwk.crv && other.x === jwk.x && other.y === jwk.y;
  } catch {
    return false;
  }
}

/** The policy of an imported certificate: the request's, with what the certificate and key say. */
function importedPolicy(
  input: PolicyInput | null | undefined,
  stored: Policy | undefined,
  leaf: CertificateInfo,
  key: PublicJwk,
  contentType?: string,
): Policy {
  const rsa = key.kty === 'RSA';
  const base = resolvePolicy(input, stored, true);
  const months = Math.max(1, Math.round((leaf.notAfter - leaf.notBefore) / (30.44 * 86400)));
  const hsm = base.key_props.kty.endsWith('-HSM');
  return {
    ...base,
    key_props: {
      exportable: base.key_props.exportable,
      kty: `${rsa ? 'RSA' : 'EC'}${hsm ? '-HSM' : ''}` as Policy['key_props']['kty'],
      ...(rsa ? { key_size: software.rsaKeySize(key) } : { crv: key.crv as Policy['key_props']['crv'] }),
      reuse_key: base.key_props.reuse_key,
    },
    secret_props: { contentType: contentType ?? base.secret_props.contentType },
    x509_props: {
      subject: leaf.subject,
      ...(Object.keys(leaf.sans).length ? { sans: leaf.sans } : {}),
      ekus: leaf.ekus,
      key_usage: leaf.keyUsage,
      validity_months: months,
    },
    issuer: { ...base.issuer, name: input?.issuer?.name ?? stored?.issuer.name ?? 'Unknown' },
  };
}

function toOperation(row: OperationRow, policy: Policy): OperationRecord {
  return {
    name: row.name,
    version: row.version,
    issuerName: row.issuerName,
    status: row.status as OperationRecord['status'],
    statusDetails: row.statusDetails,
    error: row.error ? (JSON.parse(row.error) as { code: string; message: string }) : null,
    csr: row.csr,
    cancellationRequested: row.cancellationRequested,
    requestId: row.requestId,
    policy,
    created: row.created,
    updated: row.updated,
  };
}

/** A 404 of a key or secret that a pending or imported certificate does not have is no error here. */
async function ignoreMissing<T>(p: Promise<T>): Promise<T | undefined> {
  try {
    return await p;
  } catch (err) {
    if (err instanceof VaultError && err.status === 404) return undefined;
    throw err;
  }
}
