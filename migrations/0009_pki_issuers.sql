CREATE TABLE `acme_accounts` (
	`vault_id` text NOT NULL,
	`directory_url` text NOT NULL,
	`account_url` text,
	`key_sealed` text NOT NULL,
	`eab_kid` text,
	`eab_hmac_sealed` text,
	`data_key_id` text NOT NULL,
	`created_at` integer NOT NULL,
	PRIMARY KEY(`vault_id`, `directory_url`),
	FOREIGN KEY (`vault_id`) REFERENCES `vaults`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`data_key_id`) REFERENCES `data_keys`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE TABLE `acme_challenges` (
	`token` text PRIMARY KEY NOT NULL,
	`key_authorization` text NOT NULL,
	`vault_id` text NOT NULL,
	`expires_at` integer NOT NULL,
	FOREIGN KEY (`vault_id`) REFERENCES `vaults`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `acme_challenges_expiry` ON `acme_challenges` (`expires_at`);--> statement-breakpoint
CREATE TABLE `certificate_authorities` (
	`vault_id` text PRIMARY KEY NOT NULL,
	`key_handle` text NOT NULL,
	`alg` text NOT NULL,
	`cert_der` text NOT NULL,
	`created_at` integer NOT NULL,
	FOREIGN KEY (`vault_id`) REFERENCES `vaults`(`id`) ON UPDATE no action ON DELETE cascade
);
