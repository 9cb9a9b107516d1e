CREATE TABLE `certificate_contacts` (
	`vault_id` text PRIMARY KEY NOT NULL,
	`contacts` text NOT NULL,
	`updated` integer NOT NULL,
	FOREIGN KEY (`vault_id`) REFERENCES `vaults`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE TABLE `certificate_issuers` (
	`vault_id` text NOT NULL,
	`name` text COLLATE NOCASE NOT NULL,
	`provider` text NOT NULL,
	`account_id` text,
	`password_ciphertext` text,
	`data_key_id` text,
	`org_details` text,
	`enabled` integer DEFAULT true NOT NULL,
	`created` integer NOT NULL,
	`updated` integer NOT NULL,
	PRIMARY KEY(`vault_id`, `name`),
	FOREIGN KEY (`vault_id`) REFERENCES `vaults`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`data_key_id`) REFERENCES `data_keys`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE TABLE `certificate_operations` (
	`vault_id` text NOT NULL,
	`name` text COLLATE NOCASE NOT NULL,
	`version` text NOT NULL,
	`issuer_name` text NOT NULL,
	`status` text NOT NULL,
	`status_details` text,
	`error` text,
	`csr` text NOT NULL,
	`cancellation_requested` integer DEFAULT false NOT NULL,
	`request_id` text NOT NULL,
	`created` integer NOT NULL,
	`updated` integer NOT NULL,
	PRIMARY KEY(`vault_id`, `name`),
	FOREIGN KEY (`vault_id`) REFERENCES `vaults`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE TABLE `certificate_policies` (
	`vault_id` text NOT NULL,
	`name` text COLLATE NOCASE NOT NULL,
	`policy` text NOT NULL,
	`enabled` integer DEFAULT true NOT NULL,
	`created` integer NOT NULL,
	`updated` integer NOT NULL,
	PRIMARY KEY(`vault_id`, `name`),
	FOREIGN KEY (`vault_id`) REFERENCES `vaults`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE TABLE `certificate_versions` (
	`vault_id` text NOT NULL,
	`name` text COLLATE NOCASE NOT NULL,
	`version` text NOT NULL,
	`cer` text NOT NULL,
	`x5t` text NOT NULL,
	`content_type` text NOT NULL,
	`data_key_id` text,
	`issuer_name` text NOT NULL,
	`self_signed` integer NOT NULL,
	`kty` text NOT NULL,
	`key_size` integer,
	`crv` text,
	`tags` text,
	`enabled` integer NOT NULL,
	`nbf` integer,
	`exp` integer,
	`created` integer NOT NULL,
	`updated` integer NOT NULL,
	PRIMARY KEY(`vault_id`, `name`, `version`),
	FOREIGN KEY (`data_key_id`) REFERENCES `data_keys`(`id`) ON UPDATE no action ON DELETE no action,
	FOREIGN KEY (`vault_id`,`name`) REFERENCES `certificates`(`vault_id`,`name`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `certificate_versions_order` ON `certificate_versions` (`vault_id`,`name`,`created`,`version`);--> statement-breakpoint
CREATE INDEX `certificate_versions_exp` ON `certificate_versions` (`exp`) WHERE exp IS NOT NULL;--> statement-breakpoint
CREATE TABLE `certificates` (
	`vault_id` text NOT NULL,
	`name` text COLLATE NOCASE NOT NULL,
	`latest_version` text NOT NULL,
	`deleted_at` integer,
	`scheduled_purge_at` integer,
	PRIMARY KEY(`vault_id`, `name`),
	FOREIGN KEY (`vault_id`) REFERENCES `vaults`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `certificates_purge` ON `certificates` (`scheduled_purge_at`) WHERE deleted_at IS NOT NULL;--> statement-breakpoint
ALTER TABLE `key_versions` ADD `managed` integer DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE `secret_versions` ADD `managed` integer DEFAULT false NOT NULL;