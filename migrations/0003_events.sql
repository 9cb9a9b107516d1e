CREATE TABLE `events` (
	`id` text PRIMARY KEY NOT NULL,
	`vault` text NOT NULL,
	`event_type` text NOT NULL,
	`subject` text NOT NULL,
	`version` text,
	`event_time` integer NOT NULL,
	`body` text NOT NULL
);
--> statement-breakpoint
CREATE INDEX `events_vault_time` ON `events` (`vault`,`event_time`);