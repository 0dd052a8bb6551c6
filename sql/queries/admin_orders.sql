-- Orders needing an operator's attention (shopbot/bot/admin/attention.py).

-- name: orders_needing_attention
-- Every order being verified (its payment may have left the wallet), and orders queued or paying for
-- longer than $1 seconds; oldest first, at most $2.
SELECT id, user_id, product, quantity, recipient, price, currency, state, attempts, last_error, created_at,
       next_attempt_at
FROM orders
WHERE state = 'verifying'
   OR (state IN ('queued', 'paying') AND created_at < now() - make_interval(secs => $1))
ORDER BY created_at, id
LIMIT $2;

-- name: try_wallet_lock$
-- The worker's wallet lock (orders.sql wallet_lock), without waiting: while an admin holds it, no payment
-- for this wallet can be under way, so an order's state cannot change under the admin's decision.
SELECT pg_try_advisory_lock(hashtextextended('shopbot-wallet:' || $1, 0));
