-- Automatic prices (shopbot/fulfilment/repricer.py, stored through shopbot/fulfilment/settings.py).

-- name: claim_pricing_pass$
-- One instance reprices per period: a pass is claimed when nobody claimed one in the last $2 seconds.
-- The row is a timestamp only; the prices themselves stay in the 'prices' setting.
INSERT INTO shop_settings (name, value) VALUES ('pricing_pass', '{}'::jsonb)
ON CONFLICT (name) DO UPDATE SET updated_at = now()
    WHERE shop_settings.updated_at <= now() - make_interval(secs => $1::double precision)
RETURNING updated_at;

-- name: lock_prices$
-- Price writers take turns (the repricer on any instance, an admin): held until the transaction ends.
SELECT pg_advisory_xact_lock(hashtext('shopbot:prices'));

-- name: record_reprice$
INSERT INTO audit_log (admin_id, actor, action, target, before, after, reason)
VALUES (NULL, 'pricing', 'prices.auto', 'prices', $1::jsonb, $2::jsonb, $3)
RETURNING created_at;

-- name: last_reprice^
-- What the repricer did last: when, the prices before and after, and what it priced from.
SELECT created_at, before, after, reason
FROM audit_log WHERE actor = 'pricing' ORDER BY id DESC LIMIT 1;
