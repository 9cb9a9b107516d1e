CREATE TABLE `access_policies` (
	`vault_id` text NOT NULL,
	`object_id` text NOT NULL,
	`permissions` text NOT NULL,
	`updated_at` integer NOT NULL,
	PRIMARY KEY(`vault_id`, `object_id`),
	FOREIGN KEY (`vault_id`) REFERENCES `vaults`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE TABLE `application_certificates` (
	`id` text PRIMARY KEY NOT NULL,
	`client_id` text NOT NULL,
	`thumbprint_sha1` text NOT NULL,
	`thumbprint_sha256` text NOT NULL,
	`certificate` text NOT NULL,
	`not_before` integer NOT NULL,
	`not_after` integer NOT NULL,
	`created_at` integer NOT NULL,
	FOREIGN KEY (`client_id`) REFERENCES `applications`(`client_id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `application_certificates_client` ON `application_certificates` (`client_id`);--> statement-breakpoint
CREATE TABLE `federated_credentials` (
	`id` text PRIMARY KEY NOT NULL,
	`client_id` text NOT NULL,
	`name` text NOT NULL,
	`issuer` text NOT NULL,
	`subject` text NOT NULL,
	`audiences` text NOT NULL,
	`description` text,
	`created_at` integer NOT NULL,
	FOREIGN KEY (`client_id`) REFERENCES `applications`(`client_id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `federated_credentials_client` ON `federated_credentials` (`client_id`);--> statement-breakpoint
CREATE TABLE `role_assignments` (
	`id` text PRIMARY KEY NOT NULL,
	`vault_id` text NOT NULL,
	`scope` text COLLATE NOCASE NOT NULL,
	`role_definition_id` text NOT NULL,
	`principal_id` text NOT NULL,
	`expires_at` integer,
	`created_at` integer NOT NULL,
	`created_by` text,
	`last_used_at` integer,
	FOREIGN KEY (`vault_id`) REFERENCES `vaults`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `role_assignments_vault` ON `role_assignments` (`vault_id`,`principal_id`);--> statement-breakpoint
CREATE INDEX `role_assignments_principal` ON `role_assignments` (`principal_id`);--> statement-breakpoint
CREATE TABLE `role_definitions` (
	`id` text PRIMARY KEY NOT NULL,
	`vault_id` text,
	`role_name` text NOT NULL,
	`description` text,
	`permissions` text NOT NULL,
	`assignable_scopes` text NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	FOREIGN KEY (`vault_id`) REFERENCES `vaults`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `role_definitions_vault` ON `role_definitions` (`vault_id`);--> statement-breakpoint
ALTER TABLE `vaults` ADD `enable_rbac_authorization` integer DEFAULT true NOT NULL;--> statement-breakpoint
ALTER TABLE `vaults` ADD `network_acls` text;