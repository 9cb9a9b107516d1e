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

export const KeyActions = {
  read: 'Microsoft.KeyVault/vaults/keys/read',
  create: 'Microsoft.KeyVault/vaults/keys/create/action',
  import: 'Microsoft.KeyVault/vaults/keys/import/action',
  update: 'Microsoft.KeyVault/vaults/keys/update/action',
  delete: 'Microsoft.KeyVault/vaults/keys/delete',
  backup: 'Microsoft.KeyVault/vaults/keys/backup/action',
  restore: 'Microsoft.KeyVault/vaults/keys/restore/action',
  encrypt: 'Microsoft.KeyVault/vaults/keys/encrypt/action',
  decrypt: 'Microsoft.KeyVault/vaults/keys/decrypt/action',
  wrap: 'Microsoft.KeyVault/vaults/keys/wrap/action',
  unwrap: 'Microsoft.KeyVault/vaults/keys/unwrap/action',
  sign: 'Microsoft.KeyVault/vaults/keys/sign/action',
  verify: 'Microsoft.KeyVault/vaults/keys/verify/action',
  rotate: 'Microsoft.KeyVault/vaults/keys/rotate/action',
  getRotationPolicy: 'Microsoft.KeyVault/vaults/keyrotationpolicies/read',
  setRotationPolicy: 'Microsoft.KeyVault/vaults/keyrotationpolicies/write',
  readDeleted: 'Microsoft.KeyVault/vaults/deletedKeys/read',
  recover: 'Microsoft.KeyVault/vaults/deletedKeys/recover/action',
  purge: 'Microsoft.KeyVault/vaults/deletedKeys/delete',
  random: 'Microsoft.KeyVault/vaults/rng/action',
} as const;

export type DataAction = (typeof SecretActions)[keyof typeof SecretActions] | (typeof KeyActions)[keyof typeof KeyActions];

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
