-- name: insert_order^
-- The idempotency key sent to the Fragment service is shop-<id>-<random> ($9): the service answers a
-- known key with the old order, and ids start again after a reinstall or a restore, so the random part
-- keeps keys unique forever on a wallet. Nothing comes back when this confirmation ($8) already placed
-- an order.
WITH next AS (SELECT nextval('orders_id_seq'::regclass) AS id)
INSERT INTO orders (id, user_id, product, quantity, recipient, recipient_name, price, currency, idempotency_key,
                    confirmation)
SELECT id, $1, $2, $3, $4, $5, $6, $7, 'shop-' || id || '-' || $9, $8 FROM next
ON CONFLICT (user_id, confirmation) WHERE confirmation IS NOT NULL DO NOTHING
RETURNING *;

-- name: order_by_confirmation^
SELECT * FROM orders WHERE user_id = $1 AND confirmation = $2;

-- name: set_order_queued!
UPDATE orders SET state = 'queued', updated_at = now() WHERE id = $1 AND state = 'created';

-- name: get_order^
SELECT * FROM orders WHERE id = $1;

-- name: claim_due_unsettled^
-- The next order due for work whose payment may be under way (paying or verifying): these are resolved
-- first, one at a time, before anything new is paid. SKIP LOCKED lets several workers share the queue. It
-- is claimed under the wallet's advisory lock, and with a lease ($1 seconds, as long as one step can
-- take): a worker whose lock connection dropped may still be in the middle of its step, so nobody else
-- takes the order until the lease ends (every step ends by setting next_attempt_at itself).
WITH due AS (
    SELECT id FROM orders
    WHERE state IN ('paying', 'verifying') AND next_attempt_at <= now()
    ORDER BY next_attempt_at, id
    FOR UPDATE SKIP LOCKED
    LIMIT 1
)
UPDATE orders o SET attempts = o.attempts + 1, next_attempt_at = now() + make_interval(secs => $1),
                    updated_at = now()
FROM due WHERE o.id = due.id
RETURNING o.*;

-- name: claim_due_queued
-- Up to $1 queued orders due for work, the longest waiting first, to be paid with one payment; claimed
-- together, under the wallet's lock, with a lease of $2 seconds (as claim_due_unsettled).
WITH due AS (
    SELECT id FROM orders
    WHERE state = 'queued' AND next_attempt_at <= now()
    ORDER BY next_attempt_at, id
    FOR UPDATE SKIP LOCKED
    LIMIT $1
)
UPDATE orders o SET attempts = o.attempts + 1, next_attempt_at = now() + make_interval(secs => $2),
                    updated_at = now()
FROM due WHERE o.id = due.id
RETURNING o.*;

-- name: make_unfinished_due!
-- When a worker (re)takes the wallet lock: orders a dead worker left in the middle are resumed first,
-- leases or not. Run under the lock, so no worker that holds it is in the middle of one.
UPDATE orders SET next_attempt_at = now() - interval '1 second'
WHERE state IN ('queued', 'paying', 'verifying') AND next_attempt_at > now();

-- name: stored_payment_seqnos
-- The seqnos of the payments stored on orders still being paid or verified that can still land (inside
-- their valid_until): while one of them is the wallet's current seqno, a new payment for that seqno would
-- compete with it, so none is signed. A payment the service refused outright is left out: it is never
-- submitted again, so new orders do not wait for it to expire.
SELECT DISTINCT (prepared ->> 'seqno')::bigint AS seqno
FROM orders
WHERE state IN ('paying', 'verifying') AND prepared IS NOT NULL AND refusal IS NULL
  AND (prepared ->> 'valid_until')::bigint > extract(epoch FROM now());

-- name: record_prepared
-- The signed payment of a batch ($3, one external paying every order in it) is stored on each of its
-- orders ($1, with their Fragment orders $2 and costs $5) and committed before it is submitted. What comes
-- back are the orders written: the caller's transaction is rolled back, and nothing may be submitted,
-- unless every order of the batch was still ours to pay. prepared_until: the payment's valid_until plus
-- the landing margin ($6 seconds), never earlier than a signature made before.
UPDATE orders o SET state = 'paying', fragment_order_id = b.fragment_order_id, prepared = $3,
                    prepared_until = greatest(o.prepared_until,
                                              to_timestamp($4::bigint) + make_interval(secs => $6)),
                    cost_ton = b.cost_ton, updated_at = now()
FROM unnest($1::bigint[], $2::text[], $5::numeric[]) AS b (id, fragment_order_id, cost_ton)
WHERE o.id = b.id AND o.state IN ('queued', 'verifying')
RETURNING o.id;

-- name: record_resigned
-- The library signed a payment again (same seqno) inside submit: stored on every order it pays ($1) before
-- it is submitted; the orders written come back (the caller rolls back unless they are all of them).
UPDATE orders SET prepared = $2,
                  prepared_until = greatest(prepared_until, to_timestamp($3::bigint) + make_interval(secs => $4)),
                  updated_at = now()
WHERE id = ANY($1::bigint[]) AND state IN ('paying', 'verifying')
RETURNING id;

-- name: remember_refusal!
-- A definite refusal at submit, kept until no signed payment can land; then the order is refunded with it.
UPDATE orders SET refusal = $2, updated_at = now() WHERE id = $1 AND state IN ('queued', 'paying', 'verifying');

-- name: wait_for_landing$
-- A signed payment may still land: the order is only verified, and not before no signature can land.
UPDATE orders SET state = 'verifying', last_error = $2, next_attempt_at = greatest(prepared_until, now()),
                  updated_at = now()
WHERE id = $1 AND state IN ('queued', 'paying', 'verifying')
RETURNING next_attempt_at;

-- name: set_order_verifying!
UPDATE orders SET state = 'verifying', last_error = $2, next_attempt_at = now() + make_interval(secs => $3),
                  updated_at = now()
WHERE id = $1 AND state IN ('paying', 'verifying', 'queued');

-- name: requeue_order!
-- A temporary failure: try again later, from the state the order is in.
UPDATE orders SET last_error = $2, next_attempt_at = now() + make_interval(secs => $3), updated_at = now()
WHERE id = $1 AND state IN ('queued', 'paying', 'verifying');

-- name: return_to_queue$
-- Verified: the service says the order is unpaid, and no payment we signed for it can land any more
-- (prepared_until stays, as the bound for every signature this order ever had).
UPDATE orders SET state = 'queued', prepared = NULL, last_error = $2, next_attempt_at = now(), updated_at = now()
WHERE id = $1 AND state = 'verifying' AND (prepared_until IS NULL OR prepared_until <= now())
RETURNING id;

-- name: set_fragment_order!
UPDATE orders SET fragment_order_id = $2, cost_ton = coalesce($3, cost_ton), updated_at = now() WHERE id = $1;

-- name: complete_order^
UPDATE orders SET state = 'completed', txid = $2, cost_ton = coalesce($3, cost_ton), last_error = NULL,
                  finished_at = now(), updated_at = now()
WHERE id = $1 AND state IN ('queued', 'paying', 'verifying')
RETURNING *;

-- name: refund_order^
-- The one door through which an order's hold is released: never while a payment we signed for it can
-- still land (prepared_until), whoever asks.
UPDATE orders SET state = 'refunded', refund_reason = $2, finished_at = now(), updated_at = now()
WHERE id = $1 AND state IN ('created', 'queued', 'paying', 'verifying')
  AND (prepared_until IS NULL OR prepared_until <= now())
RETURNING *;

-- name: wallet_lock!
-- Payments from one wallet one at a time, across every shopbot instance (session-level lock).
SELECT pg_advisory_lock(hashtextextended('shopbot-wallet:' || $1, 0));

-- name: wallet_unlock!
SELECT pg_advisory_unlock(hashtextextended('shopbot-wallet:' || $1, 0));

-- name: holds_wallet_lock$
-- Whether this session still holds the wallet lock (a bigint advisory key shows as classid = its high
-- half, objid = its low half, objsubid = 1). A terminated session has lost it with its connection.
SELECT EXISTS (
    SELECT 1
    FROM pg_locks l, (SELECT hashtextextended('shopbot-wallet:' || $1, 0) AS k) w
    WHERE l.locktype = 'advisory' AND l.pid = pg_backend_pid() AND l.granted AND l.objsubid = 1
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND l.classid = ((w.k >> 32) & 4294967295)::oid AND l.objid = (w.k & 4294967295)::oid
);

-- name: orders_by_state
-- Every state an order can be in, each with how many orders are in it now, zero or not, in the order the
-- admin dashboard lists them; with $1, only the orders placed since then. The one list of the states outside
-- the orders table's CHECK (migration 0004): the metrics and the dashboard read theirs from here.
WITH states (position, state) AS (
    VALUES (1, 'queued'), (2, 'paying'), (3, 'verifying'), (4, 'completed'), (5, 'refunded'), (6, 'created')
)
SELECT states.state, count(orders.id) AS n
FROM states
LEFT JOIN orders ON orders.state = states.state AND ($1::timestamptz IS NULL OR orders.created_at >= $1)
GROUP BY states.position, states.state
ORDER BY states.position;

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

-- name: newest_unit_costs
-- What Fragment asked, in TON, at the newest order whose cost is known: per star, and per Premium
-- package of each length. Orders the cost guard refused count too, so the cost stays known while the
-- shop is not selling. Each lookup walks the primary key backwards, so it stays cheap as orders grow.
SELECT k.product, k.months, c.ton
FROM (VALUES ('stars', NULL::integer), ('premium', 3), ('premium', 6), ('premium', 12)) AS k (product, months)
CROSS JOIN LATERAL (
    SELECT CASE WHEN o.product = 'stars' THEN o.cost_ton / o.quantity ELSE o.cost_ton END AS ton
    FROM orders o
    WHERE o.product = k.product AND o.cost_ton IS NOT NULL AND (k.months IS NULL OR o.quantity = k.months)
    ORDER BY o.id DESC
    LIMIT 1
) c;
