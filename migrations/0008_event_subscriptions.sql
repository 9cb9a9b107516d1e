CREATE TABLE `event_subscriptions` (
	`id` text PRIMARY KEY NOT NULL,
	`vault_id` text NOT NULL,
	`name` text COLLATE NOCASE NOT NULL,
	`endpoint_url` text NOT NULL,
	`included_event_types` text,
	`subject_begins_with` text,
	`subject_ends_with` text,
	`delivery_schema` text NOT NULL,
	`max_events_per_batch` integer NOT NULL,
	`max_delivery_attempts` integer NOT NULL,
	`event_ttl_minutes` integer NOT NULL,
	`secret_ciphertext` text NOT NULL,
	`secret_data_key_id` text NOT NULL,
	`previous_secret_ciphertext` text,
	`previous_secret_data_key_id` text,
	`previous_secret_expires_at` integer,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	`delivered` integer DEFAULT 0 NOT NULL,
	`failed` integer DEFAULT 0 NOT NULL,
	`dead_lettered` integer DEFAULT 0 NOT NULL,
	`last_error` text,
	`last_error_at` integer,
	`last_success_at` integer,
	FOREIGN KEY (`vault_id`) REFERENCES `vaults`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE UNIQUE INDEX `event_subscriptions_vault_name` ON `event_subscriptions` (`vault_id`,`name`);