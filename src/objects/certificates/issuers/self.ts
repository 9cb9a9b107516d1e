/** Issuer `Self`: the certificate is signed with its own key, as the policy describes it. */
import type { CertificateIssuer } from './contract';
import { selfSigned } from '../x509';

export const selfIssuer: CertificateIssuer = {
  async issue(_csr, policy, ctx) {
    return [await selfSigned(policy.x509_props, policy.x509_props.validity_months, ctx.signer, ctx.now)];
  },
};
