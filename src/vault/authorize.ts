import type { Caller } from '../identity/tokens';
import { forbidden } from './errors';

/** Data actions, named as Azure names them. */
export const SecretActions = {
  get: 'Microsoft.KeyVault/vaults/secrets/getSecret/action',
  set: 'Microsoft.KeyVault/vaults/secrets/setSecret/action',
  readMetadata: 'Microsoft.KeyVault/vaults/secrets/readMetadata/action',
  update: 'Microsoft.KeyVault/vaults/secrets/update/action',
  delete: 'Microsoft.KeyVault/vaults/secrets/delete',
  backup: 'Microsoft.KeyVault/vaults/secrets/backup/action',
  restore: 'Microsoft.KeyVault/vaults/secrets/restore/action',
  recover: 'Microsoft.KeyVault/vaults/deletedSecrets/recover/action',
  readDeleted: 'Microsoft.KeyVault/vaults/deletedSecrets/read',
  purge: 'Microsoft.KeyVault/vaults/deletedSecrets/delete',
} as const;

export type DataAction = (typeof SecretActions)[keyof typeof SecretActions];

/** Where an action applies: the vault, a collection in it, or one object. */
export interface Scope {
  vaultName: string;
  tenantId: string;
  /** e.g. `/secrets` or `/secrets/{name}`; absent for the whole vault. */
  path?: string;
}

/**
 * The one authorization decision every handler goes through. For now any application of the
 * vault's tenant may do anything; role assignments will replace this rule, not its call sites.
 */
export function authorize(caller: Caller, action: DataAction, scope: Scope): void {
  if (caller.tenantId !== scope.tenantId) {
    throw forbidden(`Caller ${caller.appId} is not authorized to perform action '${action}' on this vault.`, 'ForbiddenByRbac');
  }
}
