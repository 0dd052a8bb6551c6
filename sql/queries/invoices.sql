-- name: create_invoice^
-- Our row first. The order_id carries our id and a random suffix ($4): Heleket answers a known
-- order_id with the old invoice, so ids restarting after a database reset must not collide.
WITH next AS (SELECT nextval('invoices_id_seq'::regclass) AS id)
INSERT INTO invoices (id, order_id, user_id, amount, currency, expires_at)
SELECT id, 'topup-' || id || '-' || $4, $1, $2, $3, now() + $5::int * interval '1 second' FROM next
RETURNING id, order_id, user_id, amount, currency, status, created_at;

-- name: record_heleket_invoice^
UPDATE invoices
SET uuid = $2, url = $3, status = CASE WHEN status = 'creating' THEN $4 ELSE status END,
    expires_at = coalesce($5, expires_at), updated_at = now()
WHERE id = $1
RETURNING id, order_id, uuid, url, status, amount, currency, expires_at;

-- name: mark_invoice_failed!
UPDATE invoices SET status = 'create_failed', is_final = true, needs_attention = $2, updated_at = now()
WHERE id = $1 AND status = 'creating';

-- name: invoice_by_order_id^
SELECT id, order_id, user_id, amount, currency, uuid, url, status, is_final, credited_amount, expires_at
FROM invoices WHERE order_id = $1;

-- name: invoice_for_update^
SELECT id, order_id, user_id, amount, currency, uuid, url, status, is_final, credited_amount, expires_at
FROM invoices WHERE id = $1 FOR UPDATE;

-- name: invoice_by_id^
SELECT id, order_id, user_id, amount, currency, uuid, url, status, is_final, credited_amount, expires_at,
       needs_attention
FROM invoices WHERE id = $1;

-- name: record_invoice_event$
-- Returns the event id, or nothing when this (uuid, status, is_final) was recorded before. Only states
-- Heleket confirmed are recorded, in the transaction that acts on them.
INSERT INTO invoice_events (invoice_id, uuid, status, is_final, source, payload)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT ON CONSTRAINT invoice_events_once DO NOTHING
RETURNING id;

-- name: apply_invoice_status!
-- A final invoice keeps its final status, except for the refund statuses that may follow a payment.
UPDATE invoices
SET uuid = coalesce(uuid, $2),
    status = CASE WHEN is_final AND NOT ($3 LIKE 'refund%') THEN status ELSE $3 END,
    is_final = is_final OR $4,
    payer_currency = coalesce($5, payer_currency),
    payer_amount = coalesce($6, payer_amount),
    payment_amount = coalesce($7, payment_amount),
    credited_amount = coalesce($8, credited_amount),
    needs_attention = coalesce($9, needs_attention),
    raw = $10,
    updated_at = now()
WHERE id = $1;

-- name: invoice_event_seen$
-- Was this state of the invoice confirmed and acted on before? (A repeated webhook then needs no question
-- to Heleket.)
SELECT EXISTS (SELECT 1 FROM invoice_events WHERE uuid = $1 AND status = $2 AND is_final = $3);

-- name: unfinished_invoices
-- For the reconciler: invoices that may still change, the ones asked about longest ago first (never asked:
-- first of all), so that many open invoices take turns; long-dead ones are left alone.
SELECT id, order_id, user_id, amount, currency, uuid, status, expires_at, created_at
FROM invoices
WHERE NOT is_final AND created_at > now() - make_interval(days => 7)
ORDER BY last_checked_at NULLS FIRST, created_at
LIMIT $1;

-- name: stamp_invoice_checked!
UPDATE invoices SET last_checked_at = now() WHERE id = $1;

-- name: lock_user_invoices!
-- Held until the transaction ends: one user's invoices are counted and created one request at a time.
SELECT pg_advisory_xact_lock(hashtextextended('shopbot:invoices:' || $1::bigint, 0));

-- name: open_invoices_of_user
-- The user's invoices that can still be paid (Heleket made them, not final, not expired), first to expire
-- first. A row still 'creating' is not counted: its user was told the payment service failed.
SELECT id, order_id, amount, currency, url, expires_at
FROM invoices
WHERE user_id = $1 AND NOT is_final AND status <> 'creating' AND (expires_at IS NULL OR expires_at > now())
ORDER BY expires_at NULLS LAST, id;

-- name: expire_invoice!
UPDATE invoices SET status = 'expired', is_final = true, updated_at = now()
WHERE id = $1 AND NOT is_final;

-- name: try_reconciler_lock$
-- One reconciliation pass at a time across every shopbot instance: whoever holds this session lock passes,
-- the others skip their turn. Released by reconciler_unlock, or with the connection if it drops.
SELECT pg_try_advisory_lock(hashtextextended('shopbot:reconciler', 0));

-- name: reconciler_unlock$
SELECT pg_advisory_unlock(hashtextextended('shopbot:reconciler', 0));
