/**
 * Issuer `Unknown`: the vault issues nothing. The operation keeps the CSR (GET …/pending `csr`) and
 * stays inProgress until the caller merges the certificate a CA made from it.
 */
import type { IssuerProvider } from './contract';

export const unknownIssuer: IssuerProvider = {
  backend: () => ({ issue: async () => ({ status: 'merge' }) }),
};
