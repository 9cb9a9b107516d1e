CREATE TABLE `audit_archives` (
	`chain` text NOT NULL,
	`period` text NOT NULL,
	`object_key` text NOT NULL,
	`first_seq` integer NOT NULL,
	`last_seq` integer NOT NULL,
	`prev_hash` text NOT NULL,
	`last_hash` text NOT NULL,
	`digest` text NOT NULL,
	`period_end` integer NOT NULL,
	`archived_at` integer NOT NULL,
	`pruned_at` integer,
	`object_deleted_at` integer,
	PRIMARY KEY(`chain`, `period`)
);
--> statement-breakpoint
CREATE INDEX `audit_archives_seq` ON `audit_archives` (`chain`,`last_seq`);--> statement-breakpoint
CREATE TABLE `audit_checkpoints` (
	`chain` text NOT NULL,
	`seq` integer NOT NULL,
	`hash` text NOT NULL,
	`time` text NOT NULL,
	`alg` text NOT NULL,
	`kid` text NOT NULL,
	`signature` text NOT NULL,
	PRIMARY KEY(`chain`, `seq`)
);
