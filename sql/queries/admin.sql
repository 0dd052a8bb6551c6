-- The admin area's shared records: the audit log (shopbot/db/audit.py) and the runtime settings the admins
-- change (shopbot/fulfilment/settings.py).

-- name: record_audit$
INSERT INTO audit_log (admin_id, action, target, before, after, reason)
VALUES ($1, $2, $3, $4::jsonb, $5::jsonb, $6)
RETURNING id;

-- name: get_setting$
SELECT value FROM shop_settings WHERE name = $1;

-- name: all_settings
SELECT name, value, updated_by, updated_at FROM shop_settings;

-- name: put_setting!
INSERT INTO shop_settings (name, value, updated_by) VALUES ($1, $2::jsonb, $3)
ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value, updated_by = EXCLUDED.updated_by, updated_at = now();
