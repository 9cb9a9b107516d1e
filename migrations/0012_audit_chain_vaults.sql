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
-- A chain that answered a request successfully before the live vault was created holds the trail
-- of an earlier vault of that name, joined with this one's: it is not bound either, so the live
-- vault's Auditor never reads the earlier vault's records: the live vault starts 'vault:{id}', and
-- administrators still read the joined chain by its id. Vault created_at is Unix seconds, record
-- time milliseconds. OR IGNORE: a vault already bound keeps its binding.
INSERT OR IGNORE INTO `audit_chain_vaults` (`vault_id`, `chain`, `vault_name`, `created_at`)
SELECT v.`id`, h.`chain`, v.`name`, CAST(strftime('%s', 'now') AS INTEGER) * 1000
FROM `audit_chain_heads` h JOIN `vaults` v ON h.`chain` = 'vault:' || lower(v.`name`)
WHERE NOT EXISTS (
  SELECT 1 FROM `audit_records` r WHERE r.`chain` = h.`chain` AND r.`time` < v.`created_at` * 1000 AND r.`status` < 400
);
