-- Per-vault bound on how stale an isolate's cached reads may be (README, Read caching); 0 turns
-- the read cache off. Existing vaults get the default.
ALTER TABLE `vaults` ADD `read_cache_seconds` integer DEFAULT 10 NOT NULL;