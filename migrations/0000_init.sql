CREATE TABLE `applications` (
	`client_id` text PRIMARY KEY NOT NULL,
	`object_id` text NOT NULL,
	`tenant_id` text NOT NULL,
	`display_name` text NOT NULL,
	`is_admin` integer DEFAULT false NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `applications_object_id_unique` ON `applications` (`object_id`);--> statement-breakpoint
CREATE TABLE `audit_events` (
	`id` text PRIMARY KEY NOT NULL,
	`time` integer NOT NULL,
	`vault` text,
	`operation` text NOT NULL,
	`caller` text,
	`object_id` text,
	`result` text NOT NULL,
	`status` integer NOT NULL,
	`duration_ms` integer NOT NULL,
	`correlation_id` text NOT NULL,
	`client_ip` text
);
--> statement-breakpoint
CREATE INDEX `audit_events_time` ON `audit_events` (`vault`,`time`);--> statement-breakpoint
CREATE TABLE `client_secrets` (
	`id` text PRIMARY KEY NOT NULL,
	`client_id` text NOT NULL,
	`digest` text NOT NULL,
	`hint` text NOT NULL,
	`created_at` integer NOT NULL,
	`expires_at` integer,
	FOREIGN KEY (`client_id`) REFERENCES `applications`(`client_id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `client_secrets_client` ON `client_secrets` (`client_id`);--> statement-breakpoint
CREATE TABLE `data_keys` (
	`id` text PRIMARY KEY NOT NULL,
	`scope` text NOT NULL,
	`wrapped` text NOT NULL,
	`kek_label` text NOT NULL,
	`created_at` integer NOT NULL,
	`encryptions` integer DEFAULT 0 NOT NULL
);
--> statement-breakpoint
CREATE INDEX `data_keys_scope` ON `data_keys` (`scope`,`created_at`);--> statement-breakpoint
CREATE TABLE `secret_versions` (
	`vault_id` text NOT NULL,
	`name` text COLLATE NOCASE NOT NULL,
	`version` text NOT NULL,
	`ciphertext` text NOT NULL,
	`data_key_id` text NOT NULL,
	`content_type` text,
	`tags` text,
	`enabled` integer NOT NULL,
	`nbf` integer,
	`exp` integer,
	`created` integer NOT NULL,
	`updated` integer NOT NULL,
	PRIMARY KEY(`vault_id`, `name`, `version`),
	FOREIGN KEY (`data_key_id`) REFERENCES `data_keys`(`id`) ON UPDATE no action ON DELETE no action,
	FOREIGN KEY (`vault_id`,`name`) REFERENCES `secrets`(`vault_id`,`name`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `secret_versions_order` ON `secret_versions` (`vault_id`,`name`,`created`,`version`);--> statement-breakpoint
CREATE TABLE `secrets` (
	`vault_id` text NOT NULL,
	`name` text COLLATE NOCASE NOT NULL,
	`latest_version` text NOT NULL,
	`deleted_at` integer,
	`scheduled_purge_at` integer,
	PRIMARY KEY(`vault_id`, `name`),
	FOREIGN KEY (`vault_id`) REFERENCES `vaults`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `secrets_purge` ON `secrets` (`scheduled_purge_at`) WHERE deleted_at IS NOT NULL;--> statement-breakpoint
CREATE TABLE `settings` (
	`key` text PRIMARY KEY NOT NULL,
	`value` text NOT NULL
);
--> statement-breakpoint
CREATE TABLE `signing_keys` (
	`kid` text PRIMARY KEY NOT NULL,
	`public_jwk` text NOT NULL,
	`private_ciphertext` text NOT NULL,
	`data_key_id` text NOT NULL,
	`created_at` integer NOT NULL,
	FOREIGN KEY (`data_key_id`) REFERENCES `data_keys`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE TABLE `vaults` (
	`id` text PRIMARY KEY NOT NULL,
	`name` text COLLATE NOCASE NOT NULL,
	`tenant_id` text NOT NULL,
	`soft_delete_retention_days` integer NOT NULL,
	`purge_protection` integer DEFAULT false NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `vaults_name_unique` ON `vaults` (`name`);