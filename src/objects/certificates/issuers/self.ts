/** Issuer `Self`: the certificate is signed with its own key, as the policy describes it. */
import type { IssuerProvider } from './contract';
import { selfSigned } from '../x509';

export const selfIssuer: IssuerProvider = {
  backend: (ctx) => ({
    async issue() {
      if (!ctx.signer) throw new Error('a self-signed certificate needs its own key');
      const leaf = await selfSigned(ctx.policy.x509_props, ctx.policy.x509_props.validity_months, ctx.signer, ctx.now);
      return { status: 'issued', result: { chainDer: [leaf] } };
    },
  }),
};
