// Azure words the errors of secrets, keys and certificates alike, with only the kind's noun and
// not-found code changed ("A secret with (name/id) …", "Deleted Key not found: …"); a description
// takes them from here so that every kind keeps Azure's exact wording.
import { conflict, notFound } from '../../core/errors';
import type { KindErrors } from './kind';

/** Azure's errors for a kind named `noun` (lower case, e.g. 'secret'), not-found code `code`. */
export function azureErrors(noun: string, code: string): KindErrors {
  const Noun = noun[0]!.toUpperCase() + noun.slice(1);
  return {
    notFound: (name) => notFound(code, `A ${noun} with (name/id) ${name} was not found in this key vault.`),
    deletedNotFound: (name) => notFound(code, `Deleted ${Noun} not found: ${name}`),
    deletedConflict: (name) =>
      conflict(
        `${Noun} ${name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the ${noun} can be recovered or purged.`,
      ),
    nameTaken: (name) => conflict(`${Noun} ${name} already exists in this vault; restore needs an unused name.`),
    changed: (name) => conflict(`${Noun} ${name} changed while a new version was being made.`),
    versionTaken: (name, version) => conflict(`${Noun} ${name} already has version ${version}.`),
  };
}
