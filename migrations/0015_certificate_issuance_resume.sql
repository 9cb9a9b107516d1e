ALTER TABLE `certificate_operations` ADD `resume` text;--> statement-breakpoint
ALTER TABLE `certificate_operations` ADD `next_attempt_at` integer;--> statement-breakpoint
CREATE INDEX `certificate_operations_next_attempt` ON `certificate_operations` (`next_attempt_at`);