-- User lookup in the admin area (shopbot/bot/admin/users.py).

-- name: find_user_by_id^
SELECT id, username, first_name, last_name, language, is_premium, first_seen_at, last_seen_at
FROM users WHERE id = $1;

-- name: find_user_by_username^
SELECT id, username, first_name, last_name, language, is_premium, first_seen_at, last_seen_at
FROM users WHERE lower(username) = lower($1)
ORDER BY last_seen_at DESC LIMIT 1;

-- name: recent_movements
-- The user's last $2 movements, each as it changed their spendable and reserved balances.
SELECT m.id, m.type, m.reference, m.memo, m.created_at,
       coalesce(sum(l.amount) FILTER (WHERE a.kind = 'user'), 0) AS available_change,
       coalesce(sum(l.amount) FILTER (WHERE a.kind = 'user_held'), 0) AS held_change
FROM accounts a
JOIN ledger l ON l.account_id = a.id
JOIN movements m ON m.id = l.movement_id
WHERE a.user_id = $1 AND a.kind IN ('user', 'user_held')
GROUP BY m.id
ORDER BY m.id DESC
LIMIT $2;

-- name: recent_orders
SELECT id, product, quantity, recipient, price, currency, state, created_at
FROM orders WHERE user_id = $1 ORDER BY id DESC LIMIT $2;
