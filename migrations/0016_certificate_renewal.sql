ALTER TABLE `certificates` ADD `renewal_due_at` integer;--> statement-breakpoint
ALTER TABLE `certificates` ADD `renewal_claim` text;--> statement-breakpoint
ALTER TABLE `certificates` ADD `renewal_claim_until` integer;--> statement-breakpoint
CREATE INDEX `certificates_renewal_due` ON `certificates` (`renewal_due_at`) WHERE renewal_due_at IS NOT NULL;--> statement-breakpoint
-- Certificates made before the renewal job: due at once, so its first run evaluates each one's
-- lifetime actions and writes the real due time (or renews one that is already due).
UPDATE `certificates` SET `renewal_due_at` = 0 WHERE `deleted_at` IS NULL;
