CREATE TABLE `key_versions` (
	`vault_id` text NOT NULL,
	`name` text COLLATE NOCASE NOT NULL,
	`version` text NOT NULL,
	`kty` text NOT NULL,
	`key_size` integer,
	`crv` text,
	`public_jwk` text,
	`private_ciphertext` text,
	`data_key_id` text,
	`hsm_handle` text,
	`key_ops` text NOT NULL,
	`tags` text,
	`enabled` integer NOT NULL,
	`nbf` integer,
	`exp` integer,
	`created` integer NOT NULL,
	`updated` integer NOT NULL,
	PRIMARY KEY(`vault_id`, `name`, `version`),
	FOREIGN KEY (`data_key_id`) REFERENCES `data_keys`(`id`) ON UPDATE no action ON DELETE no action,
	FOREIGN KEY (`vault_id`,`name`) REFERENCES `keys`(`vault_id`,`name`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `key_versions_order` ON `key_versions` (`vault_id`,`name`,`created`,`version`);--> statement-breakpoint
CREATE TABLE `keys` (
	`vault_id` text NOT NULL,
	`name` text COLLATE NOCASE NOT NULL,
	`latest_version` text NOT NULL,
	`deleted_at` integer,
	`scheduled_purge_at` integer,
	`rotation_policy` text,
	`rotation_policy_created` integer,
	`rotation_policy_updated` integer,
	`rotation_due_at` integer,
	`rotation_claim` text,
	`rotation_claim_until` integer,
	PRIMARY KEY(`vault_id`, `name`),
	FOREIGN KEY (`vault_id`) REFERENCES `vaults`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `keys_purge` ON `keys` (`scheduled_purge_at`) WHERE deleted_at IS NOT NULL;--> statement-breakpoint
CREATE INDEX `keys_rotation_due` ON `keys` (`rotation_due_at`) WHERE rotation_due_at IS NOT NULL;