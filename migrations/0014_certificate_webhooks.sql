CREATE TABLE `certificate_webhook_messages` (
	`receiver_id` text NOT NULL,
	`webhook_id` text NOT NULL,
	`received` integer NOT NULL,
	`expires_at` integer NOT NULL,
	PRIMARY KEY(`receiver_id`, `webhook_id`),
	FOREIGN KEY (`receiver_id`) REFERENCES `certificate_webhooks`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `certificate_webhook_messages_expiry` ON `certificate_webhook_messages` (`expires_at`);--> statement-breakpoint
CREATE TABLE `certificate_webhooks` (
	`id` text PRIMARY KEY NOT NULL,
	`vault_id` text NOT NULL,
	`name` text COLLATE NOCASE NOT NULL,
	`scope_certificates` text,
	`scope_issuer` text,
	`secret_ciphertext` text NOT NULL,
	`secret_data_key_id` text NOT NULL,
	`previous_secret_ciphertext` text,
	`previous_secret_data_key_id` text,
	`previous_secret_expires_at` integer,
	`created` integer NOT NULL,
	`updated` integer NOT NULL,
	FOREIGN KEY (`vault_id`) REFERENCES `vaults`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`secret_data_key_id`) REFERENCES `data_keys`(`id`) ON UPDATE no action ON DELETE no action,
	FOREIGN KEY (`previous_secret_data_key_id`) REFERENCES `data_keys`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE UNIQUE INDEX `certificate_webhooks_vault_name` ON `certificate_webhooks` (`vault_id`,`name`);