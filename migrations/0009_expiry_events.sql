CREATE TABLE `expiry_notices` (
	`vault_id` text NOT NULL,
	`kind` text NOT NULL,
	`name` text COLLATE NOCASE NOT NULL,
	`version` text NOT NULL,
	`event_type` text NOT NULL,
	`claimed_at` integer NOT NULL,
	PRIMARY KEY(`vault_id`, `kind`, `name`, `version`, `event_type`),
	FOREIGN KEY (`vault_id`) REFERENCES `vaults`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `key_versions_exp` ON `key_versions` (`exp`) WHERE exp IS NOT NULL;--> statement-breakpoint
CREATE INDEX `secret_versions_exp` ON `secret_versions` (`exp`) WHERE exp IS NOT NULL;