-- Promo codes and their redemptions (shopbot/fulfilment/promo.py, shopbot/bot/admin/promo.py).

-- name: take_use^
-- One use of the code, if one is left: the row lock makes concurrent redeemers queue here, and each
-- re-checks the conditions on the newest row, so `uses` never passes max_uses.
UPDATE promo_codes SET uses = uses + 1
WHERE code = $1 AND enabled AND uses < max_uses AND (expires_at IS NULL OR expires_at > now())
RETURNING *;

-- name: insert_redemption$
-- The user's next use of the code, if they have one left ($3: 'credited' or 'pending'). Runs after
-- take_use, so the code's row lock is held and the user's earlier uses are all committed and counted;
-- the UNIQUE (code, user, nth) refuses whatever slipped through.
INSERT INTO promo_redemptions (code_id, user_id, nth, state)
SELECT c.id, $2, n.done + 1, $3
FROM promo_codes c,
     LATERAL (SELECT count(*)::integer AS done FROM promo_redemptions r WHERE r.code_id = c.id AND r.user_id = $2) n
WHERE c.id = $1 AND n.done < c.per_user
RETURNING id;

-- name: code_status^
-- Why a redemption was refused: the code as it is now, and how often this user has used it.
SELECT c.*, (SELECT count(*)::integer FROM promo_redemptions r WHERE r.code_id = c.id AND r.user_id = $2) AS mine,
       (c.expires_at IS NOT NULL AND c.expires_at <= now()) AS expired
FROM promo_codes c WHERE c.code = $1;

-- name: pending_discounts
-- Discounts the user redeemed and has not spent yet.
SELECT r.id, c.code, c.percent, c.cap
FROM promo_redemptions r JOIN promo_codes c ON c.id = r.code_id
WHERE r.user_id = $1 AND r.state = 'pending'
ORDER BY r.id;

-- name: consume_discount$
-- Inside the transaction that places order $3: the discount is spent by it, and the order remembers its
-- list price ($4) and discount ($5). Nothing comes back when the discount was spent meanwhile.
WITH used AS (
    UPDATE promo_redemptions SET state = 'used', order_id = $3, used_at = now()
    WHERE id = $1 AND user_id = $2 AND state = 'pending'
    RETURNING id
)
UPDATE orders SET list_price = $4, discount = $5 FROM used WHERE orders.id = $3
RETURNING orders.id;

-- name: restore_discount!
-- Inside the transaction that refunds order $1: its discount is the user's again, for the next purchase.
UPDATE promo_redemptions SET state = 'pending', order_id = NULL, used_at = NULL
WHERE order_id = $1 AND state = 'used';

-- name: create_code^
-- Nothing comes back when the name is taken.
INSERT INTO promo_codes (code, kind, amount, percent, cap, max_uses, per_user, expires_at, created_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (code) DO NOTHING
RETURNING *;

-- name: get_code^
SELECT * FROM promo_codes WHERE id = $1;

-- name: set_code_enabled^
UPDATE promo_codes SET enabled = $2 WHERE id = $1 AND enabled <> $2 RETURNING *;

-- name: list_codes
-- The newest codes first, for the admin's screen.
SELECT * FROM promo_codes ORDER BY id DESC LIMIT $1;

-- name: change_code^
-- The admin's change of a code's limits. Never below the uses already taken: nothing comes back then.
UPDATE promo_codes SET max_uses = $2, per_user = $3, expires_at = $4
WHERE id = $1 AND uses <= $2
RETURNING *;
