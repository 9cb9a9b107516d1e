CREATE TABLE `audit_chain_vaults` (
	`vault_id` text PRIMARY KEY NOT NULL,
	`chain` text NOT NULL,
	`vault_name` text NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `audit_chain_vaults_chain_unique` ON `audit_chain_vaults` (`chain`);--> statement-breakpoint
-- Chains were named 'vault:{name}' before this: a vault re-created under a deleted vault's name
-- inherited its trail. From now on a vault's chain is 'vault:{id}'. Existing chains are not
-- renamed: every record's canonical JSON, its hash and the HSM-signed checkpoints and R2 archives
-- name the chain, and renaming would make all of them fail verification. Instead the chain of each
-- live vault is bound to the vault's id here (the consumer and every reader look the id up first);
-- chains of vaults that no longer exist stay under 'vault:{name}', which no vault's id can ever
-- name (names are at most 24 characters, ids 36), so no new vault reads them.
INSERT INTO `audit_chain_vaults` (`vault_id`, `chain`, `vault_name`, `created_at`)
SELECT v.`id`, h.`chain`, v.`name`, CAST(strftime('%s', 'now') AS INTEGER) * 1000
FROM `audit_chain_heads` h JOIN `vaults` v ON h.`chain` = 'vault:' || v.`name`;
