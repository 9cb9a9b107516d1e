// Azure's CertificatePolicy: the request shapes (what a create, import or PATCH may send), the
// complete policy the vault stores (every default filled in as Azure fills it), and what follows
// from a policy: the key to make, its key_ops, the secret's content type.
import * as z from 'zod';
import { badParameter } from '../../core/errors';
import { attributes, tags } from '../../core/validation';
import type { Curve, KeyKind } from '../../crypto/keys';
import type { KeySpec } from '../keys';
import { KEY_USAGE_NAMES } from './x509';

export const PKCS12 = 'application/x-pkcs12';
export const PEM = 'application/x-pem-file';

const names = z.array(z.string().min(1).max(256)).max(100).nullish();
const trigger = z.object({
  lifetime_percentage: z.number().int().min(1).max(99).nullish(),
  days_before_expiry: z.number().int().min(1).nullish(),
});

export const policyBody = z.object({
  id: z.string().nullish(),
  key_props: z
    .object({
      exportable: z.boolean().nullish(),
      kty: z.enum(['RSA', 'RSA-HSM', 'EC', 'EC-HSM']).nullish(),
      key_size: z.number().int().nullish(),
      reuse_key: z.boolean().nullish(),
      crv: z.enum(['P-256', 'P-384', 'P-521', 'P-256K']).nullish(),
    })
    .nullish(),
  secret_props: z.object({ contentType: z.enum([PKCS12, PEM]).nullish() }).nullish(),
  x509_props: z
    .object({
      subject: z.string().max(1024).nullish(),
      ekus: z
        .array(z.string().regex(/^[0-2](\.\d+)+$/, 'ekus are object identifiers such as 1.3.6.1.5.5.7.3.1'))
        .max(32)
        .nullish(),
      sans: z.object({ emails: names, dns_names: names, upns: names }).nullish(),
      key_usage: z.array(z.enum(KEY_USAGE_NAMES as [string, ...string[]])).nullish(),
      validity_months: z.number().int().min(1).max(1200).nullish(),
    })
    .nullish(),
  lifetime_actions: z
    .array(z.object({ trigger, action: z.object({ action_type: z.enum(['EmailContacts', 'AutoRenew']) }) }))
    .max(2)
    .nullish(),
  issuer: z
    .object({
      name: z.string().min(1).max(127).nullish(),
      cty: z.string().max(64).nullish(),
      cert_transparency: z.boolean().nullish(),
    })
    .nullish(),
  attributes: z.object({ enabled: z.boolean().nullish() }).passthrough().nullish(),
});
export type PolicyInput = z.infer<typeof policyBody>;

export const createCertificateBody = z.object({
  policy: policyBody.nullish(),
  attributes: attributes.nullish(),
  tags,
  preserveCertOrder: z.boolean().nullish(),
});
export type CreateCertificateInput = z.infer<typeof createCertificateBody>;

export const importCertificateBody = z.object({
  value: z.string().min(1).max(200_000),
  pwd: z.string().max(1024).nullish(),
  policy: policyBody.nullish(),
  attributes: attributes.nullish(),
  tags,
  preserveCertOrder: z.boolean().nullish(),
});
export type ImportCertificateInput = z.infer<typeof importCertificateBody>;

export const mergeCertificateBody = z.object({
  x5c: z.array(z.string().min(1).max(100_000)).min(1).max(10),
  attributes: attributes.nullish(),
  tags,
});
export type MergeCertificateInput = z.infer<typeof mergeCertificateBody>;

export const updateCertificateBody = z.object({ policy: policyBody.nullish(), attributes: attributes.nullish(), tags });
export type UpdateCertificateInput = z.infer<typeof updateCertificateBody>;

export const operationUpdateBody = z.object({ cancellation_requested: z.boolean() });

/** The complete policy the vault stores: Azure's defaults filled in. */
export interface Policy {
  key_props: {
    exportable: boolean;
    kty: 'RSA' | 'RSA-HSM' | 'EC' | 'EC-HSM';
    key_size?: number;
    crv?: Curve;
    reuse_key: boolean;
  };
  secret_props: { contentType: string };
  x509_props: {
    subject: string;
    sans?: { emails?: string[]; dns_names?: string[]; upns?: string[] };
    ekus: string[];
    key_usage: string[];
    validity_months: number;
  };
  lifetime_actions: {
    trigger: { lifetime_percentage?: number; days_before_expiry?: number };
    action: { action_type: 'EmailContacts' | 'AutoRenew' };
  }[];
  issuer: { name: string; cty?: string; cert_transparency?: boolean };
  attributes: { enabled: boolean };
}

const EC_SIZES: Record<number, Curve> = { 256: 'P-256', 384: 'P-384', 521: 'P-521' };
const defined = <T extends object>(o: T) => Object.fromEntries(Object.entries(o).filter(([, v]) => v != null)) as T;

/**
 * A complete policy from a request's policy, over `base` (the stored one, for PATCH and for a new
 * version made without a policy). `forImport`: subject and SANs come from the certificate itself.
 */
export function resolvePolicy(input: PolicyInput | null | undefined, base?: Policy, forImport = false): Policy {
  const k = { ...base?.key_props, ...defined(input?.key_props ?? {}) };
  const kty = k.kty ?? 'RSA';
  const ec = kty.startsWith('EC');
  let key_size: number | undefined;
  let crv: Curve | undefined;
  if (ec) {
    if (k.key_size != null && !EC_SIZES[k.key_size])
      throw badParameter(`The key size ${k.key_size} does not name a supported curve; use crv P-256, P-384 or P-521.`);
    crv = (input?.key_props?.crv ??
      (k.key_size != null ? EC_SIZES[k.key_size] : undefined) ??
      base?.key_props.crv ??
      'P-256') as Curve;
    if (crv === 'P-256K') throw badParameter('Certificates with P-256K keys are not supported: use P-256, P-384 or P-521.');
  } else {
    key_size = (input?.key_props?.key_size ?? base?.key_props.key_size ?? 2048) as number;
    if (![2048, 3072, 4096].includes(key_size))
      throw badParameter(`The key size ${key_size} is not supported for ${kty} keys: use 2048, 3072 or 4096.`);
  }
  const x = input?.x509_props;
  const bx = base?.x509_props;
  const subject = x?.subject ?? bx?.subject ?? '';
  const sans = x?.sans
    ? defined({ emails: x.sans.emails ?? undefined, dns_names: x.sans.dns_names ?? undefined, upns: x.sans.upns ?? undefined })
    : bx?.sans;
  const hasSans = !!sans && Object.values(sans).some((v) => v && v.length > 0);
  if (!forImport && !subject && !hasSans)
    throw badParameter('The policy must name a subject or subject alternative names (x509_props.subject or x509_props.sans).');
  const issuerName = input?.issuer?.name ?? base?.issuer.name ?? 'Unknown';
  const actions = (input?.lifetime_actions ??
    base?.lifetime_actions ?? [
      {
        trigger: { lifetime_percentage: 80 },
        action: { action_type: issuerName.toLowerCase() === 'unknown' ? 'EmailContacts' : 'AutoRenew' },
      },
    ]) as Policy['lifetime_actions'];
  for (const a of actions) {
    const t = a.trigger;
    if ((t.lifetime_percentage == null) === (t.days_before_expiry == null)) {
      throw badParameter('Each lifetime action trigger names exactly one of lifetime_percentage and days_before_expiry.');
    }
    if (a.action.action_type === 'AutoRenew' && issuerName.toLowerCase() === 'unknown') {
      throw badParameter('AutoRenew is not supported for certificates of the Unknown issuer: use EmailContacts.');
    }
  }
  const months = x?.validity_months ?? bx?.validity_months ?? 12;
  for (const a of actions) {
    if (a.trigger.days_before_expiry != null && a.trigger.days_before_expiry >= months * 28) {
      throw badParameter('days_before_expiry must be shorter than the certificate validity.');
    }
  }
  const issuer = defined({
    name: issuerName,
    cty: input?.issuer?.cty ?? base?.issuer.cty ?? undefined,
    cert_transparency: input?.issuer?.cert_transparency ?? base?.issuer.cert_transparency ?? undefined,
  });
  return {
    key_props: defined({ exportable: k.exportable ?? true, kty, key_size, crv, reuse_key: k.reuse_key ?? false }),
    secret_props: { contentType: input?.secret_props?.contentType ?? base?.secret_props.contentType ?? PKCS12 },
    x509_props: defined({
      subject,
      sans: hasSans ? sans : undefined,
      ekus: x?.ekus ?? bx?.ekus ?? ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2'],
      key_usage: x?.key_usage ?? bx?.key_usage ?? (ec ? ['digitalSignature'] : ['digitalSignature', 'keyEncipherment']),
      validity_months: months,
    }),
    lifetime_actions: actions.map((a) => ({ trigger: defined(a.trigger), action: a.action })),
    issuer,
    attributes: { enabled: input?.attributes?.enabled ?? base?.attributes.enabled ?? true },
  };
}

/** Where the key lives: in the HSM for -HSM types and for keys that may not leave the vault. */
export function keySpecOf(policy: Policy): KeySpec {
  const { kty, exportable, key_size, crv } = policy.key_props;
  const hsm = kty.endsWith('-HSM') || !exportable;
  const kind = ((kty.startsWith('EC') ? 'EC' : 'RSA') + (hsm ? '-HSM' : '')) as KeyKind;
  return kind.startsWith('EC') ? { kind, crv } : { kind, size: key_size };
}

/** The key's key_ops, as Azure derives them from the certificate's key usage. */
export function keyOpsOf(policy: Policy): string[] {
  const rsa = policy.key_props.kty.startsWith('RSA');
  const ops = new Set<string>();
  for (const usage of policy.x509_props.key_usage) {
    if (['digitalSignature', 'nonRepudiation', 'keyCertSign', 'cRLSign'].includes(usage)) ops.add('sign').add('verify');
    if (rsa && usage === 'keyEncipherment') ops.add('wrapKey').add('unwrapKey');
    if (rsa && usage === 'dataEncipherment') ops.add('encrypt').add('decrypt');
  }
  return ops.size ? [...ops] : rsa ? ['sign', 'verify', 'wrapKey', 'unwrapKey', 'encrypt', 'decrypt'] : ['sign', 'verify'];
}

/** Whether the policy renews its certificates automatically (the compliance check). */
export const autoRenews = (policy: Policy) => policy.lifetime_actions.some((a) => a.action.action_type === 'AutoRenew');
