CREATE TABLE `audit_chain_heads` (
	`chain` text PRIMARY KEY NOT NULL,
	`seq` integer NOT NULL,
	`hash` text NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `audit_records` (
	`chain` text NOT NULL,
	`seq` integer NOT NULL,
	`event_id` text NOT NULL,
	`canonical` text NOT NULL,
	`prev_hash` text NOT NULL,
	`hash` text NOT NULL,
	`time` integer NOT NULL,
	`operation` text NOT NULL,
	`caller_appid` text,
	`caller_oid` text,
	`object_id` text COLLATE NOCASE,
	`status` integer NOT NULL,
	`result` text NOT NULL,
	`error_code` text,
	`correlation_id` text,
	`client_ip` text,
	PRIMARY KEY(`chain`, `seq`)
);
--> statement-breakpoint
CREATE UNIQUE INDEX `audit_records_event_id_unique` ON `audit_records` (`event_id`);--> statement-breakpoint
CREATE INDEX `audit_records_time` ON `audit_records` (`chain`,`time`);--> statement-breakpoint
CREATE INDEX `audit_records_operation` ON `audit_records` (`chain`,`operation`,`time`);--> statement-breakpoint
CREATE INDEX `audit_records_object` ON `audit_records` (`chain`,`object_id`,`time`);--> statement-breakpoint
CREATE INDEX `audit_records_caller` ON `audit_records` (`caller_appid`,`time`);--> statement-breakpoint
CREATE INDEX `audit_records_correlation` ON `audit_records` (`correlation_id`);