-- What a user sees under /history. An order is one entry (its hold, capture and release are one
-- story to the buyer, told by the order's state); every other movement of the user's money (a
-- top-up, a bonus, an adjustment) is an entry of its own, signed as it changed their balance.
-- An order's movements are known by their reference, 'order:<id>' (shopbot/fulfilment/orders.py).

-- name: history_page
-- $1 user id, $2 the page asked for (from 0), $3 entries per page. Newest first. A page past
-- either end is clamped to the first or last one, so a stale Prev/Next button still shows true
-- entries. Every row carries the page shown and the number of entries; a user with no history
-- gets one row whose entry columns are NULL.
WITH entries AS (
    SELECT 'order' AS kind, o.id, o.product, o.quantity, o.recipient, o.price AS amount, o.currency, o.state,
           o.created_at
    FROM orders o
    WHERE o.user_id = $1
    UNION ALL
    -- A referral bonus (reference 'referral:invoice:<id>', shopbot/payments/referrals.py) is told apart.
    SELECT CASE WHEN m.type = 'bonus' AND m.reference LIKE 'referral:%' THEN 'referral_bonus' ELSE m.type END,
           m.id, NULL, NULL, NULL, sum(l.amount), a.currency, NULL, m.created_at
    FROM accounts a
    JOIN ledger l ON l.account_id = a.id
    JOIN movements m ON m.id = l.movement_id
    WHERE a.user_id = $1 AND a.kind IN ('user', 'user_held')
      AND NOT (m.type IN ('purchase', 'refund') AND m.reference LIKE 'order:%')
    GROUP BY m.id, a.currency
    HAVING sum(l.amount) <> 0
), numbered AS (
    SELECT *, row_number() OVER (ORDER BY created_at DESC, id DESC) AS position FROM entries
), shown AS (
    SELECT count(*) AS total, greatest(0, least($2::int, (count(*)::int - 1) / $3::int)) AS page FROM entries
)
SELECT shown.page, shown.total, n.kind, n.id, n.product, n.quantity, n.recipient, n.amount, n.currency, n.state,
       n.created_at
FROM shown
LEFT JOIN numbered n ON n.position > shown.page * $3::int AND n.position <= (shown.page + 1) * $3::int
ORDER BY n.position;
