-- Vaults created before role-based access control existed have no role assignments, and deny by
-- default would lock everyone out of them. Before RBAC every application of the tenant could use
-- every vault; keep that for the deployment's administrator applications only, as Key Vault
-- Administrator at the vault scope (what a vault's creator gets today). Vaults that already have an
-- assignment are left alone, so this changes nothing on a fresh or already-upgraded database.
INSERT INTO `role_assignments` (`id`, `vault_id`, `scope`, `role_definition_id`, `principal_id`, `expires_at`, `created_at`, `created_by`, `last_used_at`)
SELECT
  substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-4' || substr(h, 14, 3) || '-a' || substr(h, 18, 3) || '-' || substr(h, 21, 12),
  vault_id, '/', '00482a5a-887f-4fb3-b363-3b7fe8e74483', principal_id, NULL, CAST(strftime('%s', 'now') AS INTEGER), 'migration', NULL
FROM (
  SELECT v.`id` AS vault_id, lower(a.`object_id`) AS principal_id, lower(hex(randomblob(16))) AS h
  FROM `vaults` v CROSS JOIN `applications` a
  WHERE a.`is_admin` = 1
    AND NOT EXISTS (SELECT 1 FROM `role_assignments` r WHERE r.`vault_id` = v.`id`)
);
