-- name: store_inbox_events
-- The webhooks' one statement (payments/inbox.py, group commit): the verified events of several requests stored
-- once each, in the order given ($1..$5 as parallel arrays), and the settlers woken: one notification per
-- statement (NOTIFY folds identical ones in a transaction into one; it is delivered at commit). Returns the
-- events stored now; one stored already (pending or acted on) is not returned.
WITH stored AS (
    INSERT INTO heleket_inbox (uuid, status, is_final, order_id, payload)
    SELECT e.uuid, e.status, e.is_final, e.order_id, e.payload::jsonb
    FROM unnest($1::text[], $2::text[], $3::boolean[], $4::text[], $5::text[]) WITH ORDINALITY
        AS e(uuid, status, is_final, order_id, payload, n)
    ORDER BY e.n
    ON CONFLICT (uuid, status, is_final) WHERE state <> 'refused' DO NOTHING
    RETURNING uuid, status, is_final
)
SELECT uuid, status, is_final, pg_notify('shopbot_heleket_inbox', '') AS woken FROM stored;

-- name: claim_inbox_events
-- A batch of due events for one settler; the row locks are held until its transaction ends, and any other
-- settler skips them. A settler that dies releases them with its connection: nothing is lost or taken twice.
SELECT id, payload, attempts, received_at
FROM heleket_inbox
WHERE state = 'pending' AND next_at <= now()
ORDER BY next_at, id
LIMIT $1
FOR UPDATE SKIP LOCKED;

-- name: finish_inbox_events!
-- What became of each claimed event: $2 its state, $3 the outcome, $4 seconds until it is tried again (pending).
UPDATE heleket_inbox AS i
SET state = u.state,
    outcome = u.outcome,
    attempts = i.attempts + 1,
    next_at = now() + u.delay * interval '1 second',
    settled_at = CASE WHEN u.state = 'pending' THEN NULL ELSE now() END
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::float8[]) AS u(id, state, outcome, delay)
WHERE i.id = u.id;

-- name: next_inbox_due$
-- Seconds until the earliest pending event falls due (NULL: none pending), so a settler sleeps no longer.
SELECT extract(epoch FROM min(next_at) - now())::float8 FROM heleket_inbox WHERE state = 'pending';
