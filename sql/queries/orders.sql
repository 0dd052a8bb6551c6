-- name: insert_order^
-- The idempotency key sent to the Fragment service is derived from our id: shop:<id>. Nothing comes
-- back when this confirmation ($8) already placed an order.
WITH next AS (SELECT nextval('orders_id_seq'::regclass) AS id)
INSERT INTO orders (id, user_id, product, quantity, recipient, recipient_name, price, currency, idempotency_key,
                    confirmation)
SELECT id, $1, $2, $3, $4, $5, $6, $7, 'shop:' || id, $8 FROM next
ON CONFLICT (user_id, confirmation) WHERE confirmation IS NOT NULL DO NOTHING
RETURNING *;

-- name: order_by_confirmation^
SELECT * FROM orders WHERE user_id = $1 AND confirmation = $2;

-- name: set_order_queued!
UPDATE orders SET state = 'queued', updated_at = now() WHERE id = $1 AND state = 'created';

-- name: get_order^
SELECT * FROM orders WHERE id = $1;

-- name: claim_due_order^
-- The next order due for work; SKIP LOCKED lets several workers share the queue. It is claimed
-- under the wallet's advisory lock, so no other worker can be half-way through it: one that died
-- released that lock with its connection, and its order is simply due again.
WITH due AS (
    SELECT id FROM orders
    WHERE state IN ('queued', 'paying', 'verifying') AND next_attempt_at <= now()
    ORDER BY next_attempt_at, id
    FOR UPDATE SKIP LOCKED
    LIMIT 1
)
UPDATE orders o SET attempts = o.attempts + 1, updated_at = now()
FROM due WHERE o.id = due.id
RETURNING o.*;

-- name: make_unfinished_due!
-- At worker start: orders a dead worker left in the middle are resumed first, leases or not.
UPDATE orders SET next_attempt_at = now() - interval '1 second'
WHERE state IN ('paying', 'verifying');

-- name: record_prepared!
-- The signed payment is stored (and committed) before it is submitted.
UPDATE orders SET state = 'paying', fragment_order_id = $2, prepared = $3, prepared_until = to_timestamp($4::bigint),
                  cost_ton = $5, updated_at = now()
WHERE id = $1 AND state IN ('queued', 'verifying');

-- name: set_order_verifying!
UPDATE orders SET state = 'verifying', last_error = $2, next_attempt_at = now() + make_interval(secs => $3),
                  updated_at = now()
WHERE id = $1 AND state IN ('paying', 'verifying', 'queued');

-- name: requeue_order!
-- A temporary failure: try again later, from the state the order is in.
UPDATE orders SET last_error = $2, next_attempt_at = now() + make_interval(secs => $3), updated_at = now()
WHERE id = $1 AND state IN ('queued', 'paying', 'verifying');

-- name: return_to_queue!
-- Verified: the stored payment can never land and the service says the order is unpaid.
UPDATE orders SET state = 'queued', prepared = NULL, prepared_until = NULL, last_error = $2,
                  next_attempt_at = now(), updated_at = now()
WHERE id = $1 AND state = 'verifying';

-- name: set_fragment_order!
UPDATE orders SET fragment_order_id = $2, cost_ton = coalesce($3, cost_ton), updated_at = now() WHERE id = $1;

-- name: complete_order^
UPDATE orders SET state = 'completed', txid = $2, cost_ton = coalesce($3, cost_ton), last_error = NULL,
                  finished_at = now(), updated_at = now()
WHERE id = $1 AND state IN ('queued', 'paying', 'verifying')
RETURNING *;

-- name: refund_order^
UPDATE orders SET state = 'refunded', refund_reason = $2, finished_at = now(), updated_at = now()
WHERE id = $1 AND state IN ('created', 'queued', 'paying', 'verifying')
RETURNING *;

-- name: mark_delay_notified$
UPDATE orders SET delay_notified = true WHERE id = $1 AND NOT delay_notified RETURNING id;

-- name: wallet_lock!
-- Payments from one wallet one at a time, across every shopbot instance (session-level lock).
SELECT pg_advisory_lock(hashtextextended('shopbot-wallet:' || $1, 0));

-- name: wallet_unlock!
SELECT pg_advisory_unlock(hashtextextended('shopbot-wallet:' || $1, 0));

-- name: count_orders_by_state
SELECT state, count(*) AS n FROM orders GROUP BY state;

-- name: claim_delay_notices
-- Queued orders whose users have not yet been told that delivery is delayed.
UPDATE orders SET delay_notified = true
WHERE state = 'queued' AND NOT delay_notified
RETURNING *;

-- name: make_order_due$
-- An operator's "retry now": the order is worked on next, from the state it is in.
UPDATE orders SET next_attempt_at = now(), updated_at = now()
WHERE id = $1 AND state IN ('queued', 'paying', 'verifying')
RETURNING id;
