-- The admin Prices screen (shopbot/bot/admin/prices.py).

-- name: last_price_change^
-- The newest change of prices in the audit log, whoever made it: an admin ('prices.set', actor 'admin'
-- and the admin's id) or the automatic repricer ('prices.auto', actor 'pricing', no admin).
SELECT created_at, admin_id, actor, action
FROM audit_log
WHERE target = 'prices'
ORDER BY id DESC
LIMIT 1;
