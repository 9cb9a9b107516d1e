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
CREATE INDEX `secret_versions_exp` ON `secret_versions` (`exp`) WHERE exp IS NOT NULL;--> statement-breakpoint
-- KeyNearExpiry notices sent before this migration were marked only by their stored event: mark
-- them here too, so that key rotation (which now reads the markers) does not send them again.
INSERT INTO `expiry_notices` (`vault_id`, `kind`, `name`, `version`, `event_type`, `claimed_at`)
SELECT v.`id`, 'key', e.`subject`, e.`version`, e.`event_type`, e.`event_time` / 1000
FROM `events` e JOIN `vaults` v ON v.`name` = e.`vault`
WHERE e.`event_type` = 'Microsoft.KeyVault.KeyNearExpiry' AND e.`version` IS NOT NULL
ON CONFLICT DO NOTHING;
