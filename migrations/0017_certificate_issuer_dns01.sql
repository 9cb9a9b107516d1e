ALTER TABLE `certificate_issuers` ADD `dns01` text;--> statement-breakpoint
ALTER TABLE `certificate_issuers` ADD `dns_token_ciphertext` text;